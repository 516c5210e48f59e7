"""Emulator fidelity, measured: the same requests to the emulator and to a real rqlited v8.

Every case sends one HTTP request, byte for byte the same, to an emulated node and to a
real ``rqlited`` v8.43.4 node in the same state, and asserts that the two answers agree:
status code, the headers a client can act on (``HEADERS``), and the body (JSON compared as
parsed values, anything else as text). Only what must differ is normalised (``normalise``):

- ``time`` values (``?timings``): wall-clock durations, never equal twice;
- ``raft_index`` values: a real Raft log also holds configuration and no-op entries, and the
  session's real node has served other tests, so only the key's presence is compared;
- ``sequence_number`` values (``?queue``): derived from each server's start time;
- node addresses (``Location`` of a 301, ``X-Rqlite-Served-By``, error texts naming the
  leader): every node listens on its own free port. Each side's leader API URL becomes
  ``<leader-api>`` and its Raft address (an emulated node's is its HTTP host:port)
  ``<leader-raft>``.

Before each single-node case both nodes drop every table and run ``SYNC``, which leaves
``sqlite3_last_insert_rowid()`` and ``sqlite3_changes()`` of the write connection at 0 on
both sides (rqlite reports them raw, stale values included, so they must start equal).

Which requests matter: the project's ``rotate_stats/rqlite_store.py`` sends
``POST /db/execute?transaction`` with ``[sql, params...]`` statements and
``POST /db/query?level=strong|weak``, and reads 200/401/5xx statuses and top-level and
per-statement ``error``; pyrqlite sends ``GET /db/query?q=...&level=...`` and
``POST /db/execute?transaction[&queue][&wait]``, follows 301s and waits for ``/readyz``.
Those are covered, plus ``/db/request``, the other flags and the error paths around them.

Differences found, and what the emulator deliberately does not model: ``docs/EMULATOR.md``.
Runs only against rqlite v8 (``ROTATE_STATS_TEST_RQLITED``); skipped without a binary.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyrqlite.dbapi2 as dbapi2
import pytest

from tests.conftest import IN_CI
from tests.real_rqlite import RqlitedCluster, RqlitedNode, binary_version
from tests.rqlite_emulator import EmulatorHandle, start_emulator

pytestmark = [pytest.mark.rqlited, pytest.mark.emulator_fidelity]

# Compared when either side sends them (Date, Content-Length and the like are not).
HEADERS = (
    "content-type",
    "location",
    "x-rqlite-served-by",
    "x-rqlite-version",
    "x-content-type-options",
    "www-authenticate",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-allow-credentials",
    "server",
)

# Leaves the write connection's last_insert_rowid() and changes() at 0, as on a fresh one.
SYNC = [
    "CREATE TABLE fidelity_sync (a)",
    "INSERT INTO fidelity_sync(rowid, a) VALUES (0, 0)",
    "DELETE FROM fidelity_sync WHERE 0",
    "DROP TABLE fidelity_sync",
]

Body = list[Any] | bytes | str | None


@pytest.fixture(scope="module")
def v8_binary(rqlited_binary: str) -> str:
    """The real rqlited, if it is v8 (the emulator follows v8.43.4; v6 differs on purpose)."""
    version = binary_version(rqlited_binary)
    if version[0] != 8:
        message = f"emulator fidelity is measured against rqlite v8, not v{version[0]}"
        (pytest.fail if IN_CI else pytest.skip)(message)  # CI=true: a wrong binary fails
    return rqlited_binary


# --- talking to both sides --------------------------------------------------------------


@dataclass
class Side:
    """One server as the comparison sees it."""

    name: str
    host: str
    port: int
    # (text, placeholder): addresses that differ between the sides (see module docstring)
    addresses: list[tuple[str, str]] = field(default_factory=list)


def leader_addresses(api_url: str, raft_addr: str) -> list[tuple[str, str]]:
    return [(api_url, "<leader-api>"), (raft_addr, "<leader-raft>")]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(
    side: Side,
    method: str,
    target: str,
    body: Body = None,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """One request on a fresh connection; lists are sent as JSON."""
    sent = dict(headers or {})
    data: bytes | None
    if isinstance(body, list):
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        sent["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection(side.host, side.port, timeout=30)
    try:
        conn.request(method, target, body=data, headers=sent)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _replace(text: str, side: Side) -> str:
    for actual, placeholder in side.addresses:
        text = text.replace(actual, placeholder)
    return text


def _normalise_json(value: Any, side: Side, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _normalise_json(v, side, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_json(v, side) for v in value]
    if key == "time" and isinstance(value, (int, float)) and value >= 0:
        return "<time>"  # a duration: differs on every run
    if key == "raft_index" and isinstance(value, int) and value > 0:
        return "<raft_index>"  # real Raft logs hold more entries (see module docstring)
    if key == "sequence_number" and isinstance(value, int) and value > 0:
        return "<sequence_number>"  # from each server's clock
    if isinstance(value, str):
        return _replace(value, side)  # error texts may name the leader
    return value


def normalise(answer: Answer, side: Side) -> dict[str, Any]:
    """What must agree: status, ``HEADERS`` (addresses replaced) and the body."""
    headers = {k: _replace(v, side) for k, v in answer.headers.items() if k in HEADERS}
    text = answer.body.decode("utf-8", "replace")
    body: Any = _replace(text, side)
    if headers.get("content-type", "").startswith("application/json") and text:
        try:
            body = _normalise_json(json.loads(text), side)
        except ValueError:
            pass  # not JSON after all: compared as text
    return {"status": answer.status, "headers": headers, "body": body}


@dataclass
class Pair:
    """A real node and an emulated node in the same role; ``same`` compares one request."""

    real: Side
    emulator: Side
    compared: int = 0

    def real_and_emulated(self) -> tuple[Side, Side]:
        return self.real, self.emulator

    def both(self, method: str, target: str, body: Body = None, **kw: Any) -> list[Answer]:
        return [send(side, method, target, body, **kw) for side in (self.real, self.emulator)]

    def same(
        self,
        method: str,
        target: str,
        body: Body = None,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send to both; assert the normalised answers are equal; return the real one."""
        real, emulated = self.both(method, target, body, headers=headers, auth=auth)
        expected = normalise(real, self.real)
        actual = normalise(emulated, self.emulator)
        assert actual == expected, f"{method} {target} {body!r}: emulator differs from rqlited"
        self.compared += 1
        return expected


def tables(side: Side, auth: tuple[str, str] | None = None) -> list[str]:
    sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    answer = send(side, "POST", "/db/query?level=strong", [sql], auth=auth)
    assert answer.status == 200, answer
    return [row[0] for row in json.loads(answer.body)["results"][0].get("values", [])]


def writable(side: Side, auth: tuple[str, str] | None = None) -> None:
    """``PRAGMA query_only=0``, in case a failed case left it on (v8 lets a client set it)."""
    answer = send(side, "POST", "/db/execute", ["PRAGMA query_only=0"], auth=auth)
    assert answer.status == 200, answer


def reset(pair: Pair, auth: tuple[str, str] | None = None) -> None:
    """Drop every table on both sides, then ``SYNC`` (module docstring)."""
    for side in (pair.real, pair.emulator):
        writable(side, auth)
        drops = [f'DROP TABLE IF EXISTS "{name}"' for name in tables(side, auth)]
        answer = send(side, "POST", "/db/execute", drops + SYNC, auth=auth)
        assert answer.status == 200 and b'"error"' not in answer.body, answer


# --- single node --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulated_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    node = start_emulator(tmp_path_factory.mktemp("fidelity-emulator"))
    yield node
    node.stop()


@pytest.fixture
def single(v8_binary: str, rqlited_node: RqlitedNode, emulated_node: EmulatorHandle) -> Pair:
    """The session's real node and this module's emulated node, both emptied and synced."""
    pair = Pair(
        Side("rqlited", rqlited_node.host, rqlited_node.port),
        Side("emulator", emulated_node.host, emulated_node.port),
    )
    writable(pair.real)
    rqlited_node.drop_all_tables()
    reset(pair)
    return pair


def q(sql: str, extra: str = "") -> str:
    """A ``GET /db/query`` target as pyrqlite builds it (``+`` for spaces)."""
    return "/db/query?q=" + quote(sql, safe="").replace("%20", "+") + extra


T = "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, n INTEGER, r REAL, b BLOB, x)"
TYPED = (
    "CREATE TABLE typed (id INTEGER PRIMARY KEY, i INT, big BIGINT, f FLOAT, s TEXT,"
    " v VARCHAR(10), j JSON, bl BLOB, ok BOOLEAN, flag BOOL, d DATE, dt DATETIME,"
    " ts TIMESTAMP, num NUMERIC, custom FOO, untyped)"
)
INSERT_TYPED = "INSERT INTO typed VALUES(" + ", ".join(["?"] * 16) + ")"
# fmt: off
TYPED_ROW_1 = [
    INSERT_TYPED, 1, 2, 9007199254740993, 2.5, "s", "x'00ff'", '{"a": 1}', [104, 105], True,
    True, "2004-02-14", "2004-02-14 07:15:00.500000", 1700000000, "12.50", "c", None,
]
TYPED_ROW_2 = [
    INSERT_TYPED, 2, None, -1, 1e21, None, "v", None, "x'0aff'", 0, 0, "garbage",
    "2004-02-14T07:15:00+02:00", 1700000000123, 7, 1.5, 3.25,
]
# fmt: on
PLAIN = {"Content-Type": "text/plain"}

# Each scenario is a list of steps run in order on freshly emptied nodes; every step is one
# compared request: (method, target[, body[, headers]]).
SCENARIOS: dict[str, list[tuple[Any, ...]]] = {
    "execute-counts": [
        ("POST", "/db/execute", [T]),
        ("POST", "/db/execute", [["INSERT INTO t(k, n) VALUES(?, ?)", "a", 1]]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('b'), ('c')"]),
        ("POST", "/db/execute", ["UPDATE t SET n = 5 WHERE k = 'nope'"]),
        ("POST", "/db/execute", ["INSERT OR IGNORE INTO t(k) VALUES ('a')"]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('a') ON CONFLICT(k) DO NOTHING"]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('a') ON CONFLICT(k) DO UPDATE SET n=2"]),
        ("POST", "/db/execute", ["INSERT OR REPLACE INTO t(k, n) VALUES ('b', 9)"]),
        ("POST", "/db/execute", ["DELETE FROM t WHERE k = 'c'"]),
        (
            "POST",
            "/db/execute",
            ["CREATE TABLE other (a)", "SELECT * FROM t", "PRAGMA user_version"],
        ),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('r') RETURNING id, k"]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('m1'); INSERT INTO t(k) VALUES ('m2')"]),
        ("POST", "/db/execute", ["", "INSERT INTO t(k) VALUES ('after-empty')", ""]),
        ("POST", "/db/execute", "INSERT INTO t(k) VALUES ('plain'); DROP TABLE other", PLAIN),
        ("POST", "/db/execute", ["DROP TABLE t"]),
        ("POST", "/db/execute?associative", [T, ["INSERT INTO t(k) VALUES(?)", "z"]]),
        (
            "POST",
            "/db/execute?associative&blob_array",
            ["INSERT INTO t(b) VALUES (x'0102') RETURNING b"],
        ),
        ("POST", "/db/query", ["SELECT * FROM t ORDER BY id"]),
    ],
    "execute-errors": [
        ("POST", "/db/execute", [T]),
        (
            "POST",
            "/db/execute",
            ["SELEC 1", "INSERT INTO nope VALUES (1)", "INSERT INTO t(k) VALUES ('ok')"],
        ),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('ok')", T]),
        ("POST", "/db/execute", [["INSERT INTO t(k, n) VALUES(?, ?)", "x"]]),
        ("POST", "/db/execute", [["INSERT INTO t(k) VALUES(?)", "many", 1, 2]]),
        ("POST", "/db/execute", [["INSERT INTO t(k) VALUES(:k)", {"other": 1}]]),
        ("POST", "/db/execute", [["INSERT INTO t(k, n) VALUES(?, ?)"]]),
        ("POST", "/db/execute", ["ROLLBACK", "COMMIT"]),
        ("POST", "/db/query", ["SELECT k, n FROM t ORDER BY id"]),
    ],
    "transaction-failing-middle": [
        ("POST", "/db/execute", [T]),
        ("POST", "/db/execute?transaction", [["INSERT INTO t(k) VALUES(?)", "first"]]),
        # a failing statement in the middle: everything rolls back, the list stops there
        (
            "POST",
            "/db/execute?transaction",
            [
                ["INSERT INTO t(k, n) VALUES(?, ?)", "second", 2],
                ["UPDATE t SET n = ? WHERE k = ?", 7, "first"],
                ["INSERT INTO t(k) VALUES(?)", "first"],
                ["INSERT INTO t(k) VALUES(?)", "never"],
            ],
        ),
        ("POST", "/db/query?level=strong", ["SELECT k, n FROM t ORDER BY id"]),
        # a statement that fails to prepare also ends the transaction
        (
            "POST",
            "/db/execute?transaction",
            ["INSERT INTO t(k) VALUES ('p')", "SELEC 1", "INSERT INTO t(k) VALUES ('q')"],
        ),
        # without the flag the others commit one by one
        (
            "POST",
            "/db/execute",
            [
                "INSERT INTO t(k) VALUES ('p')",
                "INSERT INTO t(k) VALUES ('first')",
                "INSERT INTO t(k) VALUES ('q')",
            ],
        ),
        ("POST", "/db/query?level=strong", ["SELECT k, n FROM t ORDER BY id"]),
        # flags count by presence; COMMIT/BEGIN inside a transaction
        (
            "POST",
            "/db/execute?transaction=false",
            ["INSERT INTO t(k) VALUES ('f')", "INSERT INTO t(k) VALUES ('f')"],
        ),
        ("POST", "/db/execute?transaction", ["INSERT INTO t(k) VALUES ('c1')", "COMMIT"]),
        ("POST", "/db/execute?transaction", ["BEGIN", "INSERT INTO t(k) VALUES ('c2')"]),
        ("POST", "/db/execute?transaction", ["", ""]),
        ("POST", "/db/query", ["SELECT k FROM t ORDER BY id"]),
        ("POST", "/db/query?transaction", ["SELECT 1", "SELECT * FROM nope", "SELECT 2"]),
    ],
    "query-get": [
        ("POST", "/db/execute", [T, "INSERT INTO t(k, n, r) VALUES ('a', 1, 2.5), ('b', NULL, 3)"]),
        ("GET", q("SELECT k, n, r FROM t ORDER BY id")),
        ("GET", "/db/query?q=SELECT%20k%20FROM%20t%20ORDER%20BY%20id"),
        ("GET", q("SELECT k FROM t WHERE k = 'zz'")),
        ("GET", q("SELECT * FROM nope")),
        ("GET", q("SELECT 1") + "&q=" + quote("SELECT 2")),
        ("GET", "/db/query"),
        ("GET", "/db/query?q="),
        ("GET", "/db/query?q=SELECT%zz"),
        ("GET", "/db/query?q=SELECT+1;x=1"),
        ("GET", q("SELECT count(*) FROM t", "&level=none")),
        ("GET", q("SELECT count(*) FROM t", "&level=weak")),
        ("GET", q("SELECT count(*) FROM t", "&level=strong")),
        ("GET", q("SELECT count(*) FROM t", "&level=linearizable")),
        ("GET", q("SELECT count(*) FROM t", "&level=auto")),
        ("GET", q("SELECT count(*) FROM t", "&level=STRONG")),
        ("GET", q("SELECT count(*) FROM t", "&level=bogus")),
        ("GET", q("SELECT count(*) FROM t", "&level=none&freshness=1h")),
        ("GET", q("SELECT count(*) FROM t", "&freshness_strict")),
        ("GET", q("SELECT 1", "&timeout=5")),
        ("GET", q("SELECT 1", "&timeout=5s&db_timeout=2s&linearizable_timeout=1s&retries=2")),
        ("GET", q("SELECT 1", "&retries=two")),
        ("GET", q("SELECT k, n FROM t ORDER BY id", "&pretty")),
        ("GET", q("SELECT k, n FROM t ORDER BY id", "&associative")),
        ("GET", q("SELECT k FROM t WHERE 0", "&associative")),
        ("GET", q("SELECT 1", "&transaction")),
        ("GET", q("INSERT INTO t(k) VALUES ('w')")),
        ("GET", q("PRAGMA foreign_keys")),
        ("GET", "/db/queryXYZ?q=SELECT+1"),
    ],
    "query-post": [
        ("POST", "/db/execute", [TYPED]),
        ("POST", "/db/execute", [TYPED_ROW_1, TYPED_ROW_2]),
        ("POST", "/db/query", ["SELECT * FROM typed ORDER BY id"]),
        ("POST", "/db/query?blob_array", ["SELECT bl, v, CAST(bl AS BLOB) FROM typed ORDER BY id"]),
        (
            "POST",
            "/db/query?associative",
            ["SELECT id, s, ok FROM typed ORDER BY id", "SELECT 1 AS id, 2 AS id"],
        ),
        (
            "POST",
            "/db/query",
            ["SELECT max(d), count(*), 1.0, 'x', NULL, x'00', 5 / 2.0 FROM typed"],
        ),
        (
            "POST",
            "/db/query",
            ["SELECT * FROM typed WHERE 0", "SELECT nope FROM typed", "SELECT 2"],
        ),
        ("POST", "/db/query", ["PRAGMA table_info(typed)"]),
        ("POST", "/db/query", ["SELECT 1; SELECT 2"]),
        ("POST", "/db/query", ["INSERT INTO typed(id) VALUES (3)"]),
        ("POST", "/db/query", ["INSERT INTO typed(id) VALUES (4); SELECT 1"]),
        ("POST", "/db/query", ["SELECT 1; INSERT INTO typed(id) VALUES (5)"]),
        ("POST", "/db/query", [["INSERT INTO typed(id) VALUES (?)"]]),
        ("POST", "/db/query", ["SELECT count(*) FROM typed"]),
        ("POST", "/db/query", "SELECT count(*) AS n FROM typed", PLAIN),
        ("POST", "/db/query?level=strong&timings", ["SELECT 1", "SELECT 2"]),
        ("POST", "/db/query", ["SELECT 1e999"]),
        ("POST", "/db/query", ["SELECT -1e999 AS neg"]),
    ],
    "parameters": [
        ("POST", "/db/execute", [T]),
        (
            "POST",
            "/db/execute",
            [
                ["INSERT INTO t(k, n, r, b, x) VALUES(?, ?, ?, ?, ?)", "int", 42, 0.1, None, 1],
                ["INSERT INTO t(k, n, r, x) VALUES(?, ?, ?, ?)", "bool", True, False, True],
                [
                    "INSERT INTO t(k, n, x) VALUES(?, ?, ?)",
                    "2^53+1",
                    9007199254740993,
                    -9007199254740993,
                ],
                [
                    "INSERT INTO t(k, n, x) VALUES(?, ?, ?)",
                    "int64",
                    9223372036854775807,
                    -9223372036854775808,
                ],
                [
                    "INSERT INTO t(k, n, x) VALUES(?, ?, ?)",
                    "past-int64",
                    9223372036854775808,
                    -9223372036854775809,
                ],
                ["INSERT INTO t(k, n, x) VALUES(?, ?, ?)", "2^64", 18446744073709551616, 10**30],
                ["INSERT INTO t(k, r, x) VALUES(?, ?, ?)", "floats", 1.0, -0.0],
                ["INSERT INTO t(k, r, x) VALUES(?, ?, ?)", "tiny", 1.5e-10, 1e-7],
                ["INSERT INTO t(k, b, x) VALUES(?, ?, ?)", "blob-hex", "x'DEADbeef'", "X'00'"],
                ["INSERT INTO t(k, b, x) VALUES(?, ?, ?)", "blob-array", [0, 1, 255], []],
                ["INSERT INTO t(k, b, x) VALUES(?, ?, ?)", "not-hex", "x'zz'", " x'01' "],
                ["INSERT INTO t(k, n, x) VALUES(:k, :n, :x)", {"k": "named", "n": 7, "x": "colon"}],
                ["INSERT INTO t(k, n, x) VALUES(@k, $n, :x)", {"k": "named2", "n": 8.0, "x": None}],
                ["INSERT INTO t(k, n, x) VALUES(?, ?, :x)", "mixed", 9, {"x": "m"}],
                ["INSERT INTO t(k, n) VALUES(?2, ?1)", 10, "numbered"],
            ],
        ),
        (
            "POST",
            "/db/query",
            ["SELECT k, n, typeof(n), r, typeof(r), b, typeof(b), x, typeof(x) FROM t ORDER BY id"],
        ),
        ("POST", "/db/query?blob_array", ["SELECT k, b FROM t WHERE b IS NOT NULL ORDER BY id"]),
        ("POST", "/db/query", [["SELECT ?, ?, ?, ?, ?, ?", 1, 1.5, "t", None, True, False]]),
        ("POST", "/db/query", [["SELECT ?, ?, typeof(?)", 9223372036854775808, 2**64, 2**63]]),
        ("POST", "/db/query", [["SELECT :a, @a, $a", {"a": 5}], ["SELECT :a, :b", {"a": 1}]]),
        ("POST", "/db/query", [["SELECT ?"], ["SELECT ? + ?", 1, 2], ["SELECT ?", 1, 2, 3]]),
        ("POST", "/db/query", [["SELECT k FROM t WHERE n > ? AND k <> ? ORDER BY id", 0, "int"]]),
        ("POST", "/db/query", b'[["SELECT ?", 1e400]]'),
        ("POST", "/db/query", b'[["SELECT ?, ?", 1E3, -0]]'),
        ("POST", "/db/query", b'[["SELECT ?", [1, 256]]]'),
        ("POST", "/db/query", b'[["SELECT ?", [1.5]]]'),
        ("POST", "/db/query", b'[["SELECT ?", ["a"]]]'),
        ("POST", "/db/query", b'[["SELECT ?", [true]]]'),
        ("POST", "/db/query", b'[["SELECT ?", {"a": {"b": 1}}]]'),
        ("POST", "/db/query", b'[["SELECT ?", {"a": [1, 2]}]]'),
        ("POST", "/db/query", b'[["SELECT ?", NaN]]'),
    ],
    "unicode": [
        ("POST", "/db/execute", ['CREATE TABLE "ünï 表" ("ключ" TEXT, "😀" TEXT)']),
        (
            "POST",
            "/db/execute",
            [
                ['INSERT INTO "ünï 表" VALUES(?, ?)', "héllo", "漢字 😀 👍🏽 e\u0301"],
                ['INSERT INTO "ünï 表" VALUES(?, ?)', "nul\u0000byte", "<&>\u2028\u2029"],
                ["INSERT INTO \"ünï 表\" VALUES('literal é', 'ß')"],
            ],
        ),
        ("POST", "/db/query", ['SELECT *, length("😀"), hex("😀") FROM "ünï 表"']),
        ("GET", q('SELECT "ключ" FROM "ünï 表" WHERE "😀" = \'ß\'')),
        ("POST", "/db/query", b'[["SELECT ?, ?", "\\ud83d\\ude00", "\\ud800 lone"]]'),
        ("POST", "/db/query", '[["SELECT ?", "raw 😀 é"]]'),
        ("POST", "/db/query", ["SELECT CAST(x'ff41c3' AS TEXT), x'e282ac', 'a' || char(8232)"]),
        ("POST", "/db/query?associative", ['SELECT "ключ" AS "κλειδί" FROM "ünï 表"']),
    ],
    "bodies": [
        (method, path, body)
        for method, path in (
            ("POST", "/db/execute"),
            ("POST", "/db/query"),
            ("POST", "/db/request"),
        )
        for body in (
            b"",
            b"not json",
            b"{bad",
            b"{}",
            b"null",
            b'"SELECT 1"',
            b"[]",
            b"[[]]",
            b"[1]",
            b"[null]",
            b"[{}]",
            b'["SELECT 1"',
            b'["SELECT 1",]',
            b'["SELECT 1" "SELECT 2"]',
            b'["SELECT 1"] trailing',
            b'[["SELECT ?", 1] garbage',
            b'[[1, "x"]]',
            b'[["SELECT 1"], 2, {bad',
            b'[""]',
            b'  \n["SELECT 1"]  ',
        )
    ],
    "request": [
        (
            "POST",
            "/db/request",
            [T, ["INSERT INTO t(k) VALUES(?)", "a"], "SELECT k FROM t", "SELECT nope FROM t"],
        ),
        (
            "POST",
            "/db/request?transaction",
            [
                "INSERT INTO t(k) VALUES ('b')",
                "SELECT * FROM bar",  # fails to prepare: an error entry, processing goes on
                "INSERT INTO t(k) VALUES ('a')",  # fails to run: rollback, stop
                "INSERT INTO t(k) VALUES ('c')",
            ],
        ),
        ("POST", "/db/request", ["SELECT k FROM t ORDER BY id"]),
        (
            "POST",
            "/db/request?associative",
            [["INSERT INTO t(k) VALUES(?)", "d"], "SELECT id, k FROM t", "SELECT * FROM bar"],
        ),
        ("POST", "/db/request?associative", ["SELECT id FROM t WHERE 0"]),
        ("POST", "/db/request?level=strong", ["SELECT count(*) FROM t"]),
        ("POST", "/db/request?level=none", ["SELECT count(*) FROM t"]),
        ("POST", "/db/request?timings", ["SELECT 1", "INSERT INTO t(k) VALUES ('e')"]),
        ("POST", "/db/request", "SELECT 1", PLAIN),
        ("POST", "/db/request", ["INSERT INTO t(k) VALUES ('q') RETURNING k"]),
        ("POST", "/db/request", ["SELECT 1e999"]),
    ],
    "flags": [
        ("POST", "/db/execute?timings", [T, "INSERT INTO t(k) VALUES ('a')"]),
        ("POST", "/db/query?timings", ["SELECT k FROM t"]),
        ("GET", q("SELECT k FROM t", "&timings&pretty")),
        ("POST", "/db/execute?raft_index", ["INSERT INTO t(k) VALUES ('b')"]),
        ("POST", "/db/execute?raft_index", ["INSERT INTO t(k) VALUES ('b')"]),
        ("POST", "/db/query?raft_index", ["SELECT 1"]),
        ("POST", "/db/query?raft_index&level=strong", ["SELECT 1"]),
        ("POST", "/db/request?raft_index", ["SELECT 1"]),
        ("POST", "/db/request?raft_index&level=strong", ["SELECT 1"]),
        ("POST", "/db/request?raft_index", ["INSERT INTO t(k) VALUES ('c')"]),
        ("POST", "/db/execute?queue", ["SELECT 1"]),
        ("POST", "/db/execute?queue&wait", [["INSERT INTO t(k) VALUES(?)", "queued"]]),
        ("POST", "/db/execute?queue&wait&timeout=10s", []),
        ("POST", "/db/execute?queue", []),
        ("POST", "/db/execute?queue", b"{bad"),
        ("POST", "/db/query", ["SELECT k FROM t ORDER BY id"]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('x')", "PRAGMA journal_mode=DELETE"]),
        ("POST", "/db/query", ["pragma main.synchronous = 0"]),
        ("POST", "/db/request", ["PRAGMA wal_checkpoint(TRUNCATE)"]),
        # v8 lets a client switch its write connection to read-only, and back
        ("POST", "/db/execute", ["PRAGMA query_only=1"]),
        ("POST", "/db/execute", ["INSERT INTO t(k) VALUES ('ro')"]),
        ("POST", "/db/query", ["SELECT k FROM t ORDER BY id"]),
        ("POST", "/db/execute", ["PRAGMA query_only=0", "INSERT INTO t(k) VALUES ('rw')"]),
        ("POST", "/db/query", ["SELECT k FROM t ORDER BY id"]),
    ],
    "http": [
        ("GET", "/nope"),
        ("GET", "/"),
        ("POST", "/"),
        ("OPTIONS", "/db/execute"),
        ("GET", "/db/execute"),
        ("PUT", "/db/execute", ["SELECT 1"]),
        ("DELETE", "/db/query"),
        ("GET", "/db/request"),
        ("POST", "/readyz"),
        ("GET", "/readyz"),
        ("GET", "/readyz?noleader"),
        ("GET", "/readyz?sync"),
        ("GET", "/db/query?q=SELECT+1&freshness=bogus"),
        ("POST", "/db/execute?db_timeout=1", ["SELECT 1"]),
        ("POST", "/db/execute?trailing_logs=x", ["SELECT 1"]),
    ],
}


@pytest.mark.parametrize("steps", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_single_node(single: Pair, steps: list[tuple[Any, ...]]) -> None:
    for step in steps:
        method, target, *rest = step
        body = rest[0] if rest else None
        headers = rest[1] if len(rest) > 1 else None
        single.same(method, target, body, headers=headers)


def test_pyrqlite_requests(single: Pair) -> None:
    """Exactly what pyrqlite 2.2.3 sends (``cursors.py``): plain-string bodies, ``q=``."""
    single.same("POST", "/db/execute?transaction", ["CREATE TABLE p (a TEXT, b INTEGER)"])
    single.same("POST", "/db/execute?transaction", ["INSERT INTO p VALUES ('x', 1)"])
    single.same("POST", "/db/execute?transaction&queue&wait", ["INSERT INTO p VALUES ('y', 2)"])
    single.same("GET", "/db/query?" + "q=SELECT+%2A+FROM+p+ORDER+BY+a&level=weak")
    single.same("GET", "/db/query?q=SELECT+1")
    single.same("GET", "/db/query?q=PRAGMA+table_info%28p%29&level=none")


PYRQLITE_OPERATIONS: list[tuple[str, tuple[Any, ...]]] = [
    (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n REAL, at TIMESTAMP, ok BOOLEAN)",
        (),
    ),
    (
        "INSERT INTO notes(body, n, at, ok) VALUES(?, ?, ?, ?)",
        ("it's", 1.5, "2024-01-02 03:04:05", 1),
    ),
    ("INSERT INTO notes(body, n, ok) VALUES(?, ?, ?)", ('say "hi"\n\t😀', 2, 0)),
    ("INSERT INTO notes(body, n) VALUES(?, ?)", (None, 2**62)),
    ("SELECT * FROM notes ORDER BY id", ()),
    ("SELECT id FROM notes WHERE body = ?", ("it's",)),
    ("UPDATE notes SET n = 0 WHERE id > 1", ()),
    ("INSERT INTO notes(id, body) VALUES(1, 'dup')", ()),
    ("SELECT nope FROM notes", ()),
    ("PRAGMA table_info(notes)", ()),
    ("DELETE FROM notes", ()),
]


def pyrqlite_outcomes(side: Side) -> list[Any]:
    """What a pyrqlite user sees for each of ``PYRQLITE_OPERATIONS``."""
    conn = dbapi2.connect(host=side.host, port=side.port, detect_types=dbapi2.PARSE_DECLTYPES)
    seen: list[Any] = []
    try:
        for sql, params in PYRQLITE_OPERATIONS:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
            except dbapi2.Error as exc:
                seen.append(("error", type(exc).__name__, str(exc)))
                continue
            # pyrqlite's fetchall() never ends after a write (rowcount is rows_affected)
            rows = [tuple(row) for row in cur.fetchall()] if cur.description else None
            seen.append(("ok", cur.description, rows, cur.rowcount, cur.lastrowid))
    finally:
        conn.close()
    return seen


def test_pyrqlite_sees_the_same(single: Pair) -> None:
    """Through pyrqlite's DB-API (types converted from ``types``, errors raised)."""
    assert pyrqlite_outcomes(single.emulator) == pyrqlite_outcomes(single.real)


UPSERT = (
    "INSERT INTO stats(day, event, n) VALUES (?, ?, ?)"
    " ON CONFLICT(day, event) DO UPDATE SET n = n + excluded.n"
)


def test_rotate_stats_requests(single: Pair) -> None:
    """The shapes ``rotate_stats.rqlite_store`` sends: parameterised transactions, POST reads."""
    exists = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
    single.same("POST", "/db/query?level=strong", [[exists, "migrations"]])
    schema = "CREATE TABLE stats (day TEXT, event TEXT, n INTEGER, PRIMARY KEY (day, event))"
    batch = [[schema], [UPSERT, "2024-01-01", "sync", 3], [UPSERT, "2024-01-01", "sync", 4]]
    single.same("POST", "/db/execute?transaction", batch)
    single.same("POST", "/db/execute?transaction", batch[1:] + [[UPSERT, "2024-01-02", None, 1]])
    rows = "SELECT day, event, n FROM stats WHERE day BETWEEN ? AND ? ORDER BY day"
    single.same("POST", "/db/query?level=weak", [[rows, "0000-00-00", "9999-99-99"]])
    single.same("POST", "/db/query?level=strong", [[exists, "stats"]])


# --- authentication (-auth) -------------------------------------------------------------

USERS = [
    {"username": "admin", "password": "pw-admin", "perms": ["all"]},
    {"username": "reader", "password": "pw-reader", "perms": ["query"]},
    {"username": "writer", "password": "pw-writer", "perms": ["execute"]},
    {"username": "*", "perms": ["ready"]},
]
ADMIN = ("admin", "pw-admin")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# name -> Authorization header (None: no header)
CREDENTIALS: dict[str, str | None] = {
    "none": None,
    "admin": basic(*ADMIN),
    "admin-lower-case-scheme": "basic " + basic(*ADMIN).split(" ", 1)[1],
    "wrong-password": basic("admin", "nope"),
    "unknown-user": basic("mallory", "pw-admin"),
    "reader-no-execute": basic("reader", "pw-reader"),
    "writer-no-query": basic("writer", "pw-writer"),
    "not-basic": "Bearer pw-admin",
    "bad-base64": "Basic !!!",
    "no-colon": "Basic " + base64.b64encode(b"admin").decode(),
}

SECURED_REQUESTS: list[tuple[str, str, Body]] = [
    ("POST", "/db/execute", ["CREATE TABLE IF NOT EXISTS a (x)", "INSERT INTO a VALUES (1)"]),
    ("POST", "/db/execute?transaction", [["INSERT INTO a VALUES (?)", 2]]),
    ("GET", "/db/execute", None),
    ("GET", q("SELECT count(*) FROM a", "&level=weak"), None),
    ("POST", "/db/query?level=strong", ["SELECT 1"]),
    ("PUT", "/db/query", None),
    ("POST", "/db/request", ["SELECT 1"]),
    ("GET", "/readyz", None),
    ("GET", "/status", None),
    ("GET", "/nodes", None),
    ("GET", "/nope", None),
]


@pytest.fixture(scope="module")
def secured_pair(v8_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A real node with ``-auth`` and an emulated node with the same credentials file."""
    directory = tmp_path_factory.mktemp("fidelity-auth")
    users = directory / "users.json"
    users.write_text(json.dumps(USERS))
    real = RqlitedNode(
        v8_binary, directory / "rqlited", "secured", auth_file=users, credentials=ADMIN
    )
    emulated: EmulatorHandle | None = None
    try:
        real.start()
        real.wait_ready()
        emulated = start_emulator(directory / "emulator", auth_file=users)
        yield Pair(
            Side("rqlited", real.host, real.port), Side("emulator", emulated.host, emulated.port)
        )
    finally:
        real.kill()
        if emulated is not None:
            emulated.stop()


@pytest.mark.parametrize("authorization", list(CREDENTIALS.values()), ids=list(CREDENTIALS))
def test_authentication(secured_pair: Pair, authorization: str | None) -> None:
    """401 (empty body, no ``WWW-Authenticate``) for a missing or wrong credential or a
    missing permission, checked before the method; ``*`` grants ``ready`` to anyone."""
    reset(secured_pair, ADMIN)
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, target, body in SECURED_REQUESTS:
        if target in ("/status", "/nodes"):
            # bodies describe each server's process (not modelled); statuses must agree
            real, emulated = secured_pair.both(method, target, body, headers=headers)
            assert emulated.status == real.status, (target, authorization)
            assert "www-authenticate" not in emulated.headers
            continue
        secured_pair.same(method, target, body, headers=headers)


# --- a two-node cluster: followers, redirects, no leader ----------------------------------


@dataclass
class Clusters:
    """A real two-node cluster and an emulated leader with one follower."""

    real: RqlitedCluster
    real_leader: RqlitedNode
    real_follower: RqlitedNode
    emulated_leader: EmulatorHandle
    emulated_follower: EmulatorHandle

    def leaders(self) -> Pair:
        return Pair(self._real_side(self.real_leader), self._emulated_side(self.emulated_leader))

    def followers(self) -> Pair:
        real = self._real_side(self.real_follower)
        return Pair(real, self._emulated_side(self.emulated_follower))

    def _real_side(self, node: RqlitedNode) -> Side:
        addresses = leader_addresses(self.real_leader.http_url, self.real_leader.raft_addr)
        return Side("rqlited", node.host, node.port, addresses)

    def _emulated_side(self, node: EmulatorHandle) -> Side:
        leader = self.emulated_leader
        addresses = leader_addresses(leader.url, f"{leader.host}:{leader.port}")
        return Side("emulator", node.host, node.port, addresses)


@pytest.fixture(scope="module")
def clusters(v8_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    directory = tmp_path_factory.mktemp("fidelity-cluster")
    real = RqlitedCluster(v8_binary, directory / "rqlited", size=2)
    started: list[EmulatorHandle] = []
    try:
        real.start()
        leader = real.wait_stable()
        (follower,) = real.followers()
        started.append(start_emulator(directory / "emulated-leader"))
        started.append(start_emulator(directory / "emulated-follower", join=started[0].url))
        yield Clusters(real, leader, follower, started[0], started[1])
    finally:
        real.stop()
        for node in reversed(started):
            node.stop()


@pytest.fixture
def cluster(clusters: Clusters) -> Clusters:
    """The clusters, emptied and synced through their leaders."""
    clusters.real.wait_stable()
    reset(clusters.leaders())
    return clusters


def replicated(follower: RqlitedNode, sql: str, expected: list[list[Any]]) -> None:
    """Wait until the real follower's own replica (``level=none``) gives ``expected``."""
    deadline = time.monotonic() + 20
    while True:
        try:
            if follower.query(sql, level="none") == expected:
                return
        except RuntimeError:
            pass  # e.g. "no such table" until the CREATE arrives
        if time.monotonic() > deadline:
            raise AssertionError(f"the follower's replica never showed {expected} for {sql}")
        time.sleep(0.05)


def test_follower_redirects_only_when_asked(cluster: Clusters) -> None:
    """``redirect``: 301 to the leader's API with the same path and raw query; without it
    the follower forwards. Body and PRAGMA checks come first; ``level=none`` is local."""
    followers = cluster.followers()
    followers.same("POST", "/db/execute", ["CREATE TABLE t (a)"])
    steps: list[tuple[str, str, Body]] = [
        ("POST", "/db/execute?redirect", [["INSERT INTO t VALUES(?)", 1]]),
        ("POST", "/db/execute?transaction&redirect", [["INSERT INTO t VALUES(?)", 1]]),
        ("POST", "/db/execute?redirect=false&transaction=1", ["INSERT INTO t VALUES (1)"]),
        ("GET", q("SELECT count(*) FROM t", "&redirect"), None),
        ("GET", q("SELECT count(*) FROM t", "&redirect&level=weak"), None),
        ("GET", q("SELECT count(*) FROM t", "&level=strong&redirect"), None),
        ("GET", q("SELECT count(*) FROM t", "&redirect&level=linearizable"), None),
        ("POST", "/db/query?redirect&level=weak", ["SELECT 1"]),
        ("POST", "/db/request?redirect", ["SELECT 1"]),
        ("POST", "/db/request?redirect", [["INSERT INTO t VALUES(?)", 1]]),
        ("GET", q("SELECT 1", "&redirect&level=none"), None),
        ("POST", "/db/execute?redirect", b"not json"),
        ("POST", "/db/execute?redirect", ["PRAGMA journal_mode=DELETE"]),
    ]
    for method, target, body in steps:
        followers.same(method, target, body)
    # nothing was written through the redirects
    cluster.leaders().same("GET", q("SELECT count(*) FROM t", "&level=strong"))


def test_redirect_followed_like_pyrqlite(cluster: Clusters) -> None:
    """pyrqlite re-sends to the ``Location`` URL as an absolute-form request target."""
    followers = cluster.followers()
    followers.same("POST", "/db/execute", ["CREATE TABLE t (a)"])
    target = "/db/execute?transaction&redirect"
    body = [["INSERT INTO t VALUES(?)", "via 301"]]
    locations = [a.headers["location"] for a in followers.both("POST", target, body)]
    real, emulated = (
        send(side, "POST", location, body)
        for side, location in zip(cluster.leaders().real_and_emulated(), locations, strict=True)
    )
    assert normalise(emulated, followers.emulator) == normalise(real, followers.real)
    cluster.leaders().same("GET", q("SELECT a FROM t", "&level=strong"))


def test_follower_forwards_to_the_leader(cluster: Clusters) -> None:
    """Without ``redirect`` a follower answers with the leader's results, naming it in
    ``X-Rqlite-Served-By``; SQL errors and transactions behave as on the leader."""
    followers = cluster.followers()
    followers.same("POST", "/db/execute", [T, ["INSERT INTO t(k, n) VALUES(?, ?)", "a", 1]])
    followers.same(
        "POST",
        "/db/execute?transaction",
        [["INSERT INTO t(k) VALUES(?)", "b"], ["INSERT INTO t(k) VALUES(?)", "a"]],
    )
    followers.same("POST", "/db/execute", ["INSERT INTO nope VALUES (1)"])
    for level in ("weak", "strong", "linearizable"):
        followers.same("GET", q("SELECT k, n FROM t ORDER BY id", f"&level={level}"))
    followers.same("POST", "/db/query?level=strong", [["SELECT k FROM t WHERE n = ?", 1]])
    followers.same("POST", "/db/query", ["SELECT * FROM nope", "INSERT INTO t(k) VALUES ('w')"])
    followers.same(
        "POST", "/db/request", [["INSERT INTO t(k) VALUES(?)", "c"], "SELECT count(*) FROM t"]
    )
    followers.same("POST", "/db/request?level=strong", ["SELECT count(*) FROM t"])
    followers.same("POST", "/db/execute?timings", ["INSERT INTO t(k) VALUES ('d')"])
    followers.same("POST", "/db/execute?queue&wait", [["INSERT INTO t(k) VALUES(?)", "queued"]])
    cluster.leaders().same("POST", "/db/query?level=strong", ["SELECT k FROM t ORDER BY id"])


def test_follower_reads_its_replica_at_level_none(cluster: Clusters) -> None:
    cluster.leaders().same(
        "POST", "/db/execute", ["CREATE TABLE t (a)", "INSERT INTO t VALUES (1)"]
    )
    replicated(cluster.real_follower, "SELECT count(*) FROM t", [[1]])
    followers = cluster.followers()
    followers.same("GET", q("SELECT count(*) FROM t", "&level=none"))
    followers.same("GET", q("SELECT count(*) FROM t", "&level=none&freshness=1h"))
    followers.same("POST", "/db/request?level=none", ["SELECT a FROM t"])
    followers.same("GET", "/readyz")
    followers.same("GET", "/readyz?noleader")


def test_node_roles_in_status(cluster: Clusters) -> None:
    """``/status`` is mostly about the process (not modelled); the Raft role must agree."""
    for pair, role in ((cluster.leaders(), "Leader"), (cluster.followers(), "Follower")):
        for answer in pair.both("GET", "/status?key=store.raft"):
            assert answer.status == 200
            assert json.loads(answer.body)["state"] == role


LEADERLESS: list[tuple[str, str, Body]] = [
    ("POST", "/db/execute", ["SELECT 1"]),
    ("POST", "/db/execute?transaction&redirect", ["SELECT 1"]),
    ("GET", q("SELECT 1"), None),
    ("GET", q("SELECT 1", "&level=strong"), None),
    ("GET", q("SELECT 1", "&redirect"), None),
    ("POST", "/db/query?level=weak", ["SELECT 1"]),
    ("POST", "/db/request", ["SELECT 1"]),
    ("POST", "/db/execute?queue", ["SELECT 1"]),
    ("GET", "/readyz", None),
    ("GET", "/readyz?noleader", None),
    ("GET", q("SELECT 1", "&level=none&freshness=1ms"), None),
    ("POST", "/db/request?level=none", ["SELECT 1"]),
]


def test_follower_whose_leader_died(cluster: Clusters, tmp_path: Path) -> None:
    """The real leader is killed. First, briefly, the follower still forwards to it and
    reports the transport failure; once Raft notices, v8.43.4 answers 500
    ``leader address: leader not found`` (the emulator: ``set_leader(False)``)."""
    killed = cluster.real_leader
    killed.kill()
    try:
        follower = Side("rqlited", cluster.real_follower.host, cluster.real_follower.port)
        follower.addresses = leader_addresses(killed.http_url, killed.raft_addr)
        first = send(follower, "POST", "/db/execute", ["SELECT 1"])
        if first.status == 200:  # Raft has not noticed yet (it takes about 2 s)
            dead_leader = start_emulator(tmp_path / "dead-leader")
            orphan = start_emulator(tmp_path / "orphan", join=dead_leader.url)
            try:
                emulated = Side("emulator", orphan.host, orphan.port)
                emulated.addresses = leader_addresses(
                    dead_leader.url, f"{dead_leader.host}:{dead_leader.port}"
                )
                dead_leader.stop()
                answer = send(emulated, "POST", "/db/execute", ["SELECT 1"])
                assert _transport(normalise(answer, emulated)) == _transport(
                    normalise(first, follower)
                )
            finally:
                orphan.stop()
        deadline = time.monotonic() + 30
        while send(follower, "POST", "/db/execute", ["SELECT 1"]).status == 200:
            assert time.monotonic() < deadline, "the follower never gave up on its leader"
            time.sleep(0.1)
        cluster.emulated_follower.set_leader(False)
        pair = Pair(follower, cluster.followers().emulator)
        for method, target, body in LEADERLESS:
            pair.same(method, target, body)
    finally:
        cluster.emulated_follower.set_leader(True)
        killed.start()
        cluster.real.wait_stable()
        cluster.real_leader = cluster.real.wait_leader()
        (cluster.real_follower,) = cluster.real.followers()


def _transport(answer: dict[str, Any]) -> dict[str, Any]:
    """The forwarding error's transport detail depends on when the leader died (a broken
    pipe, a refused connection...): keep only ``node failed to process X on remote node at
    <leader>``."""
    body = answer["body"]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        head, sep, _ = body["error"].partition(": ")
        body = {**body, "error": head + sep + "<transport error>"}
    return {**answer, "body": body}
