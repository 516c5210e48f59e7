"""Eviction must not eat a pending claim (issue 8, item 13), on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import SqliteStore
from rotate_stats.errors import ConfigError
from rotate_stats.redis_side import RedisSide
from rotate_stats.walk import RotateOptions, rotate
from tests.conftest import RedisServer, redis_binary
from tests.helpers import foreign_job, redis_dump
from tests.integration.test_faults import NOW, D


@pytest.fixture
def policy(redis_client: redis.Redis) -> Iterator[None]:
    yield
    redis_client.config_set("maxmemory-policy", "noeviction")


@pytest.mark.parametrize("name", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_an_allkeys_policy_is_refused_unless_allowed(
    redis_client: redis.Redis, sqlite: SqliteStore, policy: None, name: str
) -> None:
    redis_client.config_set("maxmemory-policy", name)
    foreign_job(redis_client, D, "sync", "completed")
    before = redis_dump(redis_client)
    with pytest.raises(ConfigError) as info:
        rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)
    assert name in str(info.value) and "ROTATE_STATS_ALLOW_EVICTION=1" in str(info.value)
    assert redis_dump(redis_client) == before
    report = rotate(redis_client, sqlite, RotateOptions(first=D, allow_eviction=True), now=NOW)
    assert report.error is None and any(name in n for n in report.notes)


def test_claim_keys_lose_a_writers_ttl(
    redis_client: redis.Redis, policy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under volatile-* only keys with a TTL are evicted: a claim must have none."""
    redis_client.config_set("maxmemory-policy", "volatile-lru")
    foreign_job(redis_client, D, "sync", "completed")
    for key in family.live_keys(D):
        redis_client.expire(key, 3600)  # a writer that sets TTLs on its stats keys
    (claim,), error = RedisSide(redis_client).claim([D], "run-a")
    assert error is None and claim.state == "claimed"
    for key in family.claim_keys(D) + [family.claim_id_key(D)]:
        assert redis_client.ttl(key) in (-1, -2), key  # no TTL (or no such hash)
    assert redis_client.ttl(family.claim_keys(D)[0]) == -1


def test_config_disabled_is_said_once_and_the_run_goes_on(
    tmp_path: Path, sqlite: SqliteStore
) -> None:
    server = RedisServer(redis_binary(), tmp_path, "--rename-command", "CONFIG", '""')
    try:
        client = redis.Redis(port=server.port)
        foreign_job(client, D, "sync", "completed")
        report = rotate(client, sqlite, RotateOptions(first=D), now=NOW)
        assert report.error is None
        notes = [n for n in report.notes if "maxmemory-policy" in n]
        assert len(notes) == 1 and "CONFIG is disabled" in notes[0]
        client.close()
    finally:
        server.stop()
