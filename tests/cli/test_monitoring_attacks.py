"""Monitoring that could be fooled (issue 10, #8, #15): a dry run by hand must
not look like the nightly run having succeeded."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable
from tests.cli.test_monitoring_cli import Pings, Run, database, ping_server, run
from tests.conftest import RedisServer
from tests.helpers import foreign_job
from tests.unit.test_heartbeat_attacks import RawServer, garbage
from tests.unit.test_metrics import parse_exposition, value

__all__ = ["database", "ping_server", "run"]


def test_a_dry_run_neither_writes_metrics_nor_pings(
    run: Run, redis_client: redis.Redis, tmp_path: Path, ping_server: str
) -> None:
    """An operator trying ``--dry-run`` with the env file sourced would otherwise
    ping success and move ``last_success`` to now, hiding a nightly job that fails."""
    prom = tmp_path / "rotate_stats.prom"
    env = {"ROTATE_STATS_HEARTBEAT_URL": ping_server, "ROTATE_STATS_METRICS_FILE": str(prom)}
    redis_client.set(family.EARLIEST_KEY, "garbage")  # the real job fails
    assert run(env=env).returncode == 1
    failed = prom.read_text()
    assert Pings.seen[-1][0].endswith("/fail")
    redis_client.delete(family.EARLIEST_KEY)
    foreign_job(redis_client, 19_000, "sync", "completed")
    dry = run("--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert prom.read_text() == failed  # still says the last real run failed
    assert len(Pings.seen) == 1
    assert value(parse_exposition(failed)[1], "rotate_stats_last_exit_code") == 1
    dry_bad = run("--dry-run", "--metrics-file", str(tmp_path / "no" / "m.prom"), env=env)
    assert dry_bad.returncode == 2  # the settings are still checked


def test_a_heartbeat_server_speaking_garbage_never_changes_the_exit_code(
    run: Run, redis_client: redis.Redis, tmp_path: Path
) -> None:
    server = RawServer(garbage)
    try:
        url = f"http://127.0.0.1:{server.port}/ping/secret-uuid"
        foreign_job(redis_client, 19_000, "sync", "completed")
        result = run(env={"ROTATE_STATS_HEARTBEAT_URL": url})
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "heartbeat" in result.stderr
        assert "secret-uuid" not in result.stderr
    finally:
        server.close()


def test_a_run_stopped_by_sigterm_says_so_in_metrics_and_heartbeat(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    database: str,
    tmp_path: Path,
    ping_server: str,
) -> None:
    """systemd's TimeoutStartSec, a shutdown, Kubernetes' activeDeadlineSeconds: SIGTERM.
    The run must still write its metrics (exit 143) and ping /fail, not vanish
    (and as a container's PID 1, Python would otherwise ignore SIGTERM)."""
    start = last_stable(time.time()) - 3000
    foreign_job(redis_client, start, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, start)
    prom = tmp_path / "m.prom"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        ROTATE_STATS_REDIS_URL=redis_server.url,
        ROTATE_STATS_DATABASE_URL=database,
        ROTATE_STATS_BATCH_SIZE="1",
        ROTATE_STATS_HEARTBEAT_URL=ping_server,
        ROTATE_STATS_METRICS_FILE=str(prom),
    )
    with subprocess.Popen(
        [sys.executable, "-m", "rotate_stats"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # the walk has begun
            if " inserted " in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err
    samples = parse_exposition(prom.read_text())[1]
    assert value(samples, "rotate_stats_last_exit_code") == 143
    assert Pings.seen and Pings.seen[-1][0].endswith("/fail")
    assert "exit 143" in Pings.seen[-1][1]


def test_runs_stopped_by_sigterm_lose_and_double_nothing(
    redis_server: RedisServer, redis_client: redis.Redis, database: str
) -> None:
    """SIGTERM now raises inside the walk (like Ctrl-C): wherever it lands, the next
    run finishes the job with every count exactly once."""
    start = last_stable(time.time()) - 400
    for d in range(start, start + 400, 7):
        foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, start)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        ROTATE_STATS_REDIS_URL=redis_server.url,
        ROTATE_STATS_DATABASE_URL=database,
        ROTATE_STATS_BATCH_SIZE="1",
    )
    codes = []
    for lines_before_kill in (1, 3, 7, 20, 45):
        with subprocess.Popen(
            [sys.executable, "-m", "rotate_stats"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stderr is not None
            seen = 0
            for line in proc.stderr:
                seen += " inserted " in line or " zero-row " in line
                if seen >= lines_before_kill:
                    break
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
        codes.append(proc.returncode)
    assert set(codes) <= {0, 143} and 143 in codes, codes
    final = subprocess.run(
        [sys.executable, "-m", "rotate_stats"], env=env, capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    conn = sqlite3.connect(database.removeprefix("sqlite:///"))
    try:
        rows = conn.execute(
            f"SELECT COUNT(*), SUM(requested), SUM(completed) FROM {family.TABLE} "
            "WHERE retrieved_for >= ?",
            (iso(start),),
        ).fetchone()
    finally:
        conn.close()
    jobs = len(range(start, start + 400, 7))
    assert rows == (last_stable(time.time()) - start + 1, jobs, jobs)
