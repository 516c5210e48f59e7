"""The run monitor on a real redis-server: what the metrics file says after a good run,
a run with findings, a failed commit, and a run that never got going."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from rotate_stats import Recorder, family
from rotate_stats.database import Store
from rotate_stats.dates import day_start, parse_iso
from rotate_stats.errors import ConfigError
from rotate_stats.monitor import RunMonitor
from rotate_stats.report import ExitCode
from rotate_stats.walk import rotate
from tests.helpers import foreign_job, foreign_write
from tests.unit.test_metrics import parse_exposition, value

D = parse_iso("2024-06-10")
NOW = day_start(D + 5) + 12 * 3600  # last stable date D + 3


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.5
        return self.t


def _samples(path: Path) -> list[tuple[str, dict[str, str], float]]:
    return parse_exposition(path.read_text())[1]


def test_good_run(redis_client: redis.Redis, sqlite: Store, tmp_path: Path) -> None:
    path = tmp_path / "rotate_stats.prom"
    foreign_job(redis_client, D, "sync", "completed")
    foreign_job(redis_client, D + 1, "sync", "completed")
    foreign_write(redis_client, D + 1, "started", "chat")  # two findings on D + 1
    monitor = RunMonitor(str(path), None, clock=Clock(NOW))
    report = rotate(redis_client, sqlite, now=NOW)
    assert report.exit_code is ExitCode.VIOLATIONS
    monitor.observe(report, redis_client)
    monitor.finish(int(report.exit_code))
    samples = _samples(path)
    assert value(samples, "rotate_stats_last_exit_code") == 3
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == value(
        samples, "rotate_stats_last_run_timestamp_seconds"
    )
    assert value(samples, "rotate_stats_duration_seconds") == 1.5
    inserted = sum(1 for o in report.outcomes if o.state.value == "inserted")
    assert value(samples, "rotate_stats_dates", state="inserted") == inserted >= 2
    assert value(samples, "rotate_stats_dates", state="stopped") == 0
    by_invariant = {lab["invariant"]: v for n, lab, v in samples if n == "rotate_stats_findings"}
    assert sum(by_invariant.values()) == len(report.findings) > 0
    assert by_invariant["7-grammar"] >= 1 and by_invariant["1-non-negative"] == 0
    assert value(samples, "rotate_stats_backlog_days") == 0
    assert value(samples, "rotate_stats_pending_claims") == 0
    assert value(samples, "rotate_stats_refused_writes") == 0


def test_refusals_and_backlog(redis_client: redis.Redis, sqlite: Store, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, sqlite, now=NOW)
    Recorder(redis_client).record(D, "requested", "sync")  # a rotated date: refused
    redis_client.set(family.EARLIEST_KEY, D + 1)  # pretend three stable dates wait
    monitor = RunMonitor(str(path), None)
    report = rotate(redis_client, sqlite, now=NOW)
    monitor.observe(report, redis_client)
    redis_client.set(family.EARLIEST_KEY, D + 1)
    for d in (D + 1, D + 2, D + 3):  # three stable dates with keys wait
        redis_client.hincrby(family.counts_key(d), "requested", 1)
    monitor._read_redis(report, redis_client)  # as if the run had left them
    monitor.finish(0)
    samples = _samples(path)
    assert value(samples, "rotate_stats_refused_writes") == 1
    assert value(samples, "rotate_stats_backlog_days") >= 3


def test_failed_commit_leaves_pending_claims_and_keeps_last_success(
    redis_client: redis.Redis, sqlite: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.prom"
    first = RunMonitor(str(path), None, clock=Clock(1000.0))
    first.finish(0)
    foreign_job(redis_client, D, "sync", "completed")

    def fail(*_: object, **__: object) -> None:
        raise ConfigError("commit", "x", "to work")  # a RotateStatsError: ends the walk

    monitor = RunMonitor(str(path), None, clock=Clock(5000.0))
    with monkeypatch.context() as m:
        m.setattr(type(sqlite), "commit", fail)
        report = rotate(redis_client, sqlite, now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    monitor.observe(report, redis_client)
    monitor.finish(int(report.exit_code))
    samples = _samples(path)
    assert value(samples, "rotate_stats_last_exit_code") == 1
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == 1003.0
    assert value(samples, "rotate_stats_last_run_timestamp_seconds") > 5000
    assert value(samples, "rotate_stats_pending_claims") == 1


def test_run_that_never_got_going(tmp_path: Path) -> None:
    """A usage error or a held lock: no report, still a metrics file with the exit code."""
    path = tmp_path / "m.prom"
    RunMonitor(str(path), None).finish(2)
    meta, samples = parse_exposition(path.read_text())
    assert value(samples, "rotate_stats_last_exit_code") == 2
    assert "rotate_stats_backlog_days" not in meta
    assert value(samples, "rotate_stats_dates", state="inserted") == 0


def test_metrics_file_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ROTATE_STATS_METRICS_FILE"):
        RunMonitor.from_environment(
            None, {"ROTATE_STATS_METRICS_FILE": str(tmp_path / "nope" / "m.prom")}
        )
    with pytest.raises(ConfigError, match="--metrics-file"):
        RunMonitor.from_environment(str(tmp_path / "nope" / "m.prom"), {})
    assert RunMonitor.from_environment(None, {}) is None


def test_heartbeat_url_is_checked_and_masked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        RunMonitor.from_environment(None, {"ROTATE_STATS_HEARTBEAT_URL": "ftp://x/secret"})
    assert "secret" not in str(info.value)
