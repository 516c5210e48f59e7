"""The rqlite store against emulator clusters: failover, followers, auth, lost responses."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rotate_stats.database import migrate
from rotate_stats.errors import StoreError
from rotate_stats.migrations import load
from rotate_stats.report import DateState
from rotate_stats.rqlite_store import RqliteStore
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import foreign_job, free_port, redis_dump, tally_redis
from tests.integration.test_faults import NOW, D, assert_conserved, written_by
from tests.rqlite_emulator import EmulatorHandle, start_emulator

SECRET = "Sup3r-s3cret"


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., EmulatorHandle]]:
    started: list[EmulatorHandle] = []

    def make(name: str, **kwargs: Any) -> EmulatorHandle:
        started.append(start_emulator(tmp_path / name, **kwargs))
        return started[-1]

    yield make
    for node in reversed(started):
        node.stop()


@pytest.fixture
def cluster(make_node: Callable[..., EmulatorHandle]) -> list[EmulatorHandle]:
    """Three nodes: a leader and two followers that forward to it."""
    leader = make_node("leader")
    return [leader, make_node("f1", join=leader.url), make_node("f2", join=leader.url)]


def executes(node: EmulatorHandle) -> int:
    return sum(1 for r in node.requests if r.path == "/db/execute")


def test_follower_listed_first_writes_through_the_leader(
    redis_client: redis.Redis, cluster: list[EmulatorHandle]
) -> None:
    leader, follower, _ = cluster
    store = RqliteStore([(follower.host, follower.port), (leader.host, leader.port)])
    migrate(store)
    foreign_job(redis_client, D, "sync", "completed")
    report = rotate(redis_client, store, now=NOW)
    assert report.error is None
    assert executes(follower) > 0  # the follower was asked, and forwarded
    direct = RqliteStore([(leader.host, leader.port)])
    assert direct.rows("2024-06-10", "2024-06-10")[0].day.count("completed") == 1
    store.close()
    direct.close()


def test_first_host_down_the_run_succeeds(
    redis_client: redis.Redis, cluster: list[EmulatorHandle]
) -> None:
    dead = ("127.0.0.1", free_port())  # nothing listens there
    leader, f1, _ = cluster
    store = RqliteStore([dead, (f1.host, f1.port), (leader.host, leader.port)], timeout=2)
    migrate(store)
    foreign_job(redis_client, D, "sync", "completed")
    assert rotate(redis_client, store, now=NOW).error is None
    assert tally_redis(redis_client) == {}
    store.close()


def test_node_without_leader_is_skipped(
    redis_client: redis.Redis, cluster: list[EmulatorHandle]
) -> None:
    leader, f1, f2 = cluster
    f1.set_leader(False)  # answers 503: leader not found
    store = RqliteStore([(f1.host, f1.port), (f2.host, f2.port)])
    migrate(store)
    foreign_job(redis_client, D, "sync", "completed")
    assert rotate(redis_client, store, now=NOW).error is None
    store.close()


def test_no_host_available_is_a_store_error_and_changes_nothing(
    redis_client: redis.Redis, cluster: list[EmulatorHandle]
) -> None:
    leader, *_ = cluster
    store = RqliteStore([(leader.host, leader.port)], retry_for=0.5)
    migrate(store)
    foreign_job(redis_client, D, "sync", "completed")
    before = redis_dump(redis_client)
    leader.set_leader(False)
    with pytest.raises(StoreError, match=r"within 0.5s .*leader not found"):
        rotate(redis_client, store, now=NOW)
    assert redis_dump(redis_client) == before
    leader.set_leader(True)
    assert rotate(redis_client, store, now=NOW).error is None
    assert_conserved(redis_client, store, written_by([(D, "sync", "completed")]))
    store.close()


def test_a_leaderless_spell_is_waited_out_within_the_retry_window(
    redis_client: redis.Redis, cluster: list[EmulatorHandle], caplog: pytest.LogCaptureFixture
) -> None:
    leader, f1, f2 = cluster
    store = RqliteStore([(f1.host, f1.port), (f2.host, f2.port)], retry_for=30)
    migrate(store)
    foreign_job(redis_client, D, "sync", "completed")
    for node in cluster:
        node.set_leader(False)
    back = threading.Timer(1.5, lambda: [node.set_leader(True) for node in cluster])
    back.start()
    report = rotate(redis_client, store, now=NOW)
    back.join()
    assert report.error is None
    assert_conserved(redis_client, store, written_by([(D, "sync", "completed")]))
    waits = [r for r in caplog.records if "retrying for up to 30s" in r.getMessage()]
    assert len(waits) == 1  # one warning per wait, not one per retry
    store.close()


class _OldFollower(http.server.BaseHTTPRequestHandler):
    """An rqlite v6.2-style follower: every request is redirected to the leader."""

    leader = ""

    def _redirect(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(301)
        self.send_header("Location", self.leader + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _redirect

    def log_message(self, *args: object) -> None:
        pass


def test_301_from_an_old_follower_is_followed(
    redis_client: redis.Redis, cluster: list[EmulatorHandle]
) -> None:
    leader = cluster[0]
    handler = type("H", (_OldFollower,), {"leader": leader.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = RqliteStore([("127.0.0.1", server.server_address[1])])
        migrate(store)
        foreign_job(redis_client, D, "sync", "completed")
        assert rotate(redis_client, store, now=NOW).error is None
        assert executes(leader) > 0
        store.close()
    finally:
        server.shutdown()
        server.server_close()


def test_lost_commit_response_is_resent_and_counted_once(
    redis_client: redis.Redis, make_node: Callable[..., EmulatorHandle]
) -> None:
    node = make_node("lossy")
    store = RqliteStore([(node.host, node.port)])
    migrate(store)
    jobs = [(D, "sync", "completed")] * 3 + [(D + 1, "greeting", "completed")]
    for job in jobs:
        foreign_job(redis_client, *job)
    before = executes(node)
    node.faults.drop_responses(1)  # applied, then the connection closes unanswered
    report = rotate(redis_client, store, RotateOptions(first=D, last=D + 1), now=NOW)
    assert report.error is None
    assert executes(node) - before == 2  # the commit was sent twice...
    assert_conserved(redis_client, store, written_by(jobs))  # ...and counted once
    # this run applied the claims (its first request did): not "already-applied"
    assert [o.state for o in report.outcomes] == [DateState.INSERTED, DateState.INSERTED]
    store.close()


def test_lost_migration_response_is_resent_and_recognised_as_applied(
    make_node: Callable[..., EmulatorHandle],
) -> None:
    node = make_node("lossy-migrate")
    store = RqliteStore([(node.host, node.port)])
    node.faults.drop_responses(1)  # the first migration is applied, its answer lost
    names = [m.name for m in load()]
    assert migrate(store) == names
    assert executes(node) == len(names) + 1  # the first was sent twice
    assert store.applied_migrations() == names
    store.close()


def test_wrong_password_names_the_host_not_the_password(
    redis_client: redis.Redis, make_node: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    creds = [{"username": "rotate", "password": "right", "perms": ["all"]}]
    (tmp_path / "auth.json").write_text(json.dumps(creds))
    node = make_node("secured", auth_file=tmp_path / "auth.json")
    store = RqliteStore([(node.host, node.port)], user="rotate", password=SECRET)
    with pytest.raises(StoreError) as info:
        migrate(store)
    assert f"{node.host}:{node.port}" in str(info.value) and "401" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in store.description
    good = RqliteStore([(node.host, node.port)], user="rotate", password="right")
    assert migrate(good)
    store.close()
    good.close()
