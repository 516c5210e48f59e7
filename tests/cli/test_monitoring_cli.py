"""Monitoring from the command line (issue 10 #8, #15, #19): ``--metrics-file``, the
heartbeat, ``status`` exit codes, the wrong-database failure, progress lines."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import SqliteStore, migrate
from rotate_stats.dates import day_start, last_stable, parse_iso
from rotate_stats.walk import rotate
from tests.conftest import RedisServer
from tests.helpers import foreign_job, run_program
from tests.unit.test_metrics import parse_exposition, value

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "stats.sqlite3"
    store = SqliteStore(str(path))
    migrate(store)
    store.close()
    return f"sqlite:///{path}"


@pytest.fixture
def run(redis_server: RedisServer, redis_client: redis.Redis, database: str) -> Run:
    def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {"ROTATE_STATS_REDIS_URL": redis_server.url, "ROTATE_STATS_DATABASE_URL": database}
        return run_program(*args, env={**base, **(env or {})})

    return _run


class Pings(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.seen.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[str]:
    Pings.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pings)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ping/secret-uuid"
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def test_metrics_file_and_heartbeat_of_good_and_failed_runs(
    run: Run, redis_client: redis.Redis, tmp_path: Path, ping_server: str
) -> None:
    prom = tmp_path / "rotate_stats.prom"
    env = {"ROTATE_STATS_HEARTBEAT_URL": ping_server}
    foreign_job(redis_client, 19_000, "sync", "completed")
    good = run("--metrics-file", str(prom), env=env)
    assert good.returncode == 0, good.stderr
    samples = parse_exposition(prom.read_text())[1]
    assert value(samples, "rotate_stats_last_exit_code") == 0
    success = value(samples, "rotate_stats_last_success_timestamp_seconds")
    assert value(samples, "rotate_stats_dates", state="inserted") == 1
    assert value(samples, "rotate_stats_backlog_days") == 0
    assert value(samples, "rotate_stats_pending_claims") == 0
    assert Pings.seen[-1][0] == "/ping/secret-uuid" and "exit 0" in Pings.seen[-1][1]

    redis_client.set(family.EARLIEST_KEY, "garbage")  # the next run fails (exit 1)
    bad = run(env={**env, "ROTATE_STATS_METRICS_FILE": str(prom)})
    assert bad.returncode == 1
    samples = parse_exposition(prom.read_text())[1]
    assert value(samples, "rotate_stats_last_exit_code") == 1
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == success
    assert Pings.seen[-1][0] == "/ping/secret-uuid/fail" and "exit 1" in Pings.seen[-1][1]
    assert "secret-uuid" not in bad.stderr + good.stderr
    assert sorted(os.listdir(tmp_path)) == ["rotate_stats.prom", "stats.sqlite3"]


def test_usage_error_is_in_the_metrics_too(run: Run, tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    result = run("--metrics-file", str(prom), env={"ROTATE_STATS_BATCH_SIZE": "0"})
    assert result.returncode == 2
    assert value(parse_exposition(prom.read_text())[1], "rotate_stats_last_exit_code") == 2


def test_unreachable_heartbeat_never_fails_the_run(run: Run) -> None:
    result = run(env={"ROTATE_STATS_HEARTBEAT_URL": "http://127.0.0.1:1/ping/secret-uuid"})
    assert result.returncode == 0, result.stderr
    assert "heartbeat http://127.0.0.1:1/***" in result.stderr
    assert "secret-uuid" not in result.stderr


def test_metrics_file_in_a_missing_directory(run: Run, tmp_path: Path) -> None:
    result = run("--metrics-file", str(tmp_path / "no" / "m.prom"))
    assert result.returncode == 2 and "--metrics-file" in result.stderr


def test_wrong_redis_database_fails_the_run(
    run: Run, redis_server: RedisServer, redis_client: redis.Redis, database: str
) -> None:
    store = SqliteStore(database.removeprefix("sqlite:///"))
    foreign_job(redis_client, parse_iso("2024-01-01"), "sync", "completed")
    rotate(redis_client, store, now=day_start(parse_iso("2024-01-05")))  # rows until 01-03
    store.close()
    wrong = f"redis://:not-the-password@localhost:{redis_server.port}/7"
    result = run(env={"ROTATE_STATS_REDIS_URL": wrong})
    assert result.returncode == 1
    assert "wrong Redis database, or writers stopped?" in result.stderr
    assert f"localhost:{redis_server.port}/7 (database 7)" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout


def test_status_exit_code_and_json_for_alerting(run: Run, redis_client: redis.Redis) -> None:
    assert run().returncode == 0  # nothing written yet: healthy
    healthy = run("status", "--format", "json")
    assert healthy.returncode == 0, healthy.stdout
    assert json.loads(healthy.stdout)["healthy"] is True
    redis_client.set(family.LOCK_KEY, "a-dead-run")  # no expiry: blocks every run
    stuck = run("status", "--format", "json")
    assert stuck.returncode == 1
    data = json.loads(stuck.stdout)
    assert data["healthy"] is False and [p["check"] for p in data["problems"]] == ["stale-lock"]
    text = run("status")
    assert text.returncode == 1
    assert text.stdout.startswith("status: 1 problem\n  PROBLEM stale-lock: the lock")
    (lock,) = [line for line in text.stdout.splitlines() if line.startswith("lock:")]
    assert lock.split(":", 1)[1].strip() == "held by a-dead-run (no expiry)"


def test_status_thresholds_from_the_environment(run: Run, redis_client: redis.Redis) -> None:
    import time

    for d in range(last_stable(time.time()) - 4, last_stable(time.time()) + 1):
        redis_client.hincrby(family.counts_key(d), "requested", 1)  # 5 dates with keys
    redis_client.set(family.EARLIEST_KEY, last_stable(time.time()) - 4)
    assert run("status").returncode == 1
    assert run("status", env={"ROTATE_STATS_ALERT_BACKLOG_DAYS": "5"}).returncode == 0


def test_long_backfill_logs_progress_when_not_a_tty(run: Run, redis_client: redis.Redis) -> None:
    import time

    redis_client.set(family.EARLIEST_KEY, last_stable(time.time()) - 149)
    result = run()
    assert result.returncode == 0, result.stderr
    assert "rotating: 150/150 dates (100%)" in result.stderr
