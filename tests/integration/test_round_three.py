"""Round three: exactly-once holes of failover, restarts, give-backs and the ledger.

Tests named ``test_round_three_bug<N>_...`` reproduce the four bugs of the issue
(``-k round_three_bug``); the others guard what already holds. Every test ends on
the guarantee itself - counts in the table plus counts still in Redis are exactly
what writers wrote (``assert_exactly_once``) - not on how the job achieves it.

Faults go in through seams that survive a refactor of the job: ``rotate``,
``RedisSide.cut`` / ``RedisSide.release`` (wrapped with ``*args, **kwargs``, result
unchanged), ``Store.commit``, ``redis.client.Pipeline.execute`` (``hook_pipelines``:
act before or after a pipeline holding a given command) and ``prune_ledger``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client
from redis.typing import EncodableT

from rotate_stats import family
from rotate_stats.checks import prune_ledger
from rotate_stats.database import DateCommit, SqliteStore, Store
from rotate_stats.errors import RotateStatsError
from rotate_stats.redis_side import RedisSide
from rotate_stats.report import ExitCode, RotationReport
from rotate_stats.walk import RotateOptions, rotate
from tests.conftest import RedisServer, redis_binary, require_binary
from tests.helpers import (
    StallableProxy,
    SwitchableProxy,
    assert_exactly_once,
    foreign_job,
    hook_pipelines,
    stored_tally,
    tally_redis,
)
from tests.integration.test_faults import Crash, D, written_by
from tests.integration.test_rotation import NOW

JOBS = [(D, "sync", "completed")] * 3 + [(D + 1, "greeting", "completed")] * 2
WIDE = 3000
"""Breakdown fields of a wide date: read in several HSCAN chunks (more than 1,000)."""

Written = Counter[tuple[int, str, str | None]]


def plant_wide_day(client: redis.Redis, d: int, width: int = WIDE) -> Written:
    """``width`` failed sync jobs with a reason each (a valid day whose ``failed``
    breakdown is one wide hash); returns what was written."""
    written: Written = Counter()
    pipe = client.pipeline(transaction=False)
    for event in ("requested", "queued", "started"):
        pipe.hset(family.counts_key(d), event, width)
        pipe.hset(family.extra_key(d, event), "sync", width)
        written[d, event, None] = written[d, event, "sync"] = width
    pipe.hset(family.counts_key(d), "failed", width)
    written[d, "failed", None] = width
    reasons = [f"sync:reason-{i}" for i in range(width)]
    mapping: dict[EncodableT, EncodableT] = dict.fromkeys(reasons, 1)
    pipe.hset(family.extra_key(d, "failed"), mapping=mapping)
    written.update({(d, "failed", reason): 1 for reason in reasons})
    pipe.set(family.EARLIEST_KEY, d)
    pipe.execute()
    return written


def kill(server: RedisServer) -> None:
    """SIGKILL: no shutdown, no last save or sync."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)
    server.process = None


def wait_online(primary: redis.Redis, replica: redis.Redis) -> None:
    """Until WAIT on ``primary`` counts ``replica``: its first sync over, link up."""
    deadline = time.monotonic() + 20
    while not (
        primary.info("replication").get("slave0", {}).get("state") == "online"
        and replica.info("replication").get("master_link_status") == "up"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not finish its first sync")
        time.sleep(0.05)


def run_in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``target`` in a thread; the list gets its result or the exception it raised."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(target())
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            out.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def joined(thread: threading.Thread, out: list[Any]) -> Any:
    thread.join(30)
    assert not thread.is_alive(), "a run did not finish"
    (result,) = out
    return result


# -- bug 1: failover between the claim and the fence -----------------------------------------


class Failover:
    """Primary P; replica R following P through a stallable link; a spare server R2
    that becomes R's replica once R is promoted (so ``WAIT 1`` is met on R). The job
    reaches Redis through one address: a switchable proxy, pointing at P first."""

    def __init__(self, binary: str, directory: Path) -> None:
        quick = ("--repl-diskless-sync-delay", "0")
        for name in ("primary", "replica", "spare"):
            (directory / name).mkdir()
        self.primary = RedisServer(binary, directory / "primary", *quick)
        self.link = StallableProxy(self.primary.port)
        self.replica = RedisServer(
            binary, directory / "replica", *quick, "--replicaof", "127.0.0.1", str(self.link.port)
        )
        self.spare = RedisServer(binary, directory / "spare", *quick)
        self.front = SwitchableProxy(self.primary.port)
        self.writer = redis.Redis(port=self.primary.port)
        wait_online(self.writer, redis.Redis(port=self.replica.port))

    def fail_over(self) -> None:
        """P dies; R is promoted, gains R2 as its replica, and the address moves to R."""
        kill(self.primary)
        promoted = redis.Redis(port=self.replica.port)
        promoted.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        spare = redis.Redis(port=self.spare.port)
        port = str(self.replica.port)
        spare.execute_command("REPLICAOF", "127.0.0.1", port)  # type: ignore[no-untyped-call]
        wait_online(promoted, spare)
        self.front.retarget(self.replica.port)

    def close(self) -> None:
        self.front.close()
        self.link.close()
        for server in (self.spare, self.replica, self.primary):
            server.stop()


@pytest.fixture
def failover(tmp_path: Path) -> Iterator[Failover]:
    made = Failover(redis_binary(), tmp_path)
    yield made
    made.close()


@pytest.mark.parametrize("fence", ["replicas:1", "auto"])
def test_round_three_bug1_a_failover_between_claim_and_fence_counts_nothing_twice(
    failover: Failover, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch, fence: str
) -> None:
    """The claims (RENAMEs) never reach R. P dies after the run read them and before its
    fence; R is promoted and has a replica of its own, so the fence is met - on a
    server that never saw the claims. Committing them then leaves their counts live on
    R, and the next run rotates them a second time (main: doubled, exit 0)."""
    for job in JOBS:
        foreign_job(failover.writer, *job)
    assert failover.writer.wait(1, 5000) == 1  # R has the live keys
    failover.link.stall()  # from now on R hears nothing of P
    client = redis.Redis(port=failover.front.port)  # the job's one address
    moved: list[str] = []

    def before(pipe: redis.client.Pipeline, names: list[str]) -> None:
        if pipe.connection_pool is client.connection_pool and {"WAIT", "WAITAOF"} & set(names):
            if not moved:  # the run's claims are cut and read: now its Redis fails over
                moved.append("R")
                failover.fail_over()

    options = RotateOptions(first=D, last=D + 1, fence=fence, fence_timeout_ms=3000)
    with monkeypatch.context() as m:
        hook_pipelines(m, before=before)
        rotate(client, sqlite, options, now=NOW)
    assert moved, "the run never reached its fence (test setup)"
    rotate(client, sqlite, options, now=NOW)  # a later run, on R (the claims, if any, resume)
    assert_exactly_once(redis.Redis(port=failover.replica.port), sqlite, written_by(JOBS))


# -- bug 2: a wide read across a restart -----------------------------------------------------


def test_round_three_bug2_a_wide_read_across_a_restart_loses_nothing(
    tmp_path: Path, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis with AOF ``appendfsync always`` loses nothing on a restart; but the HSCAN
    cursor of a wide claim hash means nothing to the restarted process (its hash table
    is laid out anew). Main resumes the cursor, skips fields, commits the partial read
    and releases the claim: counts lost (exit 3, only "invariant findings")."""
    server = RedisServer(redis_binary(), tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    client = redis.Redis(port=server.port)
    try:
        written = plant_wide_day(client, D)
        restarts: list[int] = []

        def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> None:
            if pipe.connection_pool is client.connection_pool and "HSCAN" in names:
                if not restarts:  # the first chunk is read: Redis crashes and restarts
                    restarts.append(server.port)
                    kill(server)
                    server.start()  # from its AOF; the client reconnects

        with monkeypatch.context() as m:
            hook_pipelines(m, after=after)
            rotate(client, sqlite, RotateOptions(first=D), now=NOW)
        assert restarts, "the run never read the wide hash with HSCAN (test setup)"
        rotate(client, sqlite, RotateOptions(first=D), now=NOW)  # a final clean run
        assert_exactly_once(client, sqlite, written)
    finally:
        client.close()
        server.stop()


def test_round_three_bug2_a_wide_read_across_a_failover_loses_nothing(
    failover: Failover, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same across a failover to a replica that has every write (the claim too):
    its copy of the wide hash has a layout of its own, so the cursor means nothing
    there either. Main: counts lost."""
    written = plant_wide_day(failover.writer, D)
    client = redis.Redis(port=failover.front.port)  # the job's one address
    moved: list[str] = []

    def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> None:
        if pipe.connection_pool is client.connection_pool and "HSCAN" in names:
            if not moved:  # the first chunk is read; R has the claim, then P dies
                assert failover.writer.wait(1, 5000) == 1
                moved.append("R")
                failover.fail_over()

    with monkeypatch.context() as m:
        hook_pipelines(m, after=after)
        rotate(client, sqlite, RotateOptions(first=D), now=NOW)
    assert moved, "the run never read the wide hash with HSCAN (test setup)"
    rotate(client, sqlite, RotateOptions(first=D), now=NOW)  # a final clean run, on R
    assert_exactly_once(redis.Redis(port=failover.replica.port), sqlite, written)


# -- bug 3: the "unparsable" give-back and the pick-up marker --------------------------------


def settle(client: redis.Redis, key: str) -> None:
    """Finish the incremental rehash of a hash: every lookup moves a bucket, so that
    its HSCAN order stays what it is now (a hash only changes layout on writes)."""
    pipe = client.pipeline(transaction=False)
    for _ in range(2 * client.hlen(key)):
        pipe.hexists(key, "sync:reason-0")
    pipe.execute()


def scan_order(client: redis.Redis, key: str) -> list[bytes | str]:
    """Fields in HSCAN order, 500 per call."""
    out: list[bytes | str] = []
    cursor = 0
    while True:
        cursor, chunk = client.hscan(key, cursor, count=500)
        out += [f for f in chunk if f not in out]
        if not cursor:
            return out


def test_round_three_bug3_an_unparsable_give_back_never_races_a_pick_up(
    redis_client: redis.Redis,
    sqlite_path: str,
    sqlite: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run A claims a wide date with one bad value (far from the first HSCAN chunk). A's
    lock expires; run B picks the claim up and reads its counts and first chunk. Then A
    gives the whole claim back - an "unparsable" give-back ignores B's pick-up marker -
    B's next HSCAN finds nothing and B commits the part it read under the claim id. The
    operator fixes the value as told; a clean run rotates the date: B's part twice."""
    wide = family.extra_key(D, "failed")
    written = plant_wide_day(redis_client, D)
    settle(redis_client, wide)
    bad = scan_order(redis_client, wide)[-1]  # the last chunk: outside any first chunk
    redis_client.hset(wide, bad, "abc")  # a broken writer; `written` holds the repaired 1
    port = redis_client.connection_pool.connection_kwargs["port"]
    run_a, run_b = redis.Redis(port=port), redis.Redis(port=port)
    a_cut, b_read_some, a_done = threading.Event(), threading.Event(), threading.Event()
    b_first_chunk: set[bytes | str] = set()
    real_cut = RedisSide.cut

    def cut(self: RedisSide, *args: Any, **kwargs: Any) -> Any:
        result = real_cut(self, *args, **kwargs)
        if self.client is run_a and not a_cut.is_set():
            redis_client.delete(family.LOCK_KEY)  # A's lock expires: A is slow
            a_cut.set()
            assert b_read_some.wait(20)
        return result

    def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> None:
        if pipe.connection_pool is run_b.connection_pool and "HSCAN" in names:
            if not b_read_some.is_set():  # B has the counts and a first chunk
                for reply in replies:
                    if isinstance(reply, list | tuple) and len(reply) == 2:
                        b_first_chunk.update(reply[1])
                b_read_some.set()
                assert a_done.wait(20)

    def rotate_with(client: redis.Redis) -> Callable[[], RotationReport]:
        def run() -> RotationReport:
            store = SqliteStore(sqlite_path)
            try:
                return rotate(client, store, RotateOptions(first=D), now=NOW)
            finally:
                store.close()

        return run

    with monkeypatch.context() as m:
        m.setattr(RedisSide, "cut", cut)
        hook_pipelines(m, after=after)
        a = run_in_thread(rotate_with(run_a))
        assert a_cut.wait(20)
        b = run_in_thread(rotate_with(run_b))
        assert b_read_some.wait(20), "run B never read the wide hash with HSCAN (test setup)"
        joined(*a)  # A has read the claim and done whatever it does with the bad value
        a_done.set()
        joined(*b)
    assert bad not in b_first_chunk, "the bad value was in B's first chunk (test setup)"
    # the operator repairs the value where it is (live, or still claimed), as told
    for key in (wide, family.claim_keys(D)[1 + family.EVENTS.index("failed")]):
        if redis_client.hget(key, bad) == b"abc":
            redis_client.hset(key, bad, 1)
    rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)  # a clean run
    assert_exactly_once(redis_client, sqlite, written)


# -- bug 4: prune-ledger and claims that come back -------------------------------------------


def leave_committed_claim(
    client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run commits D's claim and dies before releasing it."""
    real_release = RedisSide.release
    calls: list[int] = []

    def release_dies_once(self: RedisSide, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Crash
        return real_release(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(RedisSide, "release", release_dies_once)
        with pytest.raises(Crash):
            rotate(client, store, RotateOptions(first=D), now=NOW)
    assert client.exists(family.claim_id_key(D)), "no committed claim was left (test setup)"


def prune_eight_days_later(client: redis.Redis, store: Store) -> None:
    """``prune-ledger --before D+1`` 8 days after the claims were applied (past the 7-day
    minimum age); a prune that refuses (a lock, a run in flight) is fine too."""
    try:
        prune_ledger(RedisSide(client), store, D + 1, now=time.time() + 8 * 86400)
    except RotateStatsError:
        pass


def test_round_three_bug4_prune_ledger_never_forgets_a_claim_a_run_still_holds(
    redis_client: redis.Redis,
    sqlite_path: str,
    sqlite: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash left D's claim committed, not released. Slow run S picks it up and reads it;
    its lock expires; run T finds the claim in the ledger and releases it; the ledger
    entry, old enough and its claim gone from Redis, is pruned; S goes on and commits the
    claim it read, which the ledger no longer knows (main: doubled, exit 0)."""
    jobs = [(D, "sync", "completed")] * 3
    for job in jobs:
        foreign_job(redis_client, *job)
    leave_committed_claim(redis_client, sqlite, monkeypatch)
    port = redis_client.connection_pool.connection_kwargs["port"]
    slow = redis.Redis(port=port)
    s_read, s_go = threading.Event(), threading.Event()

    def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> None:
        # S has cut (picked up) and read the claim: now it stalls
        if pipe.connection_pool is slow.connection_pool and "HGETALL" in names:
            if not s_read.is_set():
                s_read.set()
                assert s_go.wait(20)

    def run_s() -> RotationReport:
        store = SqliteStore(sqlite_path)
        try:
            return rotate(slow, store, RotateOptions(first=D), now=NOW)
        finally:
            store.close()

    with monkeypatch.context() as m:
        hook_pipelines(m, after=after)
        s = run_in_thread(run_s)
        assert s_read.wait(20), "run S never read the claim (test setup)"
        redis_client.delete(family.LOCK_KEY)  # S's lock expires
        rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)  # T finishes the claim
        prune_eight_days_later(redis_client, sqlite)
        s_go.set()
        joined(*s)
    rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)  # a final clean run
    assert_exactly_once(redis_client, sqlite, written_by(jobs))


def test_round_three_bug4_a_claim_back_from_an_old_snapshot_is_not_counted_again(
    tmp_path: Path, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D's claim is committed and released, its ledger entry pruned; then Redis restarts
    from an RDB snapshot taken while the claim was pending, and the claim is back. The
    next runs must not add it again: either they know it was applied, or they refuse the
    date (non-zero exit) and leave its keys. The table holds each count once either way;
    conservation with Redis cannot hold here - the snapshot brought back counts that
    were rotated. (Main: the claim is committed again, exit 0.)"""
    server = RedisServer(redis_binary(), tmp_path)
    client = redis.Redis(port=server.port)
    try:
        jobs = [(D, "sync", "completed")] * 3
        for job in jobs:
            foreign_job(client, *job)
        leave_committed_claim(client, sqlite, monkeypatch)
        client.save()  # the snapshot: the claim pending in it
        snapshot = tmp_path / "old-snapshot.rdb"
        shutil.copy(tmp_path / "dump.rdb", snapshot)
        assert rotate(client, sqlite, RotateOptions(first=D), now=NOW).error is None
        assert not client.exists(family.claim_id_key(D))  # applied and released
        prune_eight_days_later(client, sqlite)
        kill(server)
        shutil.copy(snapshot, tmp_path / "dump.rdb")
        server.start()  # from the old snapshot: the claim is back
        assert client.exists(family.claim_id_key(D)), "the claim did not come back (test setup)"
        for _ in range(2):
            report = rotate(client, sqlite, RotateOptions(first=D), now=NOW)
            assert +stored_tally(sqlite) == +written_by(jobs), (
                f"the table no longer holds each count once (exit {int(report.exit_code)})"
            )
            assert report.exit_code != ExitCode.OK or tally_redis(client) == {}
    finally:
        client.close()
        server.stop()


# -- guards: a late release, and an AOF fence reply ------------------------------------------


@pytest.mark.parametrize("c_dies", ["before its commit", "before its release"])
def test_a_late_release_never_deletes_a_newer_claim(
    redis_client: redis.Redis,
    sqlite_path: str,
    sqlite: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
    c_dies: str,
) -> None:
    """Run A commits D's claim and stalls before releasing it; run B picks the claim up,
    finds it applied and releases it; writers write more; run C claims the new counts
    and dies; then A's release arrives - late. It must not delete C's claim.

    Passes on main: release.lua deletes a claim only if its id is the one committed.
    Dropping that comparison (``if expected ~= '' then``) makes the "before its
    commit" case fail: A's late release deletes C's claim, which nobody committed, and
    the late counts are lost (checked by hand: all 24 late counts lost). With C's
    claim already committed ("before its release") A's deletion loses nothing: that case
    guards the sequence, not the comparison."""
    jobs = [(D, "sync", "completed")] * 2
    late = [(D, "summarize", "completed")] * 3
    for job in jobs:
        foreign_job(redis_client, *job)
    port = redis_client.connection_pool.connection_kwargs["port"]
    run_a, run_c = redis.Redis(port=port), redis.Redis(port=port)
    store_c = SqliteStore(sqlite_path)
    a_stalled, a_go = threading.Event(), threading.Event()
    real_release, real_commit = RedisSide.release, SqliteStore.commit

    def release(self: RedisSide, *args: Any, **kwargs: Any) -> Any:
        if self.client is run_a and not a_stalled.is_set():
            a_stalled.set()
            assert a_go.wait(20)
        elif self.client is run_c and c_dies == "before its release":
            raise Crash
        return real_release(self, *args, **kwargs)

    def commit(self: SqliteStore, items: list[DateCommit], retrieved_at: float) -> Any:
        if self is store_c and c_dies == "before its commit":
            raise Crash
        return real_commit(self, items, retrieved_at)

    def run_a_rotation() -> RotationReport:
        store = SqliteStore(sqlite_path)
        try:
            return rotate(run_a, store, RotateOptions(first=D), now=NOW)
        finally:
            store.close()

    try:
        with monkeypatch.context() as m:
            m.setattr(RedisSide, "release", release)
            m.setattr(SqliteStore, "commit", commit)
            a = run_in_thread(run_a_rotation)
            assert a_stalled.wait(20), "run A never reached its release (test setup)"
            redis_client.delete(family.LOCK_KEY)  # A's lock expires
            rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)  # B
            for job in late:
                foreign_job(redis_client, *job)
            with pytest.raises(Crash):
                rotate(run_c, store_c, RotateOptions(first=D), now=NOW)  # C
            assert redis_client.exists(family.claim_id_key(D))  # C's claim is pending
            a_go.set()
            joined(*a)
    finally:
        store_c.close()
    rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)  # a final clean run
    assert_exactly_once(redis_client, sqlite, written_by(jobs + late))


@pytest.mark.parametrize("fence", ["auto", "aof"])
def test_a_waitaof_without_the_local_fsync_is_a_fence_not_met(
    tmp_path: Path, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch, fence: str
) -> None:
    """WAITAOF answers [local fsyncs, replica fsyncs]; a reply of [0, 0] means the claims
    may not be on disk. Passes on main; making the job ignore the local count (treat
    any reply as met) fails it: the claims are committed (checked by hand)."""
    server = RedisServer(require_binary("valkey-server"), tmp_path, "--appendonly", "yes")
    client = redis.Redis(port=server.port)
    try:
        for job in JOBS:
            foreign_job(client, *job)
        replaced: list[object] = []

        def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> Any:
            if "WAITAOF" not in names:
                return None
            changed = list(replies)
            replaced.append(changed[names.index("WAITAOF")])
            changed[names.index("WAITAOF")] = [0, 0]
            return changed

        real_command = redis.Redis.execute_command

        def execute_command(self: redis.Redis, *args: Any, **options: Any) -> Any:
            reply = real_command(self, *args, **options)  # type: ignore[no-untyped-call]
            if args and str(args[0]).upper() == "WAITAOF":
                replaced.append(reply)
                return [0, 0]
            return reply

        options = RotateOptions(first=D, last=D + 1, fence=fence, fence_timeout_ms=500)
        with monkeypatch.context() as m:
            hook_pipelines(m, after=after)
            m.setattr(redis.Redis, "execute_command", execute_command)
            report = rotate(client, sqlite, options, now=NOW)
        assert replaced, "the run never sent WAITAOF (test setup)"
        assert report.error is not None, "a WAITAOF without the local fsync counted as met"
        assert "durability fence not met" in report.error
        assert report.exit_code == ExitCode.FAILURE
        assert sqlite.rows(None, None) == []  # nothing committed
        assert rotate(client, sqlite, options, now=NOW).error is None  # the fence is met now
        assert_exactly_once(client, sqlite, written_by(JOBS))
    finally:
        client.close()
        server.stop()
