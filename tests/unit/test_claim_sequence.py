"""``family.claim_sequence`` and migration 0003's SQL backfill read a claim id alike.

New ledger entries get their sequence from ``family.claim_sequence`` (Python, at
commit); entries written before migration 0003 get it from the migration's UPDATE
(SQL, once). Both feed the same watermarks and the same claim counter floor, so
they must agree on every id: the sequence is the digits after the last ``/``, and
an id of another shape has none (None / NULL).

The SQL is the migration's own expression, taken from the shipped file and run on
an in-memory SQLite over the same ids.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.migrations import load

MIGRATION = "0003_claim_watermarks"


def backfill_expression() -> str:
    """The right-hand side of ``SET sequence = ...`` in migration 0003's UPDATE."""
    (migration,) = [m for m in load() if m.name == MIGRATION]
    (update,) = [s for s in migration.statements if s.lstrip().upper().startswith("UPDATE")]
    assert f"UPDATE {family.CLAIMS_TABLE} SET sequence = " in update
    return update.split("SET sequence = ", 1)[1]


@pytest.fixture(scope="module")
def backfill() -> Iterator[sqlite3.Connection]:
    """A ledger of the pre-0003 shape plus the two columns, on an in-memory SQLite."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        f"CREATE TABLE {family.CLAIMS_TABLE} (claim_id TEXT PRIMARY KEY, "
        "retrieved_for TEXT NOT NULL, applied_at REAL NOT NULL, sequence INTEGER)"
    )
    yield conn
    conn.close()


def sql_sequence(conn: sqlite3.Connection, claim_id: str) -> object:
    """What migration 0003's UPDATE stores for a ledger entry with this id."""
    conn.execute(f"DELETE FROM {family.CLAIMS_TABLE}")
    conn.execute(
        f"INSERT INTO {family.CLAIMS_TABLE} (claim_id, retrieved_for, applied_at) "
        "VALUES (?, '2024-06-10', 1.0)",
        (claim_id,),
    )
    conn.execute(f"UPDATE {family.CLAIMS_TABLE} SET sequence = {backfill_expression()}")
    ((value,),) = conn.execute(f"SELECT sequence FROM {family.CLAIMS_TABLE}").fetchall()
    return value


# Characters of ids. NUL is left out: SQLite's text functions (length, rtrim) stop at
# the first NUL, and no claim id can hold one (claim.lua builds "<hex run id>.<hex>/
# <date>/<sequence>"). Everything else is fair game, newlines and non-ASCII digits too.
JUNK = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
PREFIX = st.text(JUNK, max_size=12) | st.sampled_from(["", "run.0123abcd", "a/b", "/", "x/20000"])
DIGITS = st.text("0123456789", max_size=18)
"""At most 18 digits: every integer this long fits in 64 bits (see the last test)."""
LONG = re.compile(r"/[0-9]{19,}\Z")
SUFFIX = st.just("") | st.text(JUNK, max_size=4) | st.sampled_from(["\n", " ", "/", "x", "٣"])


@st.composite
def claim_ids(draw: st.DrawFn) -> str:
    """A prefix (with or without '/'), an optional '/', digits, and maybe junk after."""
    return draw(PREFIX) + draw(st.sampled_from(["/", "", "//"])) + draw(DIGITS) + draw(SUFFIX)


@settings(max_examples=600, deadline=None)
@given(claim_ids())
@example("run.0123abcd/19884/7")  # the job's own shape
@example("run.0123abcd/19884")  # before sequences (9765017): the date reads as one
@example("a/007")  # leading zeros: 7 both ways
@example("a/5\n")  # a trailing newline is junk: Python's "$" would take the 5
@example("a/")  # no digits
@example("5")  # no '/'
@example("///")
@example("a/٣")  # a non-ASCII digit is no digit
@example("a/+5")
@example("a/-5")
@example("a/ 5")
def test_python_and_the_migration_read_the_same_sequence(
    backfill: sqlite3.Connection, claim_id: str
) -> None:
    assume(not LONG.search(claim_id))  # junk digits may lengthen the run: see the last test
    assert family.claim_sequence(claim_id) == sql_sequence(backfill, claim_id)


@settings(max_examples=300, deadline=None)
@given(st.text(JUNK, max_size=30))
def test_they_agree_on_arbitrary_text_too(backfill: sqlite3.Connection, text: str) -> None:
    assume(not LONG.search(text))
    assert family.claim_sequence(text) == sql_sequence(backfill, text)


@settings(max_examples=200, deadline=None)
@given(st.text(JUNK, max_size=12), st.integers(0, 10**18 - 1))
def test_an_id_of_the_jobs_shape_gives_its_sequence(
    backfill: sqlite3.Connection, prefix: str, sequence: int
) -> None:
    claim_id = f"{prefix}/19884/{sequence}"
    assert family.claim_sequence(claim_id) == sequence
    assert sql_sequence(backfill, claim_id) == sequence


@settings(max_examples=200, deadline=None)
@given(st.text(JUNK.filter(lambda c: c not in "0123456789"), min_size=1, max_size=3), DIGITS)
def test_an_id_that_does_not_end_in_slash_digits_has_no_sequence(
    backfill: sqlite3.Connection, junk: str, digits: str
) -> None:
    """Junk after the digits, or no '/' at all: None in Python, NULL in SQL."""
    for claim_id in (f"run/{digits}{junk}", digits, f"run{digits}"):
        assert family.claim_sequence(claim_id) is None, claim_id
        assert sql_sequence(backfill, claim_id) is None, claim_id


@pytest.mark.parametrize("digits", ["1234567890123456789", "9223372036854775807", "9" * 25])
def test_they_agree_past_18_digits(backfill: sqlite3.Connection, digits: str) -> None:
    claim_id = f"run/19884/{digits}"
    assert family.claim_sequence(claim_id) == sql_sequence(backfill, claim_id)


@pytest.mark.parametrize("claim_id", ["run.0123/19884/7", "legacy-claim", "a/b/"])
def test_a_commit_never_sends_a_null_parameter(claim_id: str) -> None:
    """rqlite v6 refuses a JSON null parameter ("HTTP 400: unsupported type"): an id
    without a sequence must still commit there (it travels as "", NULLIF in the SQL)."""
    from rotate_stats.database import DateCommit, commit_statements
    from rotate_stats.invariants import DayCounts

    item = DateCommit(19884, claim_id, DayCounts({"requested": 1}, {"requested": {"sync": 1}}))
    for _, params in commit_statements(item, "2024-06-10", 1.5):
        assert None not in params, params
