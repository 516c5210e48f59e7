"""``/db/execute`` as the reference describes it (§2 bodies, §3 results)."""

from __future__ import annotations

import time

from tests.rqlite_emulator import EmulatorHandle
from tests.rqlite_emulator.client import Client

SCHEMA = "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)"


def rows(client: Client, sql: str) -> list[list[object]]:
    result = client.query([sql])["results"][0]
    assert "error" not in result, result
    return list(result.get("values", []))


def test_plain_statements_and_omitted_zero_counts(client: Client) -> None:
    body = client.execute([SCHEMA, "INSERT INTO t VALUES('a', 1)", "UPDATE t SET n = 2 WHERE 0"])
    # CREATE on a fresh connection: {}; an UPDATE matching nothing keeps the stale id
    assert body == {
        "results": [{}, {"last_insert_id": 1, "rows_affected": 1}, {"last_insert_id": 1}]
    }


def test_positional_and_named_parameters(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute(
        [
            ["INSERT INTO t(k, n) VALUES(?, ?)", "a", 1],
            ["INSERT INTO t(k, n) VALUES(:k, :n)", {"k": "b", "n": 2.5}],
            ["INSERT INTO t(k, n) VALUES(@k, $n)", {"k": "c", "n": None}],
        ]
    )
    assert body["results"] == [
        {"last_insert_id": 1, "rows_affected": 1},
        {"last_insert_id": 2, "rows_affected": 1},
        {"last_insert_id": 3, "rows_affected": 1},
    ]
    assert rows(client, "SELECT k, n FROM t ORDER BY k") == [["a", 1], ["b", 2.5], ["c", None]]


def test_parameter_conversion(client: Client) -> None:
    client.execute(["CREATE TABLE p (v)"])
    client.execute(
        [
            ["INSERT INTO p VALUES(?)", 1.0],
            ["INSERT INTO p VALUES(?)", True],
            ["INSERT INTO p VALUES(?)", "x'4142'"],
            ["INSERT INTO p VALUES(?)", [1, 2, 255]],
            ["INSERT INTO p VALUES(?)", 'it\'s "quoted"\n✓'],
        ]
    )
    body = client.query(["SELECT typeof(v), v FROM p ORDER BY rowid"])
    assert body["results"][0]["values"] == [
        ["real", 1],
        ["integer", 1],
        # the expression column's type was inferred from row 1 ("real"), so blobs are base64
        ["blob", "QUI="],
        ["blob", "AQL/"],
        ["text", 'it\'s "quoted"\n✓'],
    ]


def test_parameter_count_rules(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute(
        [
            ["INSERT INTO t(k, n) VALUES(?, ?)", "a"],
            ["INSERT INTO t(k, n) VALUES(?, ?)", "b", 2, "ignored"],
            ["INSERT INTO t(k, n) VALUES(:k, :n)", {"k": "c"}],
        ]
    )
    assert body["results"] == [
        {"error": "not enough args to execute query: want 2 got 1"},
        {"last_insert_id": 1, "rows_affected": 1},
        {"error": "not enough args to execute query: want 2 got 1"},
    ]
    assert rows(client, "SELECT k, n FROM t") == [["b", 2]]


def test_named_parameter_matching_nothing_leaves_null(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute([["INSERT INTO t(k, n) VALUES(:k, :n)", {"k": "c", "zzz": 1}]])
    assert body["results"] == [{"last_insert_id": 1, "rows_affected": 1}]
    assert rows(client, "SELECT k, n FROM t") == [["c", None]]


def test_errors_without_transaction_keep_going(client: Client) -> None:
    body = client.execute(
        [SCHEMA, "INSERT INTO nope VALUES(1)", "blah", SCHEMA, "INSERT INTO t VALUES('a', 1)"]
    )
    assert body["results"] == [
        {},
        {"error": "no such table: nope"},
        {"error": 'near "blah": syntax error'},
        {"error": "table t already exists"},
        {"last_insert_id": 1, "rows_affected": 1},
    ]


def test_transaction_rolls_back_and_returns_short_list(client: Client) -> None:
    client.execute([SCHEMA, "INSERT INTO t VALUES('a', 1)"])
    body = client.execute(
        [
            "INSERT INTO t VALUES('b', 2)",
            "INSERT INTO t VALUES('a', 3)",
            "INSERT INTO t VALUES('c', 4)",
        ],
        "transaction",
    )
    assert body == {
        "results": [
            {"last_insert_id": 2, "rows_affected": 1},
            {"error": "UNIQUE constraint failed: t.k"},
        ]
    }
    assert rows(client, "SELECT k FROM t") == [["a"]]


def test_transaction_flag_counts_by_presence(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute(
        ["INSERT INTO t VALUES('a', 1)", "INSERT INTO t VALUES('a', 2)"], "transaction=false"
    )
    assert body["results"][-1] == {"error": "UNIQUE constraint failed: t.k"}
    assert rows(client, "SELECT k FROM t") == []


def test_stale_last_insert_id_after_conflicts_and_ddl(client: Client) -> None:
    client.execute([SCHEMA, "CREATE TABLE other (x)", "INSERT INTO other VALUES (1), (2)"])
    body = client.execute(
        [
            "INSERT INTO t VALUES('a', 1), ('b', 2)",
            "INSERT OR IGNORE INTO t VALUES('a', 9)",
            "INSERT INTO t VALUES('a', 5) ON CONFLICT(k) DO UPDATE SET n = excluded.n",
            "INSERT OR REPLACE INTO t VALUES('b', 7)",
            "DROP TABLE other",
            "SELECT * FROM t",
        ]
    )
    assert body["results"] == [
        {"last_insert_id": 2, "rows_affected": 2},
        {"last_insert_id": 2},
        {"last_insert_id": 2, "rows_affected": 1},
        {"last_insert_id": 3, "rows_affected": 1},
        {"last_insert_id": 3, "rows_affected": 1},
        {"last_insert_id": 3, "rows_affected": 1},
    ]


def test_empty_sql_is_skipped_and_multi_statement_reports_last(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute(["", "INSERT INTO t VALUES('a', 1); INSERT INTO t VALUES('b', 2)"])
    assert body["results"] == [{"last_insert_id": 2, "rows_affected": 1}]
    assert len(rows(client, "SELECT * FROM t")) == 2


def test_returning_runs_as_query(client: Client) -> None:
    client.execute([SCHEMA])
    body = client.execute(["INSERT INTO t VALUES('a', 1) RETURNING k, n"])
    assert body["results"] == [
        {"columns": ["k", "n"], "types": ["text", "integer"], "values": [["a", 1]]}
    ]


def test_text_plain_body_is_one_statement(client: Client) -> None:
    resp = client.post(
        "/db/execute",
        "CREATE TABLE z (a); INSERT INTO z VALUES (1)",
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status == 200
    assert resp.json() == {"results": [{"last_insert_id": 1, "rows_affected": 1}]}


def test_body_errors_are_400_plain_text(client: Client) -> None:
    cases = {
        b"": "invalid JSON body\n",
        b"not json": "invalid JSON body\n",
        b"{}": "invalid request\n",
        b"{bad": "invalid request\n",  # v8 reads token by token: "{" is enough to refuse
        b'"SELECT 1"': "invalid request\n",
        b'[1, {"bad': "invalid request\n",  # the first problem wins
        b'["SELECT 1",]': "invalid JSON body\n",
        b"[1]": "invalid request\n",
        b"[[]]": "invalid request\n",
        b"[]": "no statements\n",
        b'[["SELECT ?", {"a": {"b": 1}}]]': "unsupported type map[string]interface {}\n",
        b'[["SELECT ?", [1, 256]]]': "unsupported type 256\n",
        b'[["SELECT ?", 1e999]]': "invalid number 1e999\n",
    }
    for raw, message in cases.items():
        resp = client.post("/db/execute", raw)
        assert (resp.status, resp.text) == (400, message), raw
        assert resp.headers["content-type"] == "text/plain; charset=utf-8"


def test_nothing_after_the_closing_bracket_is_read(client: Client) -> None:
    resp = client.post("/db/execute", b'["SELECT 1"] trailing {')
    assert (resp.status, resp.json()) == (200, {"results": [{}]})


def test_timings_and_raft_index(client: Client) -> None:
    body = client.execute([SCHEMA], "timings&raft_index")
    assert isinstance(body["time"], float) and body["time"] > 0
    assert isinstance(body["results"][0]["time"], float)
    assert isinstance(body["raft_index"], int)
    assert "time" not in client.execute(["SELECT 1"])


def test_execute_ignores_associative(client: Client) -> None:
    """v8 never sets the rows format on /db/execute (v9.2+ adds ``"rows": null``)."""
    body = client.execute([SCHEMA, "INSERT INTO t VALUES('a', 1)", "nope"], "associative")
    assert body["results"] == [
        {},
        {"last_insert_id": 1, "rows_affected": 1},
        {"error": 'near "nope": syntax error'},
    ]
    returning = client.execute(["INSERT INTO t VALUES('b', 2) RETURNING k"], "associative")
    assert returning["results"] == [{"columns": ["k"], "types": ["text"], "values": [["b"]]}]


def test_queue_answers_at_once_and_applies_later(client: Client) -> None:
    client.execute([SCHEMA])
    resp = client.post("/db/execute?queue", [["INSERT INTO t VALUES(?, ?)", "q", 1]])
    body = resp.json()
    assert resp.status == 200 and body["results"] == [] and body["sequence_number"] > 0
    deadline = time.monotonic() + 5
    while not rows(client, "SELECT k FROM t") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rows(client, "SELECT k FROM t") == [["q"]]


def test_queue_wait_blocks_until_applied(client: Client) -> None:
    client.execute([SCHEMA])
    first = client.post("/db/execute?queue&wait", ["INSERT INTO t VALUES('w', 1)"]).json()
    assert rows(client, "SELECT k FROM t") == [["w"]]
    second = client.post("/db/execute?queue&wait", []).json()  # a pure flush
    assert second["sequence_number"] > first["sequence_number"]
    assert client.post("/db/execute?queue", []).status == 400


def test_queue_needs_a_leader_unless_noleader(node: EmulatorHandle, client: Client) -> None:
    node.set_leader(False)
    resp = client.post("/db/execute?queue", ["SELECT 1"])
    assert (resp.status, resp.text) == (500, "leader address: leader not found\n")
    assert client.post("/db/execute?queue&noleader", ["SELECT 1"]).status == 200
