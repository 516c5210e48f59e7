"""The Lua scripts, called directly on a real redis-server (absent and empty keys too)."""

from __future__ import annotations

import redis

from rotate_stats import family
from rotate_stats.redis_side import RedisSide
from tests.helpers import ReplyDropper, foreign_write

D = 19_800


def test_claim_of_absent_keys_is_empty_and_changes_nothing(redis_client: redis.Redis) -> None:
    claims, error = RedisSide(redis_client).claim([D, D + 1], "run")
    assert error is None
    assert [(c.state, c.claim_id) for c in claims] == [("empty", ""), ("empty", "")]
    assert redis_client.dbsize() == 0


def test_claim_renames_and_a_second_claim_returns_the_pending_one(
    redis_client: redis.Redis,
) -> None:
    foreign_write(redis_client, D, "requested", "sync", 3)
    side = RedisSide(redis_client)
    (claim,), _ = side.claim([D], "run-a")
    assert claim.state == "claimed" and claim.claim_id.startswith("run-a.")
    assert claim.claim_id.endswith(f"/{D}/1")  # date, then the claim sequence number
    assert claim.day.count("requested") == 3 and claim.day.breakdown("requested") == {"sync": 3}
    assert not redis_client.exists(*family.live_keys(D))
    foreign_write(redis_client, D, "requested", "sync", 1)  # lands in fresh live keys
    (again,), _ = side.claim([D], "run-b")
    assert again.state == "pending" and again.claim_id == claim.claim_id
    assert again.day == claim.day
    assert redis_client.hget(family.counts_key(D), "requested") == b"1"


def test_release_only_deletes_the_committed_claim(redis_client: redis.Redis) -> None:
    foreign_write(redis_client, D, "requested", "sync")
    side = RedisSide(redis_client)
    (claim,), _ = side.claim([D], "run-a")
    released, earliest = side.release([D], ["someone-else"])
    assert released == [False]
    assert redis_client.exists(family.claim_id_key(D))
    assert earliest == str(D)  # blocked by the claim that is still there
    released, earliest = side.release([D], [claim.claim_id])
    assert released == [True] and earliest == str(D + 1)
    assert redis_client.keys("rotate_stats:*") == [family.CLAIM_SEQUENCE_KEY.encode()]


def test_release_leaves_a_lower_earliest_and_stops_at_reappeared_keys(
    redis_client: redis.Redis,
) -> None:
    side = RedisSide(redis_client)
    redis_client.set(family.EARLIEST_KEY, D - 5)  # a writer lowered it below the batch
    assert side.release([D, D + 1], ["", ""])[1] == str(D - 5)
    redis_client.set(family.EARLIEST_KEY, D)
    foreign_write(redis_client, D + 1, "queued", "sync")  # set-if-lower keeps D
    assert side.release([D, D + 1, D + 2], ["", "", ""])[1] == str(D + 1)
    redis_client.delete(family.EARLIEST_KEY)
    assert side.release([D + 2], [""])[1] == str(D + 3)  # absent: set past the batch


def test_release_never_moves_earliest_backwards_without_reason(
    redis_client: redis.Redis,
) -> None:
    redis_client.set(family.EARLIEST_KEY, D + 10)
    assert RedisSide(redis_client).release([D, D + 1], ["", ""])[1] == str(D + 10)


def test_restore_adds_the_claim_back_into_live_keys(redis_client: redis.Redis) -> None:
    foreign_write(redis_client, D, "started", "sync", 2)
    side = RedisSide(redis_client)
    (claim,), _ = side.claim([D], "run")
    side.release([D - 1], [""])  # moves earliest somewhere else first
    redis_client.set(family.EARLIEST_KEY, D + 1)
    foreign_write(redis_client, D, "started", "sync", 5)  # a writer meanwhile
    assert side.restore(claim) == "restored"
    assert redis_client.hget(family.counts_key(D), "started") == b"7"
    assert redis_client.hget(family.extra_key(D, "started"), "sync") == b"7"
    assert int(redis_client.get(family.EARLIEST_KEY)) == D
    assert side.restore(claim) == "changed"  # already given back: nothing happens twice
    assert redis_client.hget(family.counts_key(D), "started") == b"7"


def test_lock_refresh_and_release_are_compare_and_set(redis_client: redis.Redis) -> None:
    side = RedisSide(redis_client)
    assert side.acquire_lock("a", 10_000)
    assert not side.acquire_lock("b", 10_000)
    assert not side.refresh_lock("b", 10_000) and not side.release_lock("b")
    assert side.lock_holder()[0] == "a"
    assert side.refresh_lock("a", 20_000) and side.release_lock("a")
    assert side.lock_holder() == (None, None)


def test_scripts_survive_a_flushed_script_cache(redis_client: redis.Redis) -> None:
    side = RedisSide(redis_client)
    assert side.claim([D], "x")[1] is None
    redis_client.script_flush()  # what a Redis restart does to EVALSHA
    foreign_write(redis_client, D, "requested", "sync")
    (claim,), error = side.claim([D], "y")
    assert error is None and claim.state == "claimed"


def test_claim_ids_are_never_reused_within_a_run(redis_client: redis.Redis) -> None:
    side = RedisSide(redis_client)
    ids = []
    for _ in range(3):
        foreign_write(redis_client, D, "requested", "sync")
        (claim,), _ = side.claim([D], "same-run")
        ids.append(claim.claim_id)
        side.release([D], [claim.claim_id])
    assert len(set(ids)) == 3


def test_claim_validates_integers_like_redis(redis_client: redis.Redis) -> None:
    side = RedisSide(redis_client)
    key = family.extra_key(D, "failed")
    for value in ("-9223372036854775808", "9223372036854775807", "0", "-5"):
        redis_client.hset(key, "sync:x", value)
        (claim,), error = side.claim([D], "run")
        assert error is None, value
        assert claim.day.breakdown("failed") == {"sync:x": int(value)}
        side.release([D], [claim.claim_id])
    for value in ("-0", "007", "9223372036854775808", "-9223372036854775809", "1.0", " 1"):
        redis_client.hset(key, "sync:x", value)
        claims, error = side.claim([D], "run")
        assert claims == [] and error is not None, value
        assert error.key == key and error.field == "sync:x" and error.value == value
        assert redis_client.hget(key, "sync:x") == value.encode()  # left as it was


def test_a_lock_taken_by_a_resent_set_is_ours(redis_client: redis.Redis) -> None:
    """redis-py resends SET after a lost answer: the lock its first attempt took is ours."""
    port = redis_client.connection_pool.connection_kwargs["port"]
    proxy = ReplyDropper(port)
    client = redis.Redis(port=proxy.port)  # redis-py's default retries
    try:
        side = RedisSide(client)
        client.ping()  # connected: the next reply is SET's
        proxy.drop_replies(1)
        assert side.acquire_lock("a", 10_000)
        assert proxy.dropped == 1 and side.lock_holder()[0] == "a"
        assert not side.acquire_lock("b", 10_000)
    finally:
        client.close()
        proxy.close()
