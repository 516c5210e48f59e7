"""Migration files: statement splitting, ordering, and the seed 000 schema."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotate_stats import migrations
from rotate_stats.database import breakdown_json
from rotate_stats.migrations import load, split_statements

SETTINGS = settings(database=None, deadline=None, max_examples=200)
MIGRATIONS_DIR = Path(migrations.__file__).parent
EVENTS = ["requested", "failed_to_queue", "queued", "started", "completed", "failed"]


# -- split_statements -----------------------------------------------------------------------------


def test_split_drops_comments_and_splits_on_line_end_semicolons() -> None:
    sql = (
        "-- leading comment; with a semicolon;\n"
        "CREATE TABLE a (x INTEGER);\n"
        "   -- indented comment;\n"
        "CREATE TABLE b (\n"
        "    y TEXT -- not a whole-line comment\n"
        ");   \n"
        "\n"
        "CREATE INDEX b_y ON b (y)"
    )
    assert split_statements(sql) == (
        "CREATE TABLE a (x INTEGER)",
        "CREATE TABLE b (\n    y TEXT -- not a whole-line comment\n)",
        "CREATE INDEX b_y ON b (y)",
    )


def test_split_keeps_semicolons_inside_a_line() -> None:
    sql = "INSERT INTO t VALUES ('a;b');\nINSERT INTO t VALUES ('c');\n"
    assert split_statements(sql) == (
        "INSERT INTO t VALUES ('a;b')",
        "INSERT INTO t VALUES ('c')",
    )


def test_split_handles_crlf_and_tabs() -> None:
    sql = "CREATE TABLE a (x INTEGER);\t\r\n-- c\r\nCREATE TABLE b (y INTEGER);\r\n"
    assert split_statements(sql) == ("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)")


@pytest.mark.parametrize("sql", ["", "\n\n", "-- only a comment\n", ";\n;\n", "  ;  "])
def test_split_of_nothing(sql: str) -> None:
    assert split_statements(sql) == ()


statement_bodies = st.lists(
    st.from_regex(r"SELECT [a-z0-9]{1,8}( [a-z0-9]{1,8}){0,3}", fullmatch=True),
    min_size=0,
    max_size=6,
)


@SETTINGS
@given(statement_bodies, st.lists(st.booleans(), min_size=6, max_size=6), st.booleans())
def test_split_round_trips_generated_files(
    bodies: list[str], comments: list[bool], final_semicolon: bool
) -> None:
    lines: list[str] = []
    for i, body in enumerate(bodies):
        if comments[i]:
            lines.append(f"-- about statement {i};")
        last = i == len(bodies) - 1
        lines.append(body if last and not final_semicolon else f"{body};")
    assert split_statements("\n".join(lines)) == tuple(bodies)


# -- load -----------------------------------------------------------------------------------------


def test_load_returns_the_migrations_in_order() -> None:
    loaded = load()
    names = [m.name for m in loaded]
    on_disk = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert names == on_disk
    assert names == sorted(names)
    assert len(names) >= 2
    assert names[0].startswith("0001_")
    assert names[1].startswith("0002_")
    assert names[:2] == ["0001_journal_chat_job_stats", "0002_rotate_stats_applied_claims"]
    for m in loaded:
        assert re.fullmatch(r"[0-9]{4}_[a-z0-9_]+", m.name)
        assert m.statements
        assert all(s.strip() == s and s for s in m.statements)
        assert not any(s.lstrip().startswith("--") for s in m.statements)


def test_migration_numbers_are_unique_and_consecutive() -> None:
    numbers = [int(m.name[:4]) for m in load()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_every_migration_runs_on_sqlite_in_order() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in load():
            for statement in migration.statements:
                conn.execute(statement)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"journal_chat_job_stats", "rotate_stats_applied_claims"} <= tables
    finally:
        conn.close()


# -- the seed 000 schema --------------------------------------------------------------------------

# (name, type, notnull, pk) in column order, as in seed 000.
SEED_000_COLUMNS = [
    ("id", "INTEGER", 0, 1),
    ("retrieved_for", "TEXT", 1, 0),
    ("retrieved_at", "REAL", 1, 0),
    *(
        col
        for event in EVENTS
        for col in ((event, "INTEGER", 1, 0), (f"{event}_breakdown", "TEXT", 1, 0))
    ),
]


def test_0001_creates_exactly_the_seed_000_table() -> None:
    [path] = sorted(MIGRATIONS_DIR.glob("0001_*.sql"))
    statements = split_statements(path.read_text("utf-8"))
    create = [s for s in statements if "journal_chat_job_stats" in s and "CREATE TABLE" in s]
    assert len(create) == 1
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(create[0])
        info = conn.execute("PRAGMA table_info(journal_chat_job_stats)").fetchall()
        # cid, name, type, notnull, dflt_value, pk
        assert [(r[1], r[2].upper(), r[3], r[5]) for r in info] == SEED_000_COLUMNS
        assert [r[0] for r in info] == list(range(len(SEED_000_COLUMNS)))
        assert all(r[4] is None for r in info)  # no defaults

        # retrieved_for is UNIQUE (a unique index on exactly that column)
        unique_cols = []
        for _, index_name, unique, *_ in conn.execute(
            "PRAGMA index_list(journal_chat_job_stats)"
        ).fetchall():
            if unique:
                cols = conn.execute(f"PRAGMA index_info({index_name})").fetchall()
                unique_cols.append([c[2] for c in cols])
        assert unique_cols == [["retrieved_for"]]

        # id is the rowid alias (INTEGER PRIMARY KEY)
        row = ["2024-01-05", 1.5] + [0, "{}"] * len(EVENTS)
        conn.execute(
            f"INSERT INTO journal_chat_job_stats VALUES (NULL, {', '.join('?' for _ in row)})",
            row,
        )
        assert conn.execute("SELECT id, rowid FROM journal_chat_job_stats").fetchone() == (1, 1)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                f"INSERT INTO journal_chat_job_stats VALUES (NULL, {', '.join('?' for _ in row)})",
                row,
            )
    finally:
        conn.close()


def test_0001_adopts_an_existing_table() -> None:
    [migration] = [m for m in load() if m.name.startswith("0001_")]
    conn = sqlite3.connect(":memory:")
    try:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO journal_chat_job_stats VALUES "
            "(NULL, '2024-01-05', 1.0, 1, '{}', 0, '{}', 1, '{}', 1, '{}', 1, '{}', 0, '{}')"
        )
        for statement in migration.statements:  # running it again keeps the row
            conn.execute(statement)
        assert conn.execute("SELECT COUNT(*) FROM journal_chat_job_stats").fetchone() == (1,)
    finally:
        conn.close()


# -- breakdown_json -------------------------------------------------------------------------------


@SETTINGS
@given(st.dictionaries(st.text(max_size=20), st.integers(-(10**12), 10**12), max_size=8))
def test_breakdown_json_is_a_sorted_json_object(breakdown: dict[str, int]) -> None:
    text = breakdown_json(breakdown)
    assert json.loads(text) == breakdown
    keys = list(json.loads(text, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    assert keys == sorted(breakdown)
    # insertion order does not matter
    assert breakdown_json(dict(reversed(list(breakdown.items())))) == text


def test_breakdown_json_known_value() -> None:
    assert breakdown_json({}) == "{}"
    assert breakdown_json({"sync": 2, "greeting": 1}) == '{"greeting":1,"sync":2}'
