"""Wide days (issue 9): Redis is never asked for work proportional to a hash's width.

Claims are RENAMEs, claim hashes wider than ``READ_CHUNK`` are read with HSCAN,
and a give-back moves at most ``GIVE_BACK_BUDGET`` fields per script call. These
tests check the behaviour that makes that true (what commands ran, how much one
step moved) and that nothing is lost or doubled on the way; the timings are in
``benchmarks/`` and docs/PERFORMANCE.md, never asserted here.
"""

from __future__ import annotations

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import Store
from rotate_stats.dates import iso
from rotate_stats.invariants import DayCounts
from rotate_stats.redis_side import (
    GIVE_BACK_BUDGET,
    READ_CHUNK,
    SCAN_PIPELINE,
    Claim,
    RedisSide,
)
from rotate_stats.walk import RotateOptions, commit_bytes, rotate
from tests.helpers import tally_redis
from tests.integration.test_faults import NOW, D

WIDTH = READ_CHUNK * 2 + 500  # failure reasons of one date: wider than one read chunk


def plant_wide_day(client: redis.Redis, d: int, width: int = WIDTH) -> None:
    """``width`` jobs that failed, each with a reason of its own (a valid day)."""
    reasons = {f"sync:reason-{i}": 1 for i in range(width)}
    pipe = client.pipeline(transaction=False)
    for event in ("requested", "queued", "started"):
        pipe.hset(family.counts_key(d), event, width)
        pipe.hset(family.extra_key(d, event), "sync", width)
    pipe.hset(family.counts_key(d), "failed", width)
    pipe.hset(family.extra_key(d, "failed"), mapping=reasons)
    pipe.set(family.EARLIEST_KEY, d)
    pipe.execute()


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_the_claim_renames_and_reads_nothing(redis_client: redis.Redis) -> None:
    plant_wide_day(redis_client, D)
    side = RedisSide(redis_client)
    redis_client.config_resetstat()
    cuts, errors = side.cut([D], "run")
    calls = command_calls(redis_client)
    assert errors == {} and cuts[0].state == "claimed"
    assert cuts[0].lengths[family.EVENTS.index("failed") + 1] == WIDTH
    assert calls.get("rename") == 5  # counts + the four breakdowns planted
    for reading in ("hgetall", "hscan", "hget", "hkeys", "hvals"):
        assert reading not in calls, calls


def test_a_wide_day_is_read_in_chunks_and_committed_exactly(
    redis_client: redis.Redis, store: Store
) -> None:
    plant_wide_day(redis_client, D)
    redis_client.config_resetstat()
    report = rotate(redis_client, store, RotateOptions(first=D), now=NOW)
    assert report.error is None
    calls = command_calls(redis_client)
    assert calls.get("hscan", 0) >= WIDTH // READ_CHUNK  # the wide hash, chunk by chunk
    (row,) = store.rows(None, None)
    assert row.day.count("failed") == WIDTH
    assert row.day.breakdown("failed") == {f"sync:reason-{i}": 1 for i in range(WIDTH)}
    assert tally_redis(redis_client) == {}


def test_many_wide_hashes_are_scanned_side_by_side_and_each_read_whole(
    redis_client: redis.Redis, store: Store
) -> None:
    """More wide hashes than SCAN_PIPELINE, of different widths: each is read to its end."""
    widths = [READ_CHUNK + 1 + 700 * k for k in range(SCAN_PIPELINE + 2)]
    for k, width in enumerate(widths):
        plant_wide_day(redis_client, D + k, width)
    redis_client.set(family.EARLIEST_KEY, D)
    last = D + len(widths) - 1
    report = rotate(redis_client, store, RotateOptions(first=D, last=last), now=NOW)
    assert report.error is None
    rows = {row.retrieved_for: row for row in store.rows(None, None)}
    for k, width in enumerate(widths):
        row = rows[iso(D + k)]
        assert row.day.breakdown("failed") == {f"sync:reason-{i}": 1 for i in range(width)}
    assert tally_redis(redis_client) == {}


def test_a_wide_give_back_moves_each_field_once_even_if_stopped_between_steps(
    redis_client: redis.Redis,
) -> None:
    """New writes arrive after the claim, so the claim cannot simply be renamed back;
    one step moves at most the budget, and whenever it stops every count is in
    exactly one place (claim or live keys)."""
    plant_wide_day(redis_client, D)
    before = tally_redis(redis_client)
    side = RedisSide(redis_client)
    (cut,), _ = side.cut([D], "run")
    late = {f"sync:reason-{i}": 1 for i in range(GIVE_BACK_BUDGET * 3)}  # overlaps the claim
    redis_client.hset(family.extra_key(D, "failed"), mapping=late)
    expected = before.copy()
    for name in late:
        expected[(D, "failed", name)] += 1
    claim_failed = family.claim_keys(D)[family.EVENTS.index("failed") + 1]
    keys = [*family.claim_keys(D), family.claim_id_key(D), *family.live_keys(D)]
    keys += [family.EARLIEST_KEY, family.claim_picked_key(D)]
    redis_client.set(family.EARLIEST_KEY, D + 1)  # as if release had moved it on
    steps = 0
    while True:  # the steps restore() makes, checked one by one: a crash may stop any of them
        width = redis_client.hlen(claim_failed)
        reply = side.scripts.give_back(
            keys=keys, args=[cut.claim_id, D, "strict", GIVE_BACK_BUDGET]
        )
        steps += 1
        assert width - redis_client.hlen(claim_failed) <= GIVE_BACK_BUDGET
        assert tally_redis(redis_client) == expected  # conserved after every step
        assert int(redis_client.get(family.EARLIEST_KEY)) == D  # visible to the next walk
        if reply[0] == 1:
            break
        assert reply[0] == 2
    assert steps >= WIDTH // GIVE_BACK_BUDGET
    assert not redis_client.exists(family.claim_id_key(D), *family.claim_keys(D))
    again = side.restore(Claim(D, "claimed", cut.claim_id, DayCounts()))
    assert again == "changed"  # given back once: nothing happens twice


def test_a_step_refuses_a_field_it_cannot_add_and_changes_nothing(
    redis_client: redis.Redis,
) -> None:
    plant_wide_day(redis_client, D, width=10)
    side = RedisSide(redis_client)
    (cut,), _ = side.cut([D], "run")
    redis_client.hset(family.extra_key(D, "failed"), "sync:reason-3", "abc")  # a hand edit
    before = redis_client.hgetall(family.extra_key(D, "failed"))
    outcome = side.restore(Claim(D, "claimed", cut.claim_id, DayCounts()))
    assert "sync:reason-3" in outcome and "'abc'" in outcome
    assert redis_client.hgetall(family.extra_key(D, "failed")) == before
    assert redis_client.get(family.claim_id_key(D)).decode() == cut.claim_id


def test_commits_are_sliced_by_bytes_and_every_count_lands_once(
    redis_client: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long free-form reasons: a field count alone would not bound one request."""
    long_reason = "x" * 2000
    for k in range(3):
        plant_wide_day(redis_client, D + k, 50)
        pipe = redis_client.pipeline(transaction=False)
        pipe.delete(family.extra_key(D + k, "failed"))
        pipe.hset(
            family.extra_key(D + k, "failed"),
            mapping={f"sync:{long_reason}{i}": 1 for i in range(50)},
        )
        pipe.execute()
    redis_client.set(family.EARLIEST_KEY, D)
    sizes: list[list[int]] = []
    commit = store.commit

    def recording_commit(items, retrieved_at):  # type: ignore[no-untyped-def]
        sizes.append([commit_bytes(i) for i in items])
        return commit(items, retrieved_at)

    monkeypatch.setattr(store, "commit", recording_commit)
    options = RotateOptions(first=D, last=D + 2, max_commit_bytes=150_000)
    report = rotate(redis_client, store, options, now=NOW)
    assert report.error is None
    # each date is about 100 KB: two never fit in 150 KB, so three transactions
    assert [len(s) for s in sizes] == [1, 1, 1]
    assert all(100_000 < s[0] <= 150_000 for s in sizes)
    rows = store.rows(None, None)
    assert len(rows) == 3
    for row in rows:
        assert row.day.count("failed") == 50 and len(row.day.breakdown("failed")) == 50
    assert tally_redis(redis_client) == {}
