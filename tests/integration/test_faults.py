"""Crashes, overlaps, bad data and strict mode on a real redis-server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from rotate_stats import Recorder, family
from rotate_stats.database import DateCommit, Store
from rotate_stats.dates import day_start, iso, parse_iso, today
from rotate_stats.errors import DataError, LockHeld, NotMigrated
from rotate_stats.invariants import DayCounts, Invariant
from rotate_stats.redis_side import Cut, RedisSide
from rotate_stats.report import DateState, ExitCode
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import foreign_job, foreign_write, redis_dump, stored_tally, tally_redis
from tests.integration.test_rotation import NOW

D = parse_iso("2024-06-10")


class Crash(Exception):
    """Stands in for the process dying at a step boundary."""


def assert_conserved(client: redis.Redis, store: Store, written: Counter) -> None:  # type: ignore[type-arg]
    total = stored_tally(store) + Counter(tally_redis(client))
    assert +total == +written


def written_by(jobs: list[tuple[int, str, str]]) -> Counter[tuple[int, str, str | None]]:
    c: Counter[tuple[int, str, str | None]] = Counter()
    for d, t, outcome in jobs:
        c[d, "requested", None] += 1
        c[d, "requested", t] += 1
        if outcome == "completed":
            for e in ("queued", "started", "completed"):
                c[d, e, None] += 1
                c[d, e, t] += 1
    return c


def test_crash_after_commit_before_release(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [(D, "sync", "completed")] * 3 + [(D + 1, "greeting", "completed")]
    for job in jobs:
        foreign_job(redis_client, *job)

    def crash(*_: object, **__: object) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(RedisSide, "release", crash)
        with pytest.raises(Crash):
            rotate(redis_client, store, now=NOW)
    assert redis_client.exists(family.claim_id_key(D))  # claim survived the crash
    assert redis_client.get(family.LOCK_KEY) is None  # lock released on the way out
    report = rotate(redis_client, store, now=NOW)
    states = {o.unix_date: o.state for o in report.outcomes}
    assert states[D] is DateState.ALREADY_APPLIED
    assert_conserved(redis_client, store, written_by(jobs))
    assert not redis_client.exists(family.claim_id_key(D))


def test_crash_before_commit_with_writes_meanwhile(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [(D, "sync", "completed")] * 2
    for job in jobs:
        foreign_job(redis_client, *job)
    with monkeypatch.context() as m:
        m.setattr(type(store), "commit", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            rotate(redis_client, store, now=NOW)
    late = [(D, "summarize", "completed")] * 4  # land in fresh live keys beside the claim
    for job in late:
        foreign_job(redis_client, *job)
    report = rotate(redis_client, store, now=NOW)
    assert report.error is None
    assert_conserved(redis_client, store, written_by(jobs + late))
    assert tally_redis(redis_client) == {}  # one run finished both the claim and the late keys
    assert int(redis_client.get(family.EARLIEST_KEY)) == today(NOW) - 1


def test_resent_commit_counts_nothing_twice(store: Store) -> None:
    day = DayCounts({"requested": 2}, {"requested": {"sync": 2}})
    items = [DateCommit(D, "run-a/1", day)]
    first = store.commit(items, 1.0)
    second = store.commit(items, 2.0)  # e.g. the response was lost and the batch resent
    assert first[0].claim_applied and not second[0].claim_applied
    (row,) = store.rows(None, None)
    assert row.day.count("requested") == 2 and row.retrieved_at == 1.0


def test_overlapping_runs_with_concurrent_writers(
    redis_client: redis.Redis, store: Store, store_factory: Callable[[], Store]
) -> None:
    """Three rotators (lock defeated) and three writers at once: every count lands once."""
    port = redis_client.connection_pool.connection_kwargs["port"]
    dates = list(range(D, D + 6))
    written: Counter[tuple[int, str, str | None]] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        client = redis.Redis(port=port)
        for i in range(400):
            d = dates[(seed + i) % len(dates)]
            foreign_job(client, d, "sync", "completed")
            with lock:
                written.update(written_by([(d, "sync", "completed")]))

    def rotator() -> None:
        client = redis.Redis(port=port)
        with lock:
            own = store_factory()
        try:
            for _ in range(6):
                client.delete(family.LOCK_KEY)  # defeat the lock: correctness must not need it
                try:
                    rotate(client, own, RotateOptions(batch_size=2), now=NOW)
                except LockHeld:
                    pass
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    threads += [threading.Thread(target=rotator) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    rotate(redis_client, store, now=NOW)  # the final clean run
    assert_conserved(redis_client, store, written)
    assert sum(v for (_, e, k), v in written.items() if k is None and e == "requested") == 1200


def test_strict_stops_before_violating_date(redis_client: redis.Redis, store: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    foreign_write(redis_client, D + 1, "started", "sync")  # started without queued
    foreign_job(redis_client, D + 2, "sync", "completed")
    before = {k: v for k, v in redis_dump(redis_client).items() if b":%d" % (D + 1) in k}
    report = rotate(redis_client, store, RotateOptions(strict=True), now=NOW)
    assert [o.state for o in report.outcomes] == [DateState.INSERTED, DateState.STOPPED]
    assert report.exit_code is ExitCode.VIOLATIONS
    assert {f.invariant for f in report.findings} >= {Invariant.QUEUED_STARTED}
    assert [r.retrieved_for for r in store.rows(None, None)] == ["2024-06-10"]
    after = {k: v for k, v in redis_dump(redis_client).items() if b":%d" % (D + 1) in k}
    assert after == before  # the violating date is back in its live keys, as it was
    assert int(redis_client.get(family.EARLIEST_KEY)) == D + 1
    default = rotate(redis_client, store, now=NOW)  # default mode rotates it and reports
    assert default.exit_code is ExitCode.VIOLATIONS
    assert tally_redis(redis_client) == {}


@pytest.mark.parametrize(
    "corrupt, culprit",
    [
        (lambda c: c.hset(family.counts_key(D + 1), "requested", "1.5"), "'requested'"),
        (lambda c: c.hset(family.extra_key(D + 1, "failed"), "sync:x", "abc"), "'sync:x'"),
        (lambda c: c.hset(family.counts_key(D + 1), "requsted", "1"), "'requsted'"),
        (lambda c: c.hset(family.counts_key(D + 1), "queued", str(2**64)), "64 bits"),
        (
            lambda c: (
                c.delete(family.extra_key(D + 1, "queued")),
                c.rpush(family.extra_key(D + 1, "queued"), "x"),
            ),
            "a hash",
        ),
        (lambda c: c.hset(family.claim_keys(D + 1)[0], "requested", "1"), "claim id"),
        (lambda c: c.hset(family.extra_key(D + 1, "failed"), "sync:a\x00b", "1"), "NUL"),
    ],
)
def test_bad_data_is_left_in_redis_and_the_walk_goes_on(
    redis_client: redis.Redis, store: Store, corrupt: object, culprit: str
) -> None:
    """A bad date stays in Redis as it was and is reported (exit 1); the dates after it,
    in its batch and in later batches, are rotated; ``earliest`` stays at the bad date."""
    dates = (D, D + 1, D + 2, D + 40)
    for d in dates:
        foreign_job(redis_client, d, "sync", "completed")
    corrupt(redis_client)  # type: ignore[operator]
    bad_keys = {k: v for k, v in redis_dump(redis_client).items() if b":%d" % (D + 1) in k}
    now = day_start(D + 43) + 12 * 3600  # last stable date D + 41: a short walk
    report = rotate(redis_client, store, RotateOptions(batch_size=3), now=now)
    assert report.exit_code is ExitCode.FAILURE
    assert report.error is not None and culprit in report.error
    assert str(D + 1) in report.error  # names the key
    stored = {r.retrieved_for: r for r in store.rows(None, None)}
    assert iso(D + 1) not in stored
    assert all(stored[iso(d)].day.count("completed") == 1 for d in (D, D + 2, D + 40))
    after = {k: v for k, v in redis_dump(redis_client).items() if b":%d" % (D + 1) in k}
    assert after == bad_keys
    assert int(redis_client.get(family.EARLIEST_KEY)) == D + 1


@pytest.mark.parametrize("value", [b"yesterday", b"1.5", b"", b"99999999999"])
def test_garbage_earliest_changes_nothing(
    redis_client: redis.Redis, store: Store, value: bytes
) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, value)
    before = redis_dump(redis_client)
    with pytest.raises(DataError) as info:
        rotate(redis_client, store, now=NOW)
    assert info.value.key == family.EARLIEST_KEY
    assert redis_dump(redis_client) == before and store.rows(None, None) == []


def test_earliest_of_wrong_type(redis_client: redis.Redis, store: Store) -> None:
    redis_client.hset(family.EARLIEST_KEY, "x", "1")
    with pytest.raises(DataError, match="a hash"):
        rotate(redis_client, store, now=NOW)


def test_lock_held_leaves_at_once(redis_client: redis.Redis, store: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.set(family.LOCK_KEY, "other-run", px=60_000)
    before = redis_dump(redis_client)
    with pytest.raises(LockHeld, match="other-run"):
        rotate(redis_client, store, now=NOW)
    assert redis_dump(redis_client) == before and store.rows(None, None) == []


def test_dry_run_touches_nothing(redis_client: redis.Redis, store: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    foreign_write(redis_client, D + 1, "started", "chat")
    before = redis_dump(redis_client)
    report = rotate(redis_client, store, RotateOptions(dry_run=True), now=NOW)
    assert redis_dump(redis_client) == before and store.rows(None, None) == []
    assert report.outcomes[0].state is DateState.PLANNED
    assert report.outcomes[0].day.count("completed") == 1
    assert report.exit_code is ExitCode.VIOLATIONS  # the plan already shows the findings


def test_unmigrated_store_is_refused(redis_client: redis.Redis, bare_store: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    before = redis_dump(redis_client)
    with pytest.raises(NotMigrated, match="rotate-stats migrate"):
        rotate(redis_client, bare_store, now=NOW)
    assert redis_dump(redis_client) == before


def test_recorder_refuses_rotated_dates_visibly(redis_client: redis.Redis, store: Store) -> None:
    recorder = Recorder(redis_client)
    assert recorder.record(D, "requested", "sync")
    rotate(redis_client, store, now=NOW)
    assert not recorder.record(D, "requested", "sync", 3)
    assert RedisSide(redis_client).refusals() == {f"{D}:requested": 3}
    assert not redis_client.exists(family.counts_key(D))
    assert recorder.record(today(NOW) - 1, "requested", "sync")  # yesterday is still open


def test_earliest_absent_means_nothing_to_do(redis_client: redis.Redis, store: Store) -> None:
    report = rotate(redis_client, store, now=NOW)
    assert report.outcomes == [] and "absent" in report.notes[0]
    assert report.exit_code is ExitCode.OK


def test_retry_pass_claims_anew_without_losing_counts(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the retry pass of a run re-claimed a date under the same claim id,
    which the ledger then skipped and release deleted (found by the overlap test)."""
    foreign_job(redis_client, D, "sync", "completed")
    with monkeypatch.context() as m:  # leave a pending claim for D
        m.setattr(type(store), "commit", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            rotate(redis_client, store, now=NOW)
    foreign_job(redis_client, D + 1, "greeting", "completed")
    real_commit = type(store).commit
    calls = []

    def commit_then_write(self: Store, items: list[DateCommit], at: float) -> object:
        result = real_commit(self, items, at)  # type: ignore[arg-type]
        calls.append(len(items))
        if len(calls) == 1:  # a writer hits D + 1 between the two passes
            foreign_job(redis_client, D + 1, "greeting", "completed")
        return result

    monkeypatch.setattr(type(store), "commit", commit_then_write)
    rotate(redis_client, store, RotateOptions(first=D, last=D + 1), now=NOW)
    jobs = [(D, "sync", "completed"), (D + 1, "greeting", "completed"),
            (D + 1, "greeting", "completed")]  # fmt: skip
    assert len(calls) == 2
    assert_conserved(redis_client, store, written_by(jobs))
    assert stored_tally(store)[D + 1, "requested", None] == 2


def test_keys_without_earliest_are_reported_not_ignored(
    redis_client: redis.Redis, store: Store
) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.delete(family.EARLIEST_KEY)
    before = redis_dump(redis_client)
    report = rotate(redis_client, store, now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert report.error is not None and "2024-06-10" in report.error
    assert family.EARLIEST_KEY in report.error
    assert redis_dump(redis_client) == before and store.rows(None, None) == []


def test_strict_never_gives_back_an_already_applied_claim(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pending claim whose commit landed must not return to the live keys (double count)."""
    foreign_write(redis_client, D, "started", "sync", 2)  # violates queued = started

    def crash(*_: object, **__: object) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(RedisSide, "release", crash)
        with pytest.raises(Crash):
            rotate(redis_client, store, now=NOW)  # default mode: committed, not released
    report = rotate(redis_client, store, RotateOptions(strict=True), now=NOW)
    assert report.outcomes[0].state is DateState.ALREADY_APPLIED
    rotate(redis_client, store, now=NOW)
    assert stored_tally(store)[D, "started", None] == 2
    assert tally_redis(redis_client) == {}


def test_a_resent_claim_call_never_reuses_a_claim_id(
    redis_client: redis.Redis, store: Store
) -> None:
    """Issue 8, item 4: A's claim runs, its answer is lost; B commits and releases that
    claim; new writes arrive; the client resends A's call - the very same keys and args."""
    side = RedisSide(redis_client)
    foreign_job(redis_client, D, "sync", "completed")
    keys: list[str] = []
    keys += family.live_keys(D) + family.claim_keys(D)
    keys += [family.claim_id_key(D), family.claim_picked_key(D), family.CLAIM_SEQUENCE_KEY]
    args = [1, "run-a.0123456789abcdef", 0, D]  # n, prefix, sequence floor, dates
    side.scripts.claim(keys=keys, args=args)  # A's call: applied, answer lost
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)  # B
    assert report.error is None and not redis_client.exists(family.claim_id_key(D))
    foreign_job(redis_client, D, "greeting", "completed")  # new writes
    (resent,) = side.scripts.claim(keys=keys, args=args)  # the client's resend
    second_id = resent[1].decode()
    (outcome,) = report.outcomes
    assert second_id != outcome.claim_id  # a new claim, under a new id
    (day,) = side.read([Cut(D, "claimed", second_id, tuple(resent[2:]))]).days
    assert isinstance(day, DayCounts) and day.count("completed") == 1
    (result,) = store.commit([DateCommit(D, second_id, day)], 1.0)
    assert result.claim_applied  # the ledger does not mistake it for the first
    side.release([D], [second_id])
    jobs = [(D, "sync", "completed"), (D, "greeting", "completed")]
    assert_conserved(redis_client, store, written_by(jobs))


def test_a_strict_give_back_never_races_a_pick_up(redis_client: redis.Redis, store: Store) -> None:
    """Issue 8, item 3: A (strict) claims X and decides to give it back, but stalls; B picks
    X up as pending and commits it; then A's give-back arrives. It must be refused."""
    jobs = [(D, "sync", "completed")] * 2
    for job in jobs:
        foreign_job(redis_client, *job)
    side = RedisSide(redis_client)
    (mine,), _ = side.claim([D], "run-a")  # A: a fresh claim
    (theirs,), _ = side.claim([D], "run-b")  # B: the same claim, pending
    assert theirs.state == "pending" and theirs.claim_id == mine.claim_id
    (result,) = store.commit([DateCommit(D, theirs.claim_id, theirs.day)], 1.0)  # B commits
    assert result.claim_applied
    assert side.restore(mine) == "picked up by another run"  # A's late give-back: refused
    side.release([D], [theirs.claim_id])  # B releases
    rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert_conserved(redis_client, store, written_by(jobs))


def test_a_give_back_validates_everything_before_its_first_write(
    redis_client: redis.Redis, store: Store
) -> None:
    """Issue 8, item 5: a bad live value must not leave a give-back half done."""
    jobs = [(D, "sync", "completed")] * 2
    for job in jobs:
        foreign_job(redis_client, *job)
    side = RedisSide(redis_client)
    (claim,), _ = side.claim([D], "run-a")
    redis_client.hset(family.extra_key(D, "started"), "sync", "abc")  # a broken writer
    before = redis_dump(redis_client)
    outcome = side.restore(claim)
    assert family.extra_key(D, "started") in outcome and "'abc'" in outcome
    assert redis_dump(redis_client) == before  # nothing half-applied
    redis_client.hdel(family.extra_key(D, "started"), "sync")  # the operator repairs it
    assert side.restore(claim) == "restored"
    assert rotate(redis_client, store, RotateOptions(first=D), now=NOW).error is None
    assert_conserved(redis_client, store, written_by(jobs))


def test_an_unparsable_date_is_given_back_and_holds_no_good_date_hostage(
    redis_client: redis.Redis, store: Store
) -> None:
    """Issue 8, item 7: a field name that is not UTF-8 passes the script's checks but not
    Python's; the date goes back to Redis whole, the batch's other dates are rotated."""
    jobs = [(D - 1, "sync", "completed"), (D, "sync", "completed"), (D + 1, "sync", "completed")]
    for job in jobs:
        foreign_job(redis_client, *job)
    redis_client.hincrby(family.extra_key(D, "requested"), b"\xff\xfebad", 1)
    redis_client.hincrby(family.counts_key(D), "requested", 1)
    bad_before = {k: v for k, v in redis_dump(redis_client).items() if f":{D}".encode() in k}
    for _ in range(2):  # and again: the next run is not stuck on it either
        report = rotate(redis_client, store, RotateOptions(first=D - 1, last=D + 1), now=NOW)
        assert report.exit_code == 1 and "UTF-8" in (report.error or "")
        assert family.extra_key(D, "requested") in (report.error or "")
        after = {k: v for k, v in redis_dump(redis_client).items() if f":{D}".encode() in k}
        assert after == bad_before  # given back exactly, no claim left
        assert not redis_client.exists(family.claim_id_key(D))
        assert [r.retrieved_for for r in store.rows(None, None)] == [iso(D - 1), iso(D + 1)]
    assert int(redis_client.get(family.EARLIEST_KEY)) == D


@pytest.mark.parametrize(("lost_at", "code"), [(1, 75), (2, 1)])
def test_losing_the_lock_exits_75_only_when_nothing_was_done(
    redis_client: redis.Redis,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    lost_at: int,
    code: int,
) -> None:
    for d in (D, D + 1, D + 2):
        foreign_job(redis_client, d, "sync", "completed")
    calls = iter(range(1, 100))
    real = RedisSide.refresh_lock
    monkeypatch.setattr(
        RedisSide, "refresh_lock", lambda self, *a: next(calls) < lost_at and real(self, *a)
    )
    report = rotate(redis_client, store, RotateOptions(first=D, last=D + 2, batch_size=1), now=NOW)
    assert int(report.exit_code) == code
    assert f"stopped after {lost_at - 1} date(s)" in (report.error or "")


def test_crash_between_byte_slices_of_one_commit(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: a group's commit is cut into slices by bytes; dying after the first
    slice leaves committed-but-unreleased claims, which the next run recognises."""
    jobs = [(D + k, "sync", "completed") for k in range(4) for _ in range(k + 1)]
    for job in jobs:
        foreign_job(redis_client, *job)
    commit = type(store).commit
    calls: list[int] = []

    def commit_then_die(self: Store, items, retrieved_at):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        if len(calls) > 1:
            raise Crash
        return commit(self, items, retrieved_at)

    with monkeypatch.context() as m:
        m.setattr(type(store), "commit", commit_then_die)
        with pytest.raises(Crash):
            rotate(redis_client, store, RotateOptions(max_commit_bytes=1), now=NOW)
    assert calls == [1, 1]  # one date per slice; the second slice never committed
    report = rotate(redis_client, store, now=NOW)
    assert report.error is None
    states = {o.unix_date: o.state for o in report.outcomes}
    assert states[D] is DateState.ALREADY_APPLIED  # the first slice: in the ledger
    assert all(states[D + k] is DateState.INSERTED for k in (1, 2, 3))
    assert_conserved(redis_client, store, written_by(jobs))
    assert tally_redis(redis_client) == {}
