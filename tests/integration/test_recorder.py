"""The recorder on a real redis-server when answers get lost (issue 8, item 6)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rotate_stats import AmbiguousWrite, Recorder, family
from tests.conftest import RedisServer
from tests.helpers import ReplyDropper

D = 19_900


@pytest.fixture
def dropper(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    yield proxy
    proxy.close()


CLIENTS = {
    "default": {},  # redis-py >= 6 retries by default
    "retries-on": {"retry": Retry(NoBackoff(), 5)},
}


@pytest.mark.parametrize("options", CLIENTS.values(), ids=CLIENTS.keys())
def test_a_lost_answer_is_never_resent_and_is_reported_as_ambiguous(
    dropper: ReplyDropper, redis_client: redis.Redis, options: dict[str, object]
) -> None:
    client = redis.Redis(port=dropper.port, socket_timeout=5, **options)  # type: ignore[arg-type]
    recorder = Recorder(client)
    assert recorder.record(D, "requested", "sync")  # loads the script, warms the connection
    dropper.drop_replies(1)
    with pytest.raises(AmbiguousWrite) as info:
        recorder.record(D, "requested", "sync")
    assert family.counts_key(D) in str(info.value) and "not resent" in str(info.value)
    # the increment ran once: it is counted once, not twice
    assert redis_client.hget(family.counts_key(D), "requested") == b"2"
    assert redis_client.hget(family.extra_key(D, "requested"), "sync") == b"2"
    assert recorder.record(D, "requested", "sync")  # the next call reconnects
    assert redis_client.hget(family.counts_key(D), "requested") == b"3"
    client.close()


def test_a_restarted_redis_without_the_script_is_handled(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    recorder = Recorder(redis.Redis(port=redis_server.port))
    assert recorder.record(D, "queued", "sync")
    redis_client.script_flush()  # what a restart does to the script cache
    assert recorder.record(D, "queued", "sync")
    assert redis_client.hget(family.counts_key(D), "queued") == b"2"


def test_nothing_sent_is_a_plain_connection_error() -> None:
    from tests.helpers import free_port

    client = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        Recorder(client).record(D, "requested", "sync")


def test_a_bad_stored_value_stops_the_whole_event_not_half_of_it(
    redis_client: redis.Redis,
) -> None:
    """Issue 8 (suspected): record.lua must not increment the count and then fail."""
    recorder = Recorder(redis_client)
    assert recorder.record(D, "failed", "sync:timed_out")
    redis_client.hset(family.extra_key(D, "failed"), "sync:timed_out", "abc")  # broken writer
    with pytest.raises(redis.ResponseError) as info:
        recorder.record(D, "failed", "sync:timed_out")
    assert family.extra_key(D, "failed") in str(info.value) and "abc" in str(info.value)
    assert redis_client.hget(family.counts_key(D), "failed") == b"1"  # untouched
    redis_client.set(family.counts_key(D + 1), "not a hash")
    with pytest.raises(redis.ResponseError, match="expected a hash"):
        recorder.record(D + 1, "failed", "sync:timed_out")
    assert not redis_client.exists(family.extra_key(D + 1, "failed"))
