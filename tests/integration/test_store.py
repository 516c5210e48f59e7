"""The Store contract, on every backend: migrations, commits, the ledger, merges, errors."""

from __future__ import annotations

import json
import re
import string

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.database import (
    DateCommit,
    Store,
    migrate,
    migration_statements,
    pending_migrations,
    require_migrated,
)
from rotate_stats.dates import parse_iso
from rotate_stats.errors import DataError, NotMigrated, StoreError
from rotate_stats.invariants import DayCounts
from rotate_stats.migrations import Migration, load
from rotate_stats.report import ExitCode
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import foreign_write, redis_dump, stored_tally, tally_redis
from tests.integration.test_faults import NOW

D = 19_900
SEED_TABLE = (
    "CREATE TABLE journal_chat_job_stats (id INTEGER PRIMARY KEY, retrieved_for TEXT UNIQUE "
    "NOT NULL, retrieved_at REAL NOT NULL, requested INTEGER NOT NULL, requested_breakdown TEXT "
    "NOT NULL, failed_to_queue INTEGER NOT NULL, failed_to_queue_breakdown TEXT NOT NULL, queued "
    "INTEGER NOT NULL, queued_breakdown TEXT NOT NULL, started INTEGER NOT NULL, "
    "started_breakdown TEXT NOT NULL, completed INTEGER NOT NULL, completed_breakdown TEXT NOT "
    "NULL, failed INTEGER NOT NULL, failed_breakdown TEXT NOT NULL)"
)


def run_sql(store: Store, *statements: tuple[str, tuple[object, ...]]) -> None:
    store._transaction(list(statements))  # type: ignore[attr-defined]


def test_migrate_applies_in_order_once(bare_store: Store) -> None:
    with pytest.raises(NotMigrated) as info:
        require_migrated(bare_store)
    assert info.value.pending == [m.name for m in load()]
    assert migrate(bare_store) == [m.name for m in load()]
    assert bare_store.applied_migrations() == [m.name for m in load()]
    assert migrate(bare_store) == [] and pending_migrations(bare_store) == []


def schema(store: Store) -> list[tuple[object, ...]]:
    sql = "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
    if hasattr(store, "_query") and store.description.startswith("rqlite"):
        return [tuple(r) for r in store._query(sql, (), "strong")]  # type: ignore[attr-defined]
    return [tuple(r) for r in store._query(sql)]  # type: ignore[attr-defined]


def test_a_resent_migration_changes_nothing_and_is_reported_applied(bare_store: Store) -> None:
    """What a retry after a lost answer does: the very same transaction arrives twice."""
    migrate(bare_store)
    before = schema(bare_store)
    records = bare_store.applied_migrations()
    for migration in load():
        with pytest.raises(StoreError, match="UNIQUE"):  # the raw resend fails on its record...
            run_sql(bare_store, *migration_statements(migration))
        bare_store.apply_migration(migration)  # ...which apply_migration recognises: success
    assert schema(bare_store) == before and bare_store.applied_migrations() == records


def test_a_failing_migration_is_still_an_error(bare_store: Store) -> None:
    """Recognising "already applied" must not swallow real failures."""
    broken = Migration("0000_broken", ("CREATE TABLE t (",))
    with pytest.raises(StoreError, match="syntax error|incomplete input"):
        bare_store.apply_migration(broken)
    assert broken.name not in bare_store.applied_migrations()


def test_migrate_adopts_an_existing_table_untouched(bare_store: Store) -> None:
    row = ("2023-01-01", 5.0, 1, '{"sync":1}', 0, "{}", 1, '{"sync":1}', 1, '{"sync":1}', 1,
           '{"sync":1}', 0, "{}")  # fmt: skip
    run_sql(
        bare_store,
        (SEED_TABLE, ()),
        (f"INSERT INTO journal_chat_job_stats ({', '.join(family.COLUMNS)}) VALUES "
         f"({', '.join('?' for _ in family.COLUMNS)})", row),
    )  # fmt: skip
    migrate(bare_store)
    (stored,) = bare_store.rows(None, None)
    assert stored.retrieved_for == "2023-01-01" and stored.retrieved_at == 5.0
    assert stored.day.breakdown("completed") == {"sync": 1}


def test_commit_inserts_merges_and_refuses_a_claim_twice(store: Store) -> None:
    day = DayCounts({"requested": 3}, {"requested": {"sync": 2, "greeting": 1}})
    assert store.commit([DateCommit(D, "a/1", day)], 10.0)[0].row_created
    late = DayCounts({"requested": 2}, {"requested": {"sync": 1, "summarize": 1}})
    (merged,) = store.commit([DateCommit(D, "b/1", late)], 20.0)
    assert merged.claim_applied and not merged.row_created
    (again,) = store.commit([DateCommit(D, "b/1", late)], 30.0)
    assert not again.claim_applied
    (row,) = store.rows(None, None)
    assert row.day.count("requested") == 5 and row.retrieved_at == 20.0
    assert row.day.breakdown("requested") == {"greeting": 1, "summarize": 1, "sync": 3}


def test_empty_date_gets_zero_row_once_and_keeps_an_existing_row(store: Store) -> None:
    (first,) = store.commit([DateCommit(D, "", DayCounts())], 1.0)
    (second,) = store.commit([DateCommit(D, "", DayCounts())], 2.0)
    assert first.row_created and not second.row_created
    (row,) = store.rows(None, None)
    assert row.retrieved_at == 1.0 and row.day.count("requested") == 0
    assert row.day.breakdowns == {e: {} for e in family.EVENTS}


def test_sql_error_in_a_batch_commits_nothing_and_keeps_claims(
    redis_client: redis.Redis, store: Store
) -> None:
    for d in (D, D + 1, D + 2):
        foreign_write(redis_client, d, "requested", "sync", 2)
    trigger = (
        "CREATE TRIGGER boom BEFORE INSERT ON journal_chat_job_stats "
        f"WHEN NEW.retrieved_for = '{_iso(D + 1)}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    run_sql(store, (trigger, ()))
    report = rotate(redis_client, store, RotateOptions(first=D, last=D + 2), now=NOW)
    assert report.exit_code is ExitCode.FAILURE and "boom" in (report.error or "")
    assert store.rows(None, None) == []  # not even the date before the failing one
    assert all(redis_client.exists(family.claim_id_key(d)) for d in (D, D + 1, D + 2))
    run_sql(store, ("DROP TRIGGER boom", ()))
    assert rotate(redis_client, store, RotateOptions(first=D, last=D + 2), now=NOW).error is None
    assert tally_redis(redis_client) == {}
    assert {d: v for (d, e, k), v in stored_tally(store).items() if k is None} == {
        D: 2, D + 1: 2, D + 2: 2}  # fmt: skip


def test_corrupt_stored_breakdown_stops_the_merge(redis_client: redis.Redis, store: Store) -> None:
    foreign_write(redis_client, D, "requested", "sync")
    rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    run_sql(store, (
        "UPDATE journal_chat_job_stats SET requested_breakdown = ? WHERE retrieved_for = ?",
        ("{not json", _iso(D))))  # fmt: skip
    foreign_write(redis_client, D, "requested", "sync")
    before = redis_dump(redis_client)
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert f"row {_iso(D)}" in (report.error or "") and "requested_breakdown" in report.error
    assert redis_dump(redis_client) == before  # the late write is back in its live keys
    (row,) = store.rows(None, None)
    assert row.day.count("requested") == 1 and "requested_breakdown" in row.problems


def _iso(d: int) -> str:
    from rotate_stats.dates import iso

    return iso(d)


breakdown_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=60,
) | st.sampled_from(
    ["'", "''", '"', "?", ":name", "\\", "\\'", "\n", "🧘", "a" * 500, "?:?", string.printable,
     "x'); DROP TABLE journal_chat_job_stats; --"]
)  # fmt: skip
_counter = iter(range(10**6))


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.dictionaries(breakdown_keys, st.integers(1, 10**12), min_size=1, max_size=8))
def test_any_breakdown_key_round_trips(
    redis_client: redis.Redis, store: Store, breakdown: dict[str, int]
) -> None:
    """Quotes, ?, :name, backslashes, newlines, emoji, long keys: exactly as written."""
    d = D + next(_counter)  # a fresh date per example: no cleanup needed between them
    for key, value in breakdown.items():
        foreign_write(redis_client, d, "failed", f"sync:{key}", value)
    assert rotate(redis_client, store, RotateOptions(first=d), now=NOW).error is None
    (row,) = store.rows(_iso(d), _iso(d))
    assert row.day.breakdown("failed") == {f"sync:{k}": v for k, v in breakdown.items()}
    assert row.day.count("failed") == sum(breakdown.values())
    # and the JSON text itself is an object with sorted keys
    assert list(json.loads(json.dumps(row.day.breakdown("failed"), sort_keys=True))) == sorted(
        f"sync:{k}" for k in breakdown
    )


def test_unreachable_sqlite_path_is_a_store_error(tmp_path: object) -> None:
    from rotate_stats.database import SqliteStore

    with pytest.raises(StoreError):
        SqliteStore("/nonexistent-dir/x/y.sqlite3")


# -- foreign tables are refused, never adopted (issue 8, item 1) ------------------------------

EXTRA_NOT_NULL = SEED_TABLE[:-1] + ", tenant TEXT NOT NULL)"
NO_UNIQUE = SEED_TABLE.replace("retrieved_for TEXT UNIQUE NOT NULL", "retrieved_for TEXT NOT NULL")
OTHER_TYPE = SEED_TABLE.replace("retrieved_at REAL NOT NULL", "retrieved_at TEXT NOT NULL")
FOREIGN = [
    (EXTRA_NOT_NULL, "extra column tenant TEXT NOT NULL"),
    (NO_UNIQUE, "no UNIQUE (retrieved_for)"),
    (OTHER_TYPE, "column retrieved_at TEXT NOT NULL, expected retrieved_at REAL NOT NULL"),
]


@pytest.mark.parametrize(("ddl", "named"), FOREIGN, ids=["extra-not-null", "no-unique", "type"])
def test_migrate_refuses_a_foreign_table_and_changes_nothing(
    bare_store: Store, ddl: str, named: str
) -> None:
    run_sql(bare_store, (ddl, ()))
    before = schema(bare_store)
    with pytest.raises(DataError) as info:
        migrate(bare_store)
    assert named in str(info.value) and family.TABLE in str(info.value)
    assert schema(bare_store) == before  # not even the migrations table was created


@pytest.mark.parametrize(("ddl", "named"), FOREIGN, ids=["extra-not-null", "no-unique", "type"])
def test_a_run_refuses_a_table_changed_after_migrate(
    redis_client: redis.Redis, bare_store: Store, ddl: str, named: str
) -> None:
    migrate(bare_store)
    run_sql(bare_store, (f"DROP TABLE {family.TABLE}", ()), (ddl, ()))
    foreign_write(redis_client, D, "requested", "sync")
    before = redis_dump(redis_client)
    with pytest.raises(DataError, match=re.escape(named)):
        rotate(redis_client, bare_store, RotateOptions(first=D), now=NOW)
    assert redis_dump(redis_client) == before


@pytest.mark.parametrize("ddl", [EXTRA_NOT_NULL, NO_UNIQUE], ids=["extra-not-null", "no-unique"])
def test_a_commit_that_would_not_change_exactly_one_row_commits_nothing(
    bare_store: Store, ddl: str
) -> None:
    """The guard inside the commit itself, whatever checks ran before it."""
    migrate(bare_store)
    row = ("2024-06-01", 1.0, *([0, "{}"] * len(family.EVENTS)))
    statements = [(f"DROP TABLE {family.TABLE}", ()), (ddl, ())]
    if ddl == NO_UNIQUE:  # two rows for one date: a merge would add into both
        insert = (
            f"INSERT INTO {family.TABLE} ({', '.join(family.COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in family.COLUMNS)})"
        )
        statements += [(insert, row), (insert, row)]
    run_sql(bare_store, *statements)
    before = stored_tally(bare_store) if ddl == NO_UNIQUE else None
    day = DayCounts({"requested": 2}, {"requested": {"sync": 2}})
    with pytest.raises(StoreError, match="did not change exactly one row"):
        bare_store.commit([DateCommit(parse_iso("2024-06-01"), "run-x/1", day)], 5.0)
    assert bare_store.read(f"SELECT COUNT(*) FROM {family.CLAIMS_TABLE}") == [(0,)]
    if before is not None:
        assert stored_tally(bare_store) == before


# -- hand-edited rows and 64-bit limits (issue 8, items 8 and 12) ------------------------------

BIG = 2**63 - 5
HAND_EDITS = {
    "duplicate-json-key": ("requested_breakdown", '{"sync":1,"sync":2}', "appears more than once"),
    "text-count": ("requested", "abc", "'abc' is not a 64-bit integer"),
    "fractional-count": ("requested", 2.5, "2.5 is not a 64-bit integer"),
    "float-in-breakdown": ("requested_breakdown", '{"sync":1.5}', "1.5 of key 'sync'"),
    "huge-in-breakdown": ("requested_breakdown", '{"sync":9223372036854775808}', "'sync'"),
}


@pytest.mark.parametrize(("column", "value", "named"), HAND_EDITS.values(), ids=HAND_EDITS.keys())
def test_a_hand_edited_row_is_a_named_problem_in_the_merge_and_in_check(
    redis_client: redis.Redis, store: Store, column: str, value: object, named: str
) -> None:
    from rotate_stats.checks import check

    foreign_write(redis_client, D, "requested", "sync")
    rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    run_sql(store, (f"UPDATE {family.TABLE} SET {column} = ? WHERE retrieved_for = ?",
                    (value, _iso(D))))  # fmt: skip
    checked = check(store)  # no traceback: a finding naming the column
    assert any(column in f.detail and named in f.detail for f in checked.findings), checked
    foreign_write(redis_client, D, "requested", "sync")  # a late write for that row
    before = redis_dump(redis_client)
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert f"row {_iso(D)}" in (report.error or "") and named in report.error
    assert redis_dump(redis_client) == before  # the late write is back in its live keys
    (row,) = store.rows(None, None)
    assert column in row.problems


def test_a_merge_past_64_bits_is_refused_before_the_commit(
    redis_client: redis.Redis, store: Store
) -> None:
    foreign_write(redis_client, D, "requested", "sync", BIG)
    rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    foreign_write(redis_client, D, "requested", "sync", 10)
    before = redis_dump(redis_client)
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert "a merged value within a signed 64-bit integer" in (report.error or "")
    assert redis_dump(redis_client) == before
    (row,) = store.rows(None, None)
    assert row.day.count("requested") == BIG and not row.problems


def test_the_commit_itself_refuses_a_count_past_64_bits(store: Store) -> None:
    """The SQL guard, for a row that grew between the pre-check's read and the commit."""
    first = DayCounts({"requested": BIG}, {"requested": {"sync": BIG}})
    store.commit([DateCommit(D, "run-a/1", first)], 1.0)
    more = DayCounts({"requested": 10}, {"requested": {"other": 10}})
    with pytest.raises(StoreError, match="NOT NULL|overflow"):
        store.commit([DateCommit(D, "run-b/1", more)], 2.0)
    (row,) = store.rows(None, None)
    assert row.day.count("requested") == BIG and not row.problems  # never a float
    assert store.read(f"SELECT COUNT(*) FROM {family.CLAIMS_TABLE}") == [(1,)]


# -- pruning the ledger (issue 8, item 14) ----------------------------------------------------


def test_prune_ledger_keeps_what_can_still_matter(redis_client: redis.Redis, store: Store) -> None:
    from rotate_stats.checks import prune_ledger
    from rotate_stats.redis_side import RedisSide

    side = RedisSide(redis_client)
    old = DayCounts({"requested": 1}, {"requested": {"sync": 1}})
    store.commit([DateCommit(D - 10, "old/1", old)], NOW - 30 * 86400)  # long released
    store.commit([DateCommit(D - 9, "recent/1", old)], NOW - 86400)  # a day old
    # a claim committed long ago whose release was lost: still in Redis
    foreign_write(redis_client, D - 8, "requested", "sync")
    (pending,), _ = side.claim([D - 8], "run-p")
    store.commit([DateCommit(D - 8, pending.claim_id, pending.day)], NOW - 30 * 86400)
    pruned = prune_ledger(side, store, D, now=NOW)
    assert (pruned.deleted, pruned.kept_in_redis) == (1, 1)
    ids = {r[0] for r in store.read(f"SELECT claim_id FROM {family.CLAIMS_TABLE}")}
    assert ids == {"recent/1", pending.claim_id}
    # the pending claim's id survived: the next run adds it nothing
    rotate(redis_client, store, RotateOptions(first=D - 8), now=NOW)
    (row,) = store.rows(_iso(D - 8), _iso(D - 8))
    assert row.day.count("requested") == 1


def test_prune_ledger_refuses_a_date_that_is_not_stable(
    redis_client: redis.Redis, store: Store
) -> None:
    from rotate_stats.checks import prune_ledger
    from rotate_stats.dates import last_stable
    from rotate_stats.errors import ConfigError
    from rotate_stats.redis_side import RedisSide

    with pytest.raises(ConfigError, match="--before"):
        prune_ledger(RedisSide(redis_client), store, last_stable(NOW) + 5, now=NOW)
