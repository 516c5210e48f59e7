"""``/db/query`` as the reference describes it (§4: shapes, types, value encoding)."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from tests.rqlite_emulator.client import Client


def get(client: Client, sql: str, flags: str = "") -> dict[str, object]:
    resp = client.get(f"/db/query?q={quote_plus(sql)}{'&' + flags if flags else ''}")
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    result: dict[str, object] = resp.json()
    return result


def first(client: Client, sql: str) -> dict[str, object]:
    result = client.query([sql])["results"][0]
    assert isinstance(result, dict)
    return result


@pytest.fixture
def people(client: Client) -> Client:
    client.execute(
        [
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, n REAL)",
            "INSERT INTO people VALUES (1, 'fiona', 2.5), (2, NULL, 3)",
        ]
    )
    return client


def test_get_single_statement(people: Client) -> None:
    assert get(people, "SELECT * FROM people ORDER BY id", "level=weak") == {
        "results": [
            {
                "columns": ["id", "name", "n"],
                "types": ["integer", "text", "real"],
                "values": [[1, "fiona", 2.5], [2, None, 3]],
            }
        ]
    }


def test_post_several_statements_with_per_statement_errors(people: Client) -> None:
    body = people.query(
        [["SELECT name FROM people WHERE id = ?", 1], "SELECT * FROM bar", "SELECT 1 AS one"]
    )
    assert body["results"] == [
        {"columns": ["name"], "types": ["text"], "values": [["fiona"]]},
        {"error": "no such table: bar"},
        {"columns": ["one"], "types": ["integer"], "values": [[1]]},
    ]


def test_empty_result_has_columns_and_types_but_no_values(people: Client) -> None:
    assert first(people, "SELECT id, name FROM people WHERE 0") == {
        "columns": ["id", "name"],
        "types": ["integer", "text"],
    }


def test_missing_q_gives_empty_results_and_empty_q_is_400(client: Client) -> None:
    assert client.get("/db/query").json() == {"results": []}
    resp = client.get("/db/query?q=")
    assert (resp.status, resp.text) == (400, "query parameter not set\n")


def test_write_through_query_fails(people: Client) -> None:
    body = people.query(["INSERT INTO people(name) VALUES('x')", "CREATE TABLE z (a)"])
    message = "attempt to change database via query operation"
    assert body["results"] == [{"error": message}, {"error": message}]
    assert first(people, "SELECT count(*) FROM people")["values"] == [[2]]


def test_declared_types_are_lower_cased_verbatim(client: Client) -> None:
    client.execute(
        [
            "CREATE TABLE d (a INT, b VARCHAR(255), c NUMERIC, e Foo, f)",
            "INSERT INTO d VALUES (1,2,3,4,5)",
        ]
    )
    assert first(client, "SELECT * FROM d")["types"] == [
        "int",
        "varchar(255)",
        "numeric",
        "foo",
        "integer",
    ]


def test_expression_types_come_from_first_row(client: Client) -> None:
    result = first(client, "SELECT 5, 1.5, 'x', NULL, count(*)")
    assert result["types"] == ["integer", "real", "text", "", "integer"]
    assert first(client, "SELECT 5 WHERE 0") == {"columns": ["5"], "types": [""]}


def test_pragma_table_info_types(client: Client) -> None:
    client.execute(["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"])
    result = get(client, "PRAGMA table_info(foo)")["results"][0]  # type: ignore[index]
    assert result["types"] == ["integer", "text", "text", "integer", "", "integer"]


def test_duplicate_column_names_are_kept(client: Client) -> None:
    assert first(client, "SELECT 1 AS a, 2 AS a")["columns"] == ["a", "a"]


def test_float_formatting(client: Client) -> None:
    resp = client.get("/db/query?q=" + quote_plus("SELECT 2.0, 1e-7, 1e21, 1e20, 0.000001, -0.5"))
    assert b'"values":[[2,1e-7,1e+21,100000000000000000000,0.000001,-0.5]]' in resp.body


def test_infinity_is_a_500(client: Client) -> None:
    resp = client.get("/db/query?q=" + quote_plus("SELECT 1e999"))
    assert resp.status == 500
    assert resp.text == (
        "json: error calling MarshalJSON for type *http.DBResults: json: unsupported value: +Inf\n"
    )


def test_blobs_base64_or_byte_array_and_text_columns(client: Client) -> None:
    client.execute(
        [
            "CREATE TABLE b (x BLOB, y TEXT, z VARCHAR(4))",
            ["INSERT INTO b VALUES (?, ?, ?)", [0, 1, 255], "x'4142'", "x'4344'"],
        ]
    )
    assert first(client, "SELECT * FROM b")["values"] == [["AAH/", "AB", "CD"]]
    body = client.query(["SELECT x FROM b"], "blob_array")
    assert body["results"][0]["values"] == [[[0, 1, 255]]]
    # an expression never reports blob: the value is a string and the type text
    assert first(client, "SELECT x'4142'") == {
        "columns": ["x'4142'"],
        "types": ["text"],
        "values": [["AB"]],
    }


def test_boolean_columns(client: Client) -> None:
    client.execute(
        ["CREATE TABLE f (a BOOLEAN, b BOOL)", "INSERT INTO f VALUES (1, 1), (0, 0), (5, 5)"]
    )
    assert first(client, "SELECT * FROM f")["values"] == [[True, 1], [False, 0], [True, 5]]


def test_date_columns(client: Client) -> None:
    client.execute(
        [
            "CREATE TABLE dt (d DATE, t DATETIME, s TIMESTAMP, plain TEXT)",
            "INSERT INTO dt VALUES ('2004-02-14', '2004-02-14 07:15:00.500000', 0, '2004-02-14')",
            "INSERT INTO dt VALUES ('garbage', '2004-02-14T07:15:00+05:30', 1700000000000, 'x')",
            "INSERT INTO dt VALUES (1.5, '2004-02-14 07:15', NULL, NULL)",
        ]
    )
    assert first(client, "SELECT * FROM dt")["values"] == [
        ["2004-02-14T00:00:00Z", "2004-02-14T07:15:00.5Z", "1970-01-01T00:00:00Z", "2004-02-14"],
        ["0001-01-01T00:00:00Z", "2004-02-14T07:15:00+05:30", "2023-11-14T22:13:20Z", "x"],
        [1.5, "2004-02-14T07:15:00Z", None, None],
    ]
    # an aggregate loses the declared type, so no conversion
    assert first(client, "SELECT max(d) FROM dt WHERE d = '2004-02-14'")["values"] == [
        ["2004-02-14"]
    ]


def test_associative_form(people: Client) -> None:
    body = people.query(
        [
            "SELECT id, name FROM people ORDER BY id",
            "SELECT * FROM people WHERE 0",
            "SELECT * FROM nope",
        ],
        "associative",
    )
    assert body["results"] == [
        {
            "types": {"id": "integer", "name": "text"},
            "rows": [{"id": 1, "name": "fiona"}, {"id": 2, "name": None}],
        },
        {"types": {"id": "integer", "n": "real", "name": "text"}, "rows": []},
        {"rows": [], "error": "no such table: nope"},
    ]


@pytest.mark.parametrize(
    "level", ["none", "weak", "linearizable", "strong", "auto", "bogus", "NONE"]
)
def test_every_level_reads_the_same(people: Client, level: str) -> None:
    result = get(people, "SELECT count(*) FROM people", f"level={level}")
    assert result["results"] == [{"columns": ["count(*)"], "types": ["integer"], "values": [[2]]}]


def test_query_transaction_flag_and_timings(people: Client) -> None:
    body = people.query(["SELECT 1", "SELECT * FROM nope", "SELECT 2"], "transaction&timings")
    assert [r.get("values") for r in body["results"]] == [[[1]], None, [[2]]]
    assert body["results"][1]["error"] == "no such table: nope"
    assert isinstance(body["time"], float)


def test_pretty_uses_four_spaces(client: Client) -> None:
    text = client.get("/db/query?q=SELECT+1&pretty").text
    assert text.startswith('{\n    "results": [\n        {\n            "columns": [')
