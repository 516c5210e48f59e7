"""``/db/request`` (§5) and top-level errors (§6)."""

from __future__ import annotations

from tests.rqlite_emulator.client import Client


def test_mixed_reads_and_writes(client: Client) -> None:
    resp = client.post(
        "/db/request",
        [
            "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)",
            ["INSERT INTO foo(name) VALUES(?)", "fiona"],
            "SELECT * FROM foo",
            "SELECT * FROM bar",
        ],
    )
    assert resp.status == 200
    assert resp.json() == {
        "results": [
            {},
            {"last_insert_id": 1, "rows_affected": 1},
            {"columns": ["id", "name"], "types": ["integer", "text"], "values": [[1, "fiona"]]},
            {"error": "no such table: bar"},
        ]
    }


def test_associative_request(client: Client) -> None:
    client.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)"])
    body = client.post(
        "/db/request?associative",
        [["INSERT INTO foo(name) VALUES(?)", "fiona"], "SELECT * FROM foo", "SELECT * FROM bar"],
    ).json()
    assert body["results"] == [
        {"last_insert_id": 1, "rows_affected": 1, "rows": None},
        {"types": {"id": "integer", "name": "text"}, "rows": [{"id": 1, "name": "fiona"}]},
        {"error": "no such table: bar"},
    ]


def test_transaction_stops_at_failed_execution_but_not_at_prepare_errors(client: Client) -> None:
    client.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (1)"])
    body = client.post(
        "/db/request?transaction",
        [
            "INSERT INTO foo VALUES (2)",
            "SELECT * FROM bar",  # fails to prepare: error entry, processing goes on
            "INSERT INTO foo VALUES (1)",  # fails to execute: rollback and stop
            "INSERT INTO foo VALUES (3)",
        ],
    ).json()
    assert body["results"] == [
        {"last_insert_id": 2, "rows_affected": 1},
        {"error": "no such table: bar"},
        {"error": "UNIQUE constraint failed: foo.id"},
    ]
    assert client.query(["SELECT id FROM foo"])["results"][0]["values"] == [[1]]


def test_read_only_request_is_served_as_query(client: Client) -> None:
    body = client.post("/db/request?level=none", ["SELECT 1 AS a", "SELECT 2 AS b"]).json()
    assert body["results"] == [
        {"columns": ["a"], "types": ["integer"], "values": [[1]]},
        {"columns": ["b"], "types": ["integer"], "values": [[2]]},
    ]


def test_request_is_post_only_and_rejects_bad_bodies(client: Client) -> None:
    assert client.get("/db/request").status == 405
    resp = client.post("/db/request", b"[]")
    assert (resp.status, resp.text) == (400, "no statements\n")


def test_disallowed_pragma_is_a_top_level_error(client: Client) -> None:
    for path in ("/db/execute", "/db/query", "/db/request"):
        for sql in (
            "PRAGMA journal_mode=DELETE",
            "pragma main.synchronous = 0",
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "PRAGMA wal_autocheckpoint = 10",
        ):
            resp = client.post(path, ["CREATE TABLE ok (a)", sql])
            assert resp.status == 200
            assert resp.json() == {"results": [], "error": "disallowed pragma"}, (path, sql)
            assert "x-rqlite-served-by" not in resp.headers
    # the whole request was rejected: the CREATE did not run
    assert client.query(["SELECT * FROM ok"])["results"] == [{"error": "no such table: ok"}]


def test_query_only_is_allowed_and_sticks_to_the_write_connection(client: Client) -> None:
    """v8.43.4 does not refuse ``PRAGMA query_only=`` (later versions do)."""
    assert client.execute(["CREATE TABLE q (a)", "PRAGMA query_only=1"])["results"] == [{}, {}]
    assert client.query(["SELECT count(*) FROM q"])["results"][0]["values"] == [[0]]
    failed = client.execute(["INSERT INTO q VALUES (1)"])["results"]
    assert failed == [{"error": "attempt to write a readonly database"}]
    client.execute(["PRAGMA query_only=0"])
    assert client.execute(["INSERT INTO q VALUES (1)"])["results"] == [
        {"last_insert_id": 1, "rows_affected": 1}
    ]


def test_commit_failure_is_a_top_level_error(client: Client) -> None:
    body = client.execute(["CREATE TABLE c (a)", "COMMIT"], "transaction")
    assert body == {"results": [], "error": "cannot commit - no transaction is active"}


def test_pragma_reads_are_allowed(client: Client) -> None:
    resp = client.get("/db/query?q=PRAGMA+foreign_keys")
    assert resp.json()["results"][0]["values"] == [[0]]
