"""The proof before each commit, the server identity, a replica URL and give-backs.

Focused tests of round three's mechanisms on a real Redis (``redis_client`` or a
server of the test's own); the end-to-end reproductions of the bugs are in
``test_round_three.py``. Each test asserts something a broken mechanism fails:

* ``RedisSide.prove`` says, per claim, proven / missing (with what is there instead)
  / incomplete, and writes the fence key;
* ``server_identity`` changes with the server process (restart) and with the
  replication history (a replica promoted), not with the connection;
* a run whose reads are never proven complete commits nothing (ReadNotProven); a
  claim gone before its proof is not committed and is claimed again at once;
* a replica's URL is refused before anything is touched;
* a give-back honours the pick-up marker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.database import SqliteStore, migrate
from rotate_stats.dates import iso
from rotate_stats.invariants import DayCounts
from rotate_stats.redis_side import Claim, Fence, Proof, RedisSide, server_identity
from rotate_stats.report import DateState, ExitCode
from rotate_stats.walk import MAX_PROOF_ROUNDS, RotateOptions, rotate
from tests.conftest import RedisServer, redis_binary
from tests.helpers import (
    assert_exactly_once,
    foreign_job,
    hook_pipelines,
    redis_dump,
    run_program,
    stored_tally,
    tally_redis,
)
from tests.integration.test_faults import D, written_by
from tests.integration.test_rotation import NOW

JOBS = [(D, "sync", "completed")] * 2 + [(D + 1, "greeting", "completed")]
NO_FENCE = Fence()


def plant(client: redis.Redis, jobs: list[tuple[int, str, str]] = JOBS) -> None:
    for job in jobs:
        foreign_job(client, *job)


def cut_and_read(side: RedisSide, dates: list[int], run_id: str = "run-p") -> list[Claim]:
    cuts, errors = side.cut(dates, run_id)
    assert not errors
    claims = side.take(cuts, errors)
    assert not errors
    return claims


def identity(client: redis.Redis) -> str:
    return server_identity([client.info("server"), client.info("replication")])


def claim_ids_in_redis(client: redis.Redis) -> set[bytes]:
    return {k for k in client.scan_iter(match=family.CLAIM_PATTERN) if k.endswith(b":id")}


# -- RedisSide.prove ---------------------------------------------------------------------------


def test_claims_held_as_read_are_proven_and_the_fence_key_written(
    redis_client: redis.Redis,
) -> None:
    side = RedisSide(redis_client)
    plant(redis_client)
    claims = cut_and_read(side, [D, D + 1])
    proof = side.prove(claims, NO_FENCE, "token-1", 1000)
    assert (proof.missing, proof.incomplete) == ({}, frozenset())
    assert proof.identity and proof.identity == identity(redis_client)
    assert all(c.sources == {proof.identity} for c in claims)
    assert redis_client.get(family.FENCE_KEY) == b"token-1"
    assert redis_client.pttl(family.FENCE_KEY) > 0


def test_a_claim_changed_or_gone_is_missing_with_what_is_there_instead(
    redis_client: redis.Redis,
) -> None:
    side = RedisSide(redis_client)
    plant(redis_client, JOBS + [(D + 2, "sync", "completed")])
    claims = cut_and_read(side, [D, D + 1, D + 2])
    redis_client.set(family.claim_id_key(D), "another-run.abc/19884/77")  # another claim now
    redis_client.delete(*family.claim_keys(D + 1), family.claim_id_key(D + 1))  # gone
    proof = side.prove(claims, NO_FENCE, "token-2", 1000)
    assert proof.missing == {D: "another-run.abc/19884/77", D + 1: ""}
    assert proof.incomplete == frozenset()  # D+2 is proven
    assert redis_client.get(family.FENCE_KEY) == b"token-2"  # fenced all the same


ACTIONS = ["keep", "other-id", "no-id", "add-field", "drop-field"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, family.KEYS_PER_DATE - 1)),
        min_size=1,
        max_size=4,
    )
)
def test_each_claim_gets_the_verdict_of_what_happened_to_it(
    redis_client: redis.Redis, changes: list[tuple[str, int]]
) -> None:
    """Per date, one thing happens between the read and the proof: nothing, its id is
    replaced or deleted, a field is added to or removed from one of its claim hashes.
    The proof tells exactly those apart, date by date."""
    redis_client.flushall()
    dates = [D + i for i in range(len(changes))]
    for d in dates:
        foreign_job(redis_client, d, "sync", "completed")  # 5 of the 7 claim hashes non-empty
    side = RedisSide(redis_client)
    claims = cut_and_read(side, dates)
    missing: dict[int, str] = {}
    incomplete: set[int] = set()
    for d, (action, j) in zip(dates, changes, strict=True):
        key = family.claim_keys(d)[j]
        if action == "other-id":
            redis_client.set(family.claim_id_key(d), f"other/{d}/1")
            missing[d] = f"other/{d}/1"
        elif action == "no-id":
            redis_client.delete(family.claim_id_key(d))
            missing[d] = ""
        elif action == "add-field":
            redis_client.hset(key, "summarize" if j else "failed", 0)
            incomplete.add(d)
        elif action == "drop-field" and redis_client.hlen(key):
            redis_client.hdel(key, redis_client.hkeys(key)[0])
            incomplete.add(d)
    proof = side.prove(claims, NO_FENCE, "token", 1000)
    assert proof.missing == missing
    assert proof.incomplete == incomplete


def test_many_claims_are_proven_over_several_script_calls(redis_client: redis.Redis) -> None:
    """More dates than one proof call takes (PROOF_DATES_PER_CALL): verdicts stay in order."""
    from rotate_stats.redis_side import PROOF_DATES_PER_CALL

    dates = [D + i for i in range(PROOF_DATES_PER_CALL + 5)]
    for d in dates:
        foreign_job(redis_client, d, "sync", "completed")
    side = RedisSide(redis_client)
    claims = cut_and_read(side, dates)
    last = dates[-1]
    redis_client.delete(family.claim_id_key(last))
    redis_client.hset(family.claim_keys(dates[PROOF_DATES_PER_CALL])[0], "failed", 0)
    proof = side.prove(claims, NO_FENCE, "token", 1000)
    assert proof.missing == {last: ""}
    assert proof.incomplete == {dates[PROOF_DATES_PER_CALL]}


# -- server identity ---------------------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path)
    yield server
    server.stop()


def test_the_identity_is_the_servers_not_the_connections(own_server: RedisServer) -> None:
    one, two = redis.Redis(port=own_server.port), redis.Redis(port=own_server.port)
    try:
        assert identity(one) == identity(two) != ""
        assert RedisSide(one).prove([], NO_FENCE, "t", 1000).identity == identity(two)
    finally:
        one.close()
        two.close()


def test_a_restarted_server_has_another_identity(own_server: RedisServer) -> None:
    client = redis.Redis(port=own_server.port)
    try:
        foreign_job(client, D, "sync", "completed")
        (cut,), _ = RedisSide(client).cut([D], "run-r")
        assert cut.identity == identity(client) != ""
        own_server.stop()
        own_server.start()
        after = RedisSide(client).prove([], NO_FENCE, "t", 1000).identity
        assert after and after != cut.identity
        assert after.split("/")[0] != cut.identity.split("/")[0]  # a new run_id
    finally:
        client.close()


def start_pair(tmp_path: Path) -> tuple[RedisServer, RedisServer]:
    """A primary and a replica of it, the replica's first sync done."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    quick = ("--repl-diskless-sync-delay", "0")
    primary = RedisServer(redis_binary(), tmp_path / "primary", *quick)
    replica = RedisServer(
        redis_binary(), tmp_path / "replica", *quick, "--replicaof", "127.0.0.1", str(primary.port)
    )
    client = redis.Redis(port=primary.port)
    deadline = time.monotonic() + 20
    while client.wait(1, 100) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not finish its first sync")
    client.close()
    return primary, replica


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary, replica = start_pair(tmp_path)
    yield primary, replica
    replica.stop()
    primary.stop()


def test_a_promoted_replica_has_another_identity(pair: tuple[RedisServer, RedisServer]) -> None:
    """Same process (run_id), new replication history (master_replid): not the server
    that answered before, though nothing restarted."""
    _, replica = pair
    client = redis.Redis(port=replica.port)
    try:
        before = identity(client)
        client.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        after = identity(client)
        assert before and after and before != after
        assert before.split("/")[0] == after.split("/")[0]  # the same process
        assert before.split("/")[1] != after.split("/")[1]  # another master_replid
    finally:
        client.close()


def test_without_info_the_identity_is_empty_and_rotation_still_works(tmp_path: Path) -> None:
    """fakeredis has no INFO: every identity is "", the same for cut, read and proof, so
    the proof passes on what it can check (claim ids and lengths) and the run commits."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    assert server_identity([{}, {}]) == ""
    side = RedisSide(client)
    plant(client)
    claims = cut_and_read(side, [D])
    assert claims[0].sources == {""}
    assert side.prove(claims, NO_FENCE, "t", 1000) == Proof("", {}, frozenset())
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    try:
        migrate(store)
        report = rotate(client, store, RotateOptions(first=D, last=D + 1), now=NOW)
        assert report.error is None and report.exit_code is ExitCode.OK
        assert [o.state for o in report.outcomes] == [DateState.INSERTED] * 2
        assert +stored_tally(store) == +written_by(JOBS)
        assert claim_ids_in_redis(client) == set()
    finally:
        store.close()


# -- reads never proven complete: ReadNotProven ------------------------------------------------


def assert_nothing_committed_and_claims_pending(
    client: redis.Redis, store: SqliteStore, dates: list[int]
) -> None:
    assert store.rows(None, None) == []
    assert store.read(f"SELECT COUNT(*) FROM {family.CLAIMS_TABLE}") == [(0,)]
    for d in dates:
        assert client.exists(family.claim_id_key(d)), f"{iso(d)}: no pending claim"


def test_reads_never_proven_complete_commit_nothing_then_the_next_run_commits_once(
    redis_client: redis.Redis, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(redis_client)
    real_prove = RedisSide.prove
    proofs: list[list[int]] = []

    def prove(self: RedisSide, claims: list[Claim], *args: Any, **kwargs: Any) -> Proof:
        proof = real_prove(self, claims, *args, **kwargs)
        proofs.append([c.unix_date for c in claims])
        return replace(proof, incomplete=frozenset(c.unix_date for c in claims))

    options = RotateOptions(first=D, last=D + 1)
    with monkeypatch.context() as m:
        m.setattr(RedisSide, "prove", prove)
        report = rotate(redis_client, sqlite, options, now=NOW)
    assert proofs == [[D, D + 1]] * MAX_PROOF_ROUNDS
    assert report.error is not None
    assert f"could not read the claims of {iso(D)}, {iso(D + 1)} completely" in report.error
    assert f"in {MAX_PROOF_ROUNDS} tries" in report.error
    assert report.exit_code is ExitCode.FAILURE
    assert report.outcomes == []
    assert_nothing_committed_and_claims_pending(redis_client, sqlite, [D, D + 1])
    assert not redis_client.exists(family.LOCK_KEY)  # the lock is released
    assert_exactly_once(redis_client, sqlite, written_by(JOBS))

    again = rotate(redis_client, sqlite, options, now=NOW)
    assert again.error is None and again.exit_code is ExitCode.OK
    assert [(o.unix_date, o.state) for o in again.outcomes] == [
        (D, DateState.INSERTED),
        (D + 1, DateState.INSERTED),
    ]
    assert all(o.detail == "claim left by an earlier run" for o in again.outcomes)
    assert_exactly_once(redis_client, sqlite, written_by(JOBS))
    assert tally_redis(redis_client) == {} and claim_ids_in_redis(redis_client) == set()


def test_a_claim_that_grows_between_every_read_and_its_proof_is_never_committed(
    redis_client: redis.Redis, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each read of D's claim a field appears in one of its hashes (nothing a real
    writer does: it stands for a read that missed a field). The proof sees one field more
    than was read every time: nothing is committed; a later clean run commits all of it."""
    plant(redis_client)
    client = redis.Redis(port=redis_client.connection_pool.connection_kwargs["port"])
    written = written_by(JOBS)
    grown: list[str] = []
    types = ["summarize", "reflection_question", "system_chat", "unknown", "greeting"]

    def after(pipe: redis.client.Pipeline, names: list[str], replies: list[Any]) -> None:
        if pipe.connection_pool is client.connection_pool and "HGETALL" in names:
            job_type = types[len(grown)]
            grown.append(job_type)
            redis_client.hincrby(family.claim_keys(D)[0], "requested", 1)
            redis_client.hincrby(family.claim_keys(D)[1], job_type, 1)  # a new field
            written[D, "requested", None] += 1
            written[D, "requested", job_type] += 1

    real_prove = RedisSide.prove
    proofs: list[Proof] = []

    def prove(self: RedisSide, *args: Any, **kwargs: Any) -> Proof:
        proofs.append(real_prove(self, *args, **kwargs))
        return proofs[-1]

    options = RotateOptions(first=D, last=D + 1)
    try:
        with monkeypatch.context() as m:
            hook_pipelines(m, after=after)
            m.setattr(RedisSide, "prove", prove)
            report = rotate(client, sqlite, options, now=NOW)
        assert [p.incomplete for p in proofs] == [{D}] * MAX_PROOF_ROUNDS
        assert all(p.missing == {} for p in proofs)
        assert report.error is not None and "could not read the claims of" in report.error
        assert report.exit_code is ExitCode.FAILURE
        assert_nothing_committed_and_claims_pending(redis_client, sqlite, [D, D + 1])
        again = rotate(client, sqlite, options, now=NOW)
        assert again.error is None
        assert [o.unix_date for o in again.outcomes] == [D, D + 1]
        assert_exactly_once(redis_client, sqlite, written)
        assert tally_redis(redis_client) == {}
    finally:
        client.close()


# -- a claim gone before its proof -------------------------------------------------------------


def test_a_claim_gone_before_its_proof_is_claimed_again_and_counted_once(
    redis_client: redis.Redis, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the cut, D's claim is gone and its counts are back in the live keys,
    as on a replica promoted before the claim reached it. The run must not commit the
    claim it read (its counts are live again); it says so and claims D again."""
    plant(redis_client)
    real_cut = RedisSide.cut
    lost: list[str] = []

    def cut(self: RedisSide, *args: Any, **kwargs: Any) -> Any:
        cuts, errors = real_cut(self, *args, **kwargs)
        if not lost:
            (first,) = [c for c in cuts if c.unix_date == D]
            lost.append(first.claim_id)
            for claim_key, live_key in zip(family.claim_keys(D), family.live_keys(D), strict=True):
                if redis_client.exists(claim_key):
                    redis_client.rename(claim_key, live_key)
            redis_client.delete(family.claim_id_key(D), family.claim_picked_key(D))
        return cuts, errors

    with monkeypatch.context() as m:
        m.setattr(RedisSide, "cut", cut)
        report = rotate(redis_client, sqlite, RotateOptions(first=D, last=D + 1), now=NOW)
    assert lost and lost[0]
    assert report.error is None and report.exit_code is ExitCode.OK
    notes = [n for n in report.notes if lost[0] in n]
    assert len(notes) == 1
    assert notes[0].startswith(f"{iso(D)}: claim {lost[0]} is no longer in Redis (no claim there)")
    assert "not committed" in notes[0]
    by_date = {o.unix_date: o for o in report.outcomes}
    assert sorted(o.unix_date for o in report.outcomes) == [D, D + 1]  # each once
    assert by_date[D].state is DateState.INSERTED
    assert by_date[D].claim_id not in ("", lost[0])  # claimed again, under a new id
    ledger = {r[0] for r in sqlite.read(f"SELECT claim_id FROM {family.CLAIMS_TABLE}")}
    assert lost[0] not in ledger and by_date[D].claim_id in ledger
    assert_exactly_once(redis_client, sqlite, written_by(JOBS))
    assert tally_redis(redis_client) == {}


# -- a replica's URL ---------------------------------------------------------------------------


def test_a_replica_url_is_refused_and_nothing_changes(
    pair: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = pair
    writer, reader = redis.Redis(port=primary.port), redis.Redis(port=replica.port)
    database = tmp_path / "stats.sqlite3"
    try:
        plant(writer)
        assert writer.wait(1, 5000) == 1
        store = SqliteStore(str(database))
        migrate(store)
        store.close()
        env = {
            "ROTATE_STATS_REDIS_URL": replica.url,
            "ROTATE_STATS_DATABASE_URL": f"sqlite:///{database}",
        }
        before = (redis_dump(writer), redis_dump(reader), database.read_bytes())

        done = run_program("rotate", "--date", iso(D), env=env)
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert "a replica (role slave" in done.stderr
        assert f"following 127.0.0.1:{primary.port}" in done.stderr
        assert "point ROTATE_STATS_REDIS_URL (or --redis-url) at the primary" in done.stderr
        done = run_program("prune-ledger", "--before", iso(D), env=env)
        assert done.returncode == ExitCode.USAGE and "a replica" in done.stderr

        dry = run_program("rotate", "--date", iso(D), "--dry-run", "--format", "json", env=env)
        assert dry.returncode == ExitCode.OK, dry.stderr
        planned = json.loads(dry.stdout)
        assert [(o["date"], o["state"]) for o in planned["outcomes"]] == [(iso(D), "planned")]
        shown = run_program("status", "--format", "json", env=env)
        assert shown.returncode in (ExitCode.OK, ExitCode.FAILURE), shown.stderr
        assert json.loads(shown.stdout)["earliest"] == iso(D)

        writer.wait(1, 5000)
        assert (redis_dump(writer), redis_dump(reader), database.read_bytes()) == before
    finally:
        writer.close()
        reader.close()


# -- give-backs and the pick-up marker ---------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "caller", "outcome"),
    [
        ("absent", "cutter", "restored"),
        ("absent", "stranger", "restored"),
        ("set by a pick-up", "cutter", "picked up by another run"),
        ("set by a pick-up", "stranger", "picked up by another run"),
        ("set by a pick-up", "picker", "restored"),
    ],
)
def test_a_give_back_honours_the_pick_up_marker(
    redis_client: redis.Redis, marker: str, caller: str, outcome: str
) -> None:
    """Only the last call to take a claim may give it back: with a pick-up marker, the
    call that set it; without one, anyone (the claim was cut and nobody picked it up)."""
    plant(redis_client)
    side = RedisSide(redis_client)
    (fresh,), _ = side.cut([D], "run-a")
    assert fresh.state == "claimed" and not redis_client.exists(family.claim_picked_key(D))
    owners = {"cutter": fresh.owner, "stranger": "run-x.0000000000000000"}
    if marker != "absent":
        (picked,), _ = side.cut([D], "run-b")  # another run picks the claim up
        assert picked.state == "pending" and picked.claim_id == fresh.claim_id
        assert redis_client.get(family.claim_picked_key(D)) == picked.owner.encode()
        owners["picker"] = picked.owner
    before = redis_dump(redis_client)
    claim = Claim(D, "claimed", fresh.claim_id, DayCounts(), owners[caller])
    assert side.restore(claim) == outcome
    if outcome == "restored":  # every count of D back in its live keys, the claim gone
        assert claim_ids_in_redis(redis_client) == set()
        assert not redis_client.exists(family.claim_picked_key(D), *family.claim_keys(D))
        live = {k: v for k, v in tally_redis(redis_client).items() if k[0] == D}
        assert live == {k: v for k, v in written_by(JOBS).items() if k[0] == D}
    else:
        assert redis_dump(redis_client) == before  # not a field moved


def test_a_give_back_of_a_claim_that_changed_touches_nothing(redis_client: redis.Redis) -> None:
    plant(redis_client)
    side = RedisSide(redis_client)
    (fresh,), _ = side.cut([D], "run-a")
    redis_client.set(family.claim_id_key(D), "other/1/1")  # another claim now
    before = redis_dump(redis_client)
    assert side.restore(Claim(D, "claimed", fresh.claim_id, DayCounts(), fresh.owner)) == "changed"
    assert redis_dump(redis_client) == before
