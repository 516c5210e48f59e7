"""The durability fence (issue 8, item 2): Redis must not forget a claim we commit.

A real primary and a real replica whose link runs through a proxy the test can
stall; then the primary dies and the replica is promoted, as a failover does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats.database import SqliteStore
from rotate_stats.errors import ConfigError
from rotate_stats.redis_side import RedisSide
from rotate_stats.walk import RotateOptions, rotate
from tests.conftest import RedisServer, redis_binary, require_binary
from tests.helpers import StallableProxy, foreign_job, stored_tally, tally_redis
from tests.integration.test_faults import NOW, D, written_by

JOBS = [(D, "sync", "completed")] * 3 + [(D + 1, "greeting", "completed")] * 2


class Pair:
    """A primary, a replica following it through a stallable proxy."""

    def __init__(self, binary: str, directory: Path) -> None:
        # no 5 s wait for more replicas before a diskless first sync (Redis 7's default)
        self.primary = RedisServer(binary, directory / "primary", "--repl-diskless-sync-delay", "0")
        self.proxy = StallableProxy(self.primary.port)
        self.replica = RedisServer(
            binary, directory / "replica", "--replicaof", "127.0.0.1", str(self.proxy.port)
        )
        self.client = redis.Redis(port=self.primary.port)
        # Connected is not enough: WAIT counts a replica only once its first sync is
        # over (slave0 state=online) and it has acknowledged an offset.
        replica = redis.Redis(port=self.replica.port)
        deadline = time.monotonic() + 20
        while not (
            self.client.info("replication").get("slave0", {}).get("state") == "online"
            and replica.info("replication").get("master_link_status") == "up"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not finish its first sync")
            time.sleep(0.05)
        replica.close()

    def failover(self) -> redis.Redis:
        """The primary dies; the replica is promoted and becomes the Redis of record."""
        assert self.primary.process is not None
        self.primary.process.kill()  # dies: no shutdown, no last sync to the replica
        self.primary.process.wait(10)
        self.primary.process = None
        promoted = redis.Redis(port=self.replica.port)
        promoted.execute_command("REPLICAOF", "NO", "ONE")
        return promoted

    def close(self) -> None:
        self.proxy.close()
        self.replica.stop()
        self.primary.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    for name in ("primary", "replica"):
        (tmp_path / name).mkdir()
    made = Pair(redis_binary(), tmp_path)
    yield made
    made.close()


def write_and_replicate(pair: Pair) -> None:
    for job in JOBS:
        foreign_job(pair.client, *job)
    assert pair.client.wait(1, 5000) == 1  # the replica has the live keys


def test_without_a_fence_a_failover_doubles_the_counts(pair: Pair, sqlite: SqliteStore) -> None:
    """The hole, shown: what the fence exists to prevent."""
    write_and_replicate(pair)
    pair.proxy.stall()  # the claim never reaches the replica
    options = RotateOptions(first=D, last=D + 1, fence="none")
    assert rotate(pair.client, sqlite, options, now=NOW).error is None
    promoted = pair.failover()
    assert rotate(promoted, sqlite, options, now=NOW).error is None
    total = stored_tally(sqlite) + Counter(tally_redis(promoted))
    assert +total == +(written_by(JOBS) + written_by(JOBS))  # every count twice


def test_the_fence_holds_the_commit_until_the_replica_has_the_claim(
    pair: Pair, sqlite: SqliteStore
) -> None:
    write_and_replicate(pair)
    pair.proxy.stall()
    options = RotateOptions(first=D, last=D + 1, fence_timeout_ms=300)
    report = rotate(pair.client, sqlite, options, now=NOW)
    assert report.error is not None and "durability fence not met" in report.error
    assert "WAIT 1 replica(s)" in report.error and "got 0 replica(s)" in report.error
    assert report.exit_code == 1 and sqlite.rows(None, None) == []  # nothing committed
    promoted = pair.failover()  # the replica never saw the claim: its live keys are intact
    assert rotate(promoted, sqlite, options, now=NOW).error is None
    total = stored_tally(sqlite) + Counter(tally_redis(promoted))
    assert +total == +written_by(JOBS)  # once


def test_the_fence_passes_once_the_link_is_back(pair: Pair, sqlite: SqliteStore) -> None:
    write_and_replicate(pair)
    options = RotateOptions(first=D, last=D + 1, fence="replicas:1")
    report = rotate(pair.client, sqlite, options, now=NOW)
    assert report.error is None and "durability fence: WAIT 1 replica(s)" in report.notes
    assert pair.client.wait(1, 5000) == 1  # the lock's release too, before the primary dies
    promoted = pair.failover()  # the promoted replica knows the claims were released
    assert rotate(promoted, sqlite, options, now=NOW).error is None
    assert +(stored_tally(sqlite) + Counter(tally_redis(promoted))) == +written_by(JOBS)


def test_no_replica_and_no_aof_is_warned_about(
    redis_client: redis.Redis, sqlite: SqliteStore
) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    report = rotate(redis_client, sqlite, RotateOptions(first=D), now=NOW)
    assert report.error is None
    assert any("neither a replica nor AOF" in n for n in report.notes)
    status_line = RedisSide(redis_client)
    assert "WARNING" in __import__("rotate_stats").status(status_line, sqlite).durability


def test_an_aof_fence_without_aof_and_waitaof_is_refused(
    redis_client: redis.Redis, sqlite: SqliteStore
) -> None:
    """The session's server runs without AOF (and Debian's 7.0 has no WAITAOF)."""
    with pytest.raises(ConfigError, match="WAITAOF .* appendonly no"):
        rotate(redis_client, sqlite, RotateOptions(first=D, fence="aof"), now=NOW)


def test_waitaof_on_a_server_that_has_it(tmp_path: Path, sqlite: SqliteStore) -> None:
    """Valkey 8 (Debian bookworm-backports) answers WAITAOF, as Redis 7.2+ does."""
    server = RedisServer(
        require_binary("valkey-server"),
        tmp_path,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    )
    try:
        client = redis.Redis(port=server.port)
        foreign_job(client, D, "sync", "completed")
        for fence in ("auto", "aof"):
            report = rotate(client, sqlite, RotateOptions(first=D, fence=fence), now=NOW)
            assert report.error is None, report.error
            assert any("WAITAOF" in n for n in report.notes), report.notes
            foreign_job(client, D, "sync", "completed")
        assert +stored_tally(sqlite) == +written_by([(D, "sync", "completed")] * 2)
        client.close()
    finally:
        server.stop()
