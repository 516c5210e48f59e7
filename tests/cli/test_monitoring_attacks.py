"""Monitoring that could be fooled (issue 10, #8, #15): a dry run by hand must
not look like the nightly run having succeeded."""

from __future__ import annotations

from pathlib import Path

import redis

from rotate_stats import family
from tests.cli.test_monitoring_cli import Pings, Run, database, ping_server, run
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
