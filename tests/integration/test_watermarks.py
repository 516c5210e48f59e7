"""Migration 0003, the claim sequence floor, watermarks and prune-ledger, on every store.

Each test runs on SQLite, the rqlite emulator and a real rqlited (``store`` /
``bare_store``, tests/conftest.py) against the session's real Redis. What is guarded:

* migration 0003 upgrades a ledger written by the previous version: family and
  sequence backfilled, claims pending across the upgrade committed exactly once;
* a new claim's sequence is above every sequence the database knows, whatever
  Redis's counter says;
* a claim at or below its date's watermark that the ledger lacks is never committed
  (the pre-check, and the SQL guard alone), one the ledger has is released;
* the operator's repairs of docs/OPERATIONS.md, run as written, end in a clean run;
* prune-ledger: the lock, what it keeps and why, watermarks, text and JSON output.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.checks import prune_ledger
from rotate_stats.database import (
    MERGE_CLAIM,
    RAISE_WATERMARK,
    DateCommit,
    Statement,
    Store,
    commit_statements,
    migrate,
    sequence_floor,
)
from rotate_stats.dates import iso
from rotate_stats.errors import LockHeld, StoreError
from rotate_stats.invariants import DayCounts
from rotate_stats.migrations import load
from rotate_stats.redis_side import RedisSide
from rotate_stats.report import DateState, ExitCode
from rotate_stats.walk import RotateOptions, rotate
from tests.conftest import RedisServer, require_binary
from tests.helpers import assert_exactly_once, foreign_job, redis_dump, run_program, tally_redis
from tests.integration.test_faults import Crash, D, written_by
from tests.integration.test_rotation import NOW

ROOT = Path(__file__).resolve().parents[2]
DAY = DayCounts({"requested": 1}, {"requested": {"sync": 1}})


def jobs_on(*dates: int) -> list[tuple[int, str, str]]:
    return [(d, "sync", "completed") for d in dates for _ in range(2)]


def plant(client: redis.Redis, jobs: list[tuple[int, str, str]]) -> None:
    for job in jobs:
        foreign_job(client, *job)


def set_watermark(store: Store, d: int, sequence: int) -> None:
    store.execute(RAISE_WATERMARK, (family.NAME, iso(d), str(sequence), time.time()))


def watermarks(store: Store) -> dict[str, int]:
    found = store.read(
        f"SELECT retrieved_for, sequence FROM {family.WATERMARKS_TABLE} WHERE family = ?",
        (family.NAME,),
    )
    return {str(d): int(s) for d, s in found}


def ledger(store: Store) -> dict[str, tuple[str, str, int | None]]:
    """claim id -> (date, family, sequence)."""
    found = store.read(
        f"SELECT claim_id, retrieved_for, family, sequence FROM {family.CLAIMS_TABLE}"
    )
    return {str(c): (str(d), str(f), None if s is None else int(s)) for c, d, f, s in found}


def low_claim(client: redis.Redis, d: int, sequence: int) -> str:
    """Cut ``d``'s live keys into a claim whose sequence is ``sequence``, as a run does
    when Redis's claim counter stands too low and nothing raised it (no floor)."""
    client.set(family.CLAIM_SEQUENCE_KEY, sequence - 1)
    (cut,), errors = RedisSide(client).cut([d], "old-run", 0)
    assert not errors and cut.state == "claimed"
    assert family.claim_sequence(cut.claim_id) == sequence
    return cut.claim_id


def claim_keys_dump(client: redis.Redis, d: int) -> dict[bytes, Any]:
    """D's claim hashes and id (not the pick-up marker, which every pick-up rewrites)."""
    mine = {k.encode() for k in [*family.claim_keys(d), family.claim_id_key(d)]}
    return {k: v for k, v in redis_dump(client).items() if k in mine}


def leave_committed_claim(client: redis.Redis, store: Store, d: int) -> str:
    """A run commits ``d``'s claim and dies before releasing it; returns the claim id."""
    real_release = RedisSide.release

    def dies(self: RedisSide, *args: Any, **kwargs: Any) -> Any:
        raise Crash

    RedisSide.release = dies  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            rotate(client, store, RotateOptions(first=d), now=NOW)
    finally:
        RedisSide.release = real_release  # type: ignore[method-assign]
    raw = client.get(family.claim_id_key(d))
    assert isinstance(raw, bytes), "no committed claim was left (test setup)"
    return raw.decode()


# -- migration 0003 on a ledger of the previous version ---------------------------------------

OLD_RECORD_CLAIM = (  # database.RECORD_CLAIM before migration 0003 (4e2b4f9), verbatim
    f"INSERT INTO {family.CLAIMS_TABLE} (claim_id, retrieved_for, applied_at) "
    "SELECT ?, ?, CASE WHEN changes() = 1 THEN ? END "
    f"WHERE NOT EXISTS (SELECT 1 FROM {family.CLAIMS_TABLE} WHERE claim_id = ?)"
)
_WATERMARK_CLAUSE = f" AND NOT EXISTS (SELECT 1 FROM {family.WATERMARKS_TABLE} "
OLD_MERGE_CLAIM = MERGE_CLAIM.split(_WATERMARK_CLAUSE)[0]
"""MERGE_CLAIM without its watermark guard: as it was before migration 0003."""


def old_commit(store: Store, item: DateCommit, applied_at: float) -> None:
    """Commit one date as the previous version did (no family, no sequence)."""
    zero, merge, record = commit_statements(item, iso(item.unix_date), applied_at)
    assert merge[0] == MERGE_CLAIM and OLD_MERGE_CLAIM.endswith("WHERE claim_id = ?)")
    statements: list[Statement] = [
        zero,
        (OLD_MERGE_CLAIM, merge[1][:-3]),  # without family, date, sequence
        (OLD_RECORD_CLAIM, (item.claim_id, iso(item.unix_date), applied_at, item.claim_id)),
    ]
    assert store.transaction(statements)[1:] == [1, 1]


def test_migration_0003_upgrades_an_old_ledger_and_pending_claims_commit_once(
    redis_client: redis.Redis, bare_store: Store
) -> None:
    migrations = load()
    assert [m.name for m in migrations][:3] == [
        "0001_journal_chat_job_stats",
        "0002_rotate_stats_applied_claims",
        "0003_claim_watermarks",
    ]
    for migration in migrations[:2]:  # the database as the previous version left it
        bare_store.apply_migration(migration)
    store = bare_store
    side = RedisSide(redis_client)
    jobs = jobs_on(D - 1, D)
    plant(redis_client, jobs)
    # the previous version, before the upgrade: D-1 committed but not released (a crash),
    # D claimed but not committed (a crash), an entry of an id of another shape
    cuts, errors = side.cut([D - 1, D], "old-version")
    assert not errors
    (claim_a, claim_b) = side.take(cuts, errors)
    old_commit(store, DateCommit(D - 1, claim_a.claim_id, claim_a.day), time.time() - 86400)
    old_commit(store, DateCommit(D - 5, "legacy-claim", DAY), time.time() - 30 * 86400)
    before = stored_rows(store)

    assert migrate(store) == ["0003_claim_watermarks"]
    assert stored_rows(store) == before  # the rows are untouched
    assert ledger(store) == {
        claim_a.claim_id: (iso(D - 1), family.NAME, family.claim_sequence(claim_a.claim_id)),
        "legacy-claim": (iso(D - 5), family.NAME, None),
    }
    assert family.claim_sequence(claim_a.claim_id) is not None
    assert watermarks(store) == {}
    assert sequence_floor(store) == (family.claim_sequence(claim_a.claim_id), False)

    report = rotate(redis_client, store, RotateOptions(first=D - 1, last=D), now=NOW)
    assert report.error is None and report.exit_code is ExitCode.OK
    assert [(o.unix_date, o.state, o.claim_id) for o in report.outcomes] == [
        (D - 1, DateState.ALREADY_APPLIED, claim_a.claim_id),
        (D, DateState.INSERTED, claim_b.claim_id),
    ]
    assert ledger(store)[claim_b.claim_id] == (
        iso(D),
        family.NAME,
        family.claim_sequence(claim_b.claim_id),
    )
    legacy = {(D - 5, "requested", None): 1, (D - 5, "requested", "sync"): 1}
    assert_exactly_once(redis_client, store, written_by(jobs) + Counter(legacy))
    assert tally_redis(redis_client) == {}
    again = rotate(redis_client, store, RotateOptions(first=D - 1, last=D), now=NOW)
    assert again.error is None
    assert_exactly_once(redis_client, store, written_by(jobs) + Counter(legacy))


def stored_rows(store: Store) -> list[tuple[str, dict[str, int]]]:
    return [
        (r.retrieved_for, {e: r.day.count(e) for e in family.EVENTS})
        for r in store.rows(None, None)
    ]


# -- the SQL guard -----------------------------------------------------------------------------

_dates = iter(range(D - 2000, D - 1000))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mark=st.none() | st.integers(0, 2**62),
    sequence=st.none() | st.integers(0, 2**62),
    delta=st.sampled_from([None, -1, 0, 1]),
)
def test_the_commit_refuses_a_claim_at_or_below_its_dates_watermark(
    store: Store, mark: int | None, sequence: int | None, delta: int | None
) -> None:
    """Applied exactly when the date has no watermark, or the claim's sequence is above
    it; refused otherwise (an id without a sequence too), the transaction as a whole."""
    d = next(_dates)
    if mark is not None and sequence is not None and delta is not None:
        sequence = max(mark + delta, 0)  # right at the boundary
    claim_id = f"run.{d}/{d}/{sequence}" if sequence is not None else f"no-sequence-{d}"
    if mark is not None:
        set_watermark(store, d, mark)
    other = DateCommit(d + 5000, f"run.{d}/bystander/1", DAY)  # same transaction
    applies = mark is None or (sequence is not None and sequence > mark)
    if applies:
        results = store.commit([other, DateCommit(d, claim_id, DAY)], 1.0)
        assert [r.claim_applied for r in results] == [True, True]
        assert claim_id in ledger(store)
    else:
        with pytest.raises(StoreError, match="prune-ledger raised a date's watermark"):
            store.commit([other, DateCommit(d, claim_id, DAY)], 1.0)
        assert store.rows(iso(d), iso(d)) == []
        assert store.rows(iso(d + 5000), iso(d + 5000)) == []  # not even the bystander
        assert claim_id not in ledger(store) and other.claim_id not in ledger(store)


# -- the sequence floor ------------------------------------------------------------------------


@pytest.mark.parametrize("known_by", ["ledger", "watermark"])
def test_a_new_claims_sequence_is_above_every_sequence_the_database_knows(
    redis_client: redis.Redis, store: Store, known_by: str
) -> None:
    """Redis's counter stands at 5 (a restart from an old snapshot); the database knows
    sequence 1000 - from a ledger entry, or only from a watermark after a prune."""
    written = Counter[tuple[int, str, str | None]]()
    if known_by == "ledger":
        store.commit([DateCommit(D - 30, "earlier.run/19854/1000", DAY)], time.time())
        written.update({(D - 30, "requested", None): 1, (D - 30, "requested", "sync"): 1})
    else:
        set_watermark(store, D, 1000)  # on the very date about to be claimed
    redis_client.set(family.CLAIM_SEQUENCE_KEY, 5)
    jobs = jobs_on(D)
    plant(redis_client, jobs)
    assert sequence_floor(store)[0] == 1000
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.error is None and report.exit_code is ExitCode.OK
    (outcome,) = report.outcomes
    assert outcome.state is DateState.INSERTED
    sequence = family.claim_sequence(outcome.claim_id)
    assert sequence is not None and sequence > 1000
    assert int(redis_client.get(family.CLAIM_SEQUENCE_KEY) or 0) >= sequence
    assert_exactly_once(redis_client, store, written_by(jobs) + written)


@pytest.mark.parametrize(("counter", "floor"), [(10**14 - 1, 0), (0, 10**17 - 1)])
def test_a_claim_id_spells_its_sequence_in_full_digits(
    redis_client: redis.Redis, counter: int, floor: int
) -> None:
    """Whatever the counter or the floor, the id ends with the sequence drawn, in
    digits, and claim_sequence reads it back."""
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.set(family.CLAIM_SEQUENCE_KEY, counter)
    (cut,), errors = RedisSide(redis_client).cut([D], "run", floor)
    assert not errors
    drawn = max(counter, floor) + 1
    assert cut.claim_id.endswith(f"/{D}/{drawn}")
    assert family.claim_sequence(cut.claim_id) == drawn


# -- a claim below its date's watermark --------------------------------------------------------


def test_a_claim_below_its_watermark_and_not_in_the_ledger_is_left_and_named(
    redis_client: redis.Redis, store: Store
) -> None:
    jobs = jobs_on(D, D + 1)
    plant(redis_client, jobs)
    claim_id = low_claim(redis_client, D, 3)
    set_watermark(store, D, 10)
    held = claim_keys_dump(redis_client, D)
    states = []
    for _ in range(2):  # and the same on the next run: nothing piles up
        report = rotate(redis_client, store, RotateOptions(first=D, last=D + 1), now=NOW)
        states.append([(o.unix_date, o.state) for o in report.outcomes])
        assert report.exit_code is ExitCode.FAILURE
        error = report.error or ""
        assert error.startswith(f"{family.claim_id_key(D)}: found {claim_id!r}")
        assert f"a claim sequence above 10, the watermark of {iso(D)}" in error
        assert "'A claim below its date's watermark'" in error
        assert claim_keys_dump(redis_client, D) == held  # its keys stay as they were
        assert [r.retrieved_for for r in store.rows(None, None)] == [iso(D + 1)]
        assert claim_id not in ledger(store)
        assert int(redis_client.get(family.EARLIEST_KEY) or 0) == D  # held there
    assert states == [[(D + 1, DateState.INSERTED)], [(D + 1, DateState.UNCHANGED)]]
    assert_exactly_once(redis_client, store, written_by(jobs))


def test_a_claim_below_its_watermark_that_the_ledger_has_is_released(
    redis_client: redis.Redis, store: Store
) -> None:
    jobs = jobs_on(D)
    plant(redis_client, jobs)
    claim_id = leave_committed_claim(redis_client, store, D)
    sequence = family.claim_sequence(claim_id)
    assert sequence is not None
    set_watermark(store, D, sequence + 5)
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.error is None and report.exit_code is ExitCode.OK
    assert [(o.state, o.claim_id) for o in report.outcomes] == [
        (DateState.ALREADY_APPLIED, claim_id)
    ]
    assert not redis_client.exists(family.claim_id_key(D), *family.claim_keys(D))
    assert tally_redis(redis_client) == {}
    assert_exactly_once(redis_client, store, written_by(jobs))


def test_the_sql_guard_alone_refuses_the_whole_commit(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the pre-check (a prune raced it), the commit itself refuses: the
    transaction fails as a whole - D+1, committed with it, is not committed either."""
    jobs = jobs_on(D, D + 1)
    plant(redis_client, jobs)
    claim_id = low_claim(redis_client, D, 3)
    set_watermark(store, D, 10)
    with monkeypatch.context() as m:
        m.setattr("rotate_stats.walk._watermarked", lambda walk, claims: {})
        report = rotate(redis_client, store, RotateOptions(first=D, last=D + 1), now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert "a claim's merge did not change exactly one row" in (report.error or "")
    assert store.rows(None, None) == [] and ledger(store) == {}
    assert redis_client.get(family.claim_id_key(D)) == claim_id.encode()
    assert redis_client.exists(family.claim_id_key(D + 1))  # D+1's claim stays pending
    assert_exactly_once(redis_client, store, written_by(jobs))
    # the pre-check back: D is refused and named, D+1 committed, once
    report = rotate(redis_client, store, RotateOptions(first=D, last=D + 1), now=NOW)
    assert report.exit_code is ExitCode.FAILURE and claim_id in (report.error or "")
    assert [(o.unix_date, o.state) for o in report.outcomes] == [(D + 1, DateState.INSERTED)]
    assert_exactly_once(redis_client, store, written_by(jobs))


# -- the operator's repair, as docs/OPERATIONS.md writes it ------------------------------------


def operations_section() -> str:
    text = (ROOT / "docs" / "OPERATIONS.md").read_text("utf-8")
    start = text.index("## A claim below its date's watermark")
    return text[start : text.index("\n## ", start + 1)]


def documented_claim_keys(d: int) -> list[str]:
    """Step 2's keys, from the section's own names: the counts hash, its ``:extra:*``
    hashes, its ``:id`` and ``:picked`` keys."""
    section = " ".join(operations_section().split())
    (base,) = set(re.findall(r"(rotate_stats:\S+:claim:)<unix date>", section))
    assert "its `:extra:*` hashes, its `:id` and `:picked` keys" in section
    counts = f"{base}{d}"
    return [counts, *(f"{counts}:extra:{e}" for e in family.EVENTS), f"{counts}:id"] + [
        f"{counts}:picked"
    ]


def documented_update(d: int, sequence: int) -> str:
    """Step 3's UPDATE with its placeholders filled in."""
    section = " ".join(operations_section().split())
    (sql,) = (
        str(m) for m in re.findall(r"`(UPDATE rotate_stats_claim_watermarks [^`]*)`", section)
    )
    assert "<sequence - 1>" in sql and "'<date>'" in sql
    return sql.replace("<sequence - 1>", str(sequence - 1)).replace("<date>", iso(d))


def database_url(backend: str, sqlite_path: str, node: Any) -> str:
    return (
        f"sqlite:///{sqlite_path}" if backend == "sqlite" else f"rqlite://{node.host}:{node.port}"
    )


@pytest.fixture
def cli(
    redis_server: RedisServer, backend: str, sqlite_path: str, backend_node: Any
) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": database_url(backend, sqlite_path, backend_node),
    }

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_program(*args, env={**env, **(extra or {})})

    return run


def test_step_2_deleting_a_claim_already_in_the_row_ends_in_a_clean_run(
    redis_client: redis.Redis, store: Store, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """D's claim was applied and released, its ledger entry pruned; Redis restored from
    an old snapshot brings the claim back. The run refuses it; the operator sees its
    counts are in the row and deletes it with redis-cli, as step 2 says."""
    redis_cli = require_binary("redis-cli")  # CI=true: a missing one fails, never skips
    jobs = jobs_on(D)
    plant(redis_client, jobs)
    claim_id = leave_committed_claim(redis_client, store, D)
    snapshot = {k: redis_client.dump(k) for k in [*family.claim_keys(D), family.claim_id_key(D)]}
    assert rotate(redis_client, store, RotateOptions(first=D), now=NOW).error is None
    pruned = prune_ledger(RedisSide(redis_client), store, D + 1, now=time.time() + 8 * 86400)
    assert pruned.deleted == 1 and watermarks(store) == {iso(D): family.claim_sequence(claim_id)}
    for key, value in snapshot.items():  # the old snapshot: the claim is back
        if value is not None:
            redis_client.restore(key, 0, value)
    refused = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert refused.exit_code is ExitCode.FAILURE and claim_id in (refused.error or "")

    port = str(redis_client.connection_pool.connection_kwargs["port"])
    deleted = subprocess.run(
        [redis_cli, "-p", port, "DEL", *documented_claim_keys(D)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(deleted.stdout) >= 2  # at least its counts hash and its id

    done = cli("rotate", "--date", iso(D), "--format", "json")
    assert done.returncode == ExitCode.OK, done.stderr
    (outcome,) = json.loads(done.stdout)["outcomes"]
    assert outcome["state"] == DateState.UNCHANGED.value
    assert tally_redis(redis_client) == {}
    assert_exactly_once(redis_client, store, written_by(jobs))


def test_step_3_lowering_the_watermark_commits_a_new_claim_once(
    redis_client: redis.Redis, store: Store, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """A new claim drawn while Redis's counter stood below the watermark (the floor
    defeated: a second fault). The operator finds its counts are not in the row,
    lowers the watermark as step 3 says, and runs the date again."""
    earlier = jobs_on(D)
    plant(redis_client, earlier)
    assert rotate(redis_client, store, RotateOptions(first=D), now=NOW).error is None
    set_watermark(store, D, 10)  # entries up to 10 pruned
    late = [(D, "greeting", "completed")]
    plant(redis_client, late)
    claim_id = low_claim(redis_client, D, 4)
    refused = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert refused.exit_code is ExitCode.FAILURE and claim_id in (refused.error or "")

    assert store.execute(documented_update(D, 4)) == 1
    assert watermarks(store) == {iso(D): 3}
    done = cli("rotate", "--date", iso(D), "--format", "json")
    assert done.returncode == ExitCode.OK, done.stderr
    (outcome,) = json.loads(done.stdout)["outcomes"]
    assert (outcome["state"], outcome["claim_id"]) == (DateState.MERGED.value, claim_id)
    assert tally_redis(redis_client) == {}
    assert_exactly_once(redis_client, store, written_by(earlier + late))


# -- prune-ledger ------------------------------------------------------------------------------


def test_prune_ledger_keeps_what_it_must_and_raises_watermarks_to_the_max(
    redis_client: redis.Redis, store: Store
) -> None:
    side = RedisSide(redis_client)
    old, young = time.time() - 30 * 86400, time.time() - 86400
    for d, claim_id, at in [
        (D - 12, "a/1/5", old),  # pruned; its date's mark stays at 50
        (D - 11, "a/2/7", old),  # pruned; mark 3 raised to 8 (the max of 7 and 8)
        (D - 11, "b/2/8", old),
        (D - 10, "c/3/9", old),  # pruned; no mark before
        (D - 9, "d/4/12", young),  # kept: too young
        (D - 8, "legacy-claim", old),  # kept: no sequence
        (D, "e/5/20", old),  # not before --before
    ]:
        store.commit([DateCommit(d, claim_id, DAY)], at)
    foreign_job(redis_client, D - 7, "sync", "completed")
    (in_redis,), _ = side.cut([D - 7], "run-k")  # kept: its claim is in Redis
    store.commit([DateCommit(D - 7, in_redis.claim_id, DAY)], old)
    set_watermark(store, D - 12, 50)
    set_watermark(store, D - 11, 3)

    pruned = prune_ledger(side, store, D)
    assert (pruned.deleted, pruned.watermarked_dates) == (4, 3)
    assert (pruned.kept_in_redis, pruned.kept_young, pruned.kept_unsequenced) == (1, 1, 1)
    assert pruned.min_age_days == 7.0
    assert watermarks(store) == {iso(D - 12): 50, iso(D - 11): 8, iso(D - 10): 9}
    assert set(ledger(store)) == {"d/4/12", "legacy-claim", in_redis.claim_id, "e/5/20"}
    assert not redis_client.exists(family.LOCK_KEY)  # the lock is given back
    text = pruned.describe()
    assert text.startswith(f"pruned 4 ledger entries of dates before {iso(D)}")
    assert "(watermarks raised on 3 date(s))" in text
    assert "kept 1 whose claims are still in Redis, 1 applied less than 7 day(s) ago" in text
    assert "1 whose claim id carries no sequence" in text
    assert pruned.as_dict() == {
        "before": iso(D),
        "deleted": 4,
        "watermarked_dates": 3,
        "kept_in_redis": 1,
        "kept_young": 1,
        "kept_unsequenced": 1,
        "min_age_days": 7.0,
    }
    # with no minimum age the young entry goes too; the others are kept as before
    again = prune_ledger(side, store, D, min_age_days=0)
    assert (again.deleted, again.kept_young, again.kept_in_redis) == (1, 0, 1)
    assert watermarks(store)[iso(D - 9)] == 12
    assert set(ledger(store)) == {"legacy-claim", in_redis.claim_id, "e/5/20"}


def test_prune_ledger_says_why_nothing_was_pruned(redis_client: redis.Redis, store: Store) -> None:
    side = RedisSide(redis_client)
    nothing = prune_ledger(side, store, D)
    assert nothing.deleted == 0
    assert nothing.describe().startswith(
        f"pruned 0 ledger entries of dates before {iso(D)}: the ledger has no entry before "
        "that date"
    )
    store.commit([DateCommit(D - 3, "x/1/4", DAY)], time.time())
    kept = prune_ledger(side, store, D)
    assert (kept.deleted, kept.kept_young) == (0, 1)
    text = kept.describe()
    assert "the ledger has no entry" not in text and "watermarks raised" not in text
    assert "kept 0 whose claims are still in Redis, 1 applied less than 7 day(s) ago" in text
    assert watermarks(store) == {}


def test_prune_ledger_takes_the_lock(
    redis_client: redis.Redis, store: Store, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    store.commit([DateCommit(D - 3, "x/1/4", DAY)], time.time() - 30 * 86400)
    redis_client.set(family.LOCK_KEY, "a-running-rotation", px=60_000)
    with pytest.raises(LockHeld, match="a-running-rotation"):
        prune_ledger(RedisSide(redis_client), store, D)
    done = cli("prune-ledger", "--before", iso(D))
    assert done.returncode == ExitCode.LOCKED, done.stderr
    assert "a-running-rotation" in done.stderr
    assert set(ledger(store)) == {"x/1/4"} and watermarks(store) == {}
    assert redis_client.get(family.LOCK_KEY) == b"a-running-rotation"  # not touched


def test_prune_ledger_through_the_cli_in_text_and_json(
    redis_client: redis.Redis, store: Store, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    store.commit([DateCommit(D - 3, "x/1/4", DAY)], time.time() - 60)
    store.commit([DateCommit(D - 2, "x/2/6", DAY)], time.time() - 60)
    done = cli("prune-ledger", "--before", iso(D))  # both younger than 7 days
    assert done.returncode == ExitCode.OK, done.stderr
    assert f"pruned 0 ledger entries of dates before {iso(D)}" in done.stdout
    assert "2 applied less than 7 day(s) ago (ROTATE_STATS_PRUNE_MIN_AGE)" in done.stdout
    done = cli(
        "prune-ledger",
        "--before",
        iso(D),
        "--format",
        "json",
        extra={"ROTATE_STATS_PRUNE_MIN_AGE": "0"},
    )
    assert done.returncode == ExitCode.OK, done.stderr
    reply = json.loads(done.stdout)
    assert reply == {
        "before": iso(D),
        "deleted": 2,
        "watermarked_dates": 2,
        "kept_in_redis": 0,
        "kept_young": 0,
        "kept_unsequenced": 0,
        "min_age_days": 0.0,
    }
    assert ledger(store) == {} and watermarks(store) == {iso(D - 3): 4, iso(D - 2): 6}
    assert not redis_client.exists(family.LOCK_KEY)
