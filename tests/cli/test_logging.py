"""Log lines: ``--log-format json`` / ``ROTATE_STATS_LOG_FORMAT``, one run id per process
shared by logs, report, lock and claims; debug lines from the walk (issue 10, items 14, 16)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable
from tests.cli.test_cli import Run, run
from tests.helpers import foreign_job

__all__ = ["run"]


@pytest.fixture
def setup(run: Run, redis_client: redis.Redis, tmp_path: Path) -> tuple[dict[str, str], int]:
    """A migrated SQLite database and one date with a job, two days before the last stable."""
    path = tmp_path / "stats.sqlite3"
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"}
    assert run("migrate", env=env).returncode == 0
    d = last_stable(time.time()) - 2
    foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, d)
    return env, d


def _claim_ids(env: dict[str, str]) -> list[str]:
    conn = sqlite3.connect(env["ROTATE_STATS_DATABASE_URL"].removeprefix("sqlite:///"))
    try:
        return [r[0] for r in conn.execute(f"SELECT claim_id FROM {family.CLAIMS_TABLE}")]
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_json_logs_carry_run_id_date_state_counts(
    run: Run, setup: tuple[dict[str, str], int], how: str
) -> None:
    env, d = setup
    args = ["--format", "json"] + (["--log-format", "json"] if how == "flag" else [])
    if how == "variable":
        env = dict(env, ROTATE_STATS_LOG_FORMAT="json")
    result = run(*args, env=env)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines, "no log lines"
    for line in lines:
        assert {"time", "level", "logger", "message", "run_id"} <= set(line)
        assert line["run_id"] == run_id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    outcome = next(x for x in lines if x.get("date") == iso(d))
    assert outcome["state"] == "inserted" and outcome["level"] == "INFO"
    assert outcome["counts"]["requested"] == 1 and outcome["counts"]["completed"] == 1
    assert all(cid.startswith(run_id + ".") for cid in _claim_ids(env))  # claims name the run
    done = lines[-1]
    assert done["message"].startswith("run done: exit 0") and done["exit_code"] == 0
    assert done["states"]["inserted"] == 1 and done["findings"] == 0


def test_text_logs_carry_the_run_id(run: Run, setup: tuple[dict[str, str], int]) -> None:
    env, d = setup
    result = run("--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", run_id)
    outcome = next(x for x in result.stderr.splitlines() if iso(d) in x)
    assert f"[run {run_id}]" in outcome and "inserted requested=1" in outcome


def test_each_process_has_its_own_run_id(run: Run, setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    ids = {json.loads(run("--format", "json", env=env).stdout)["run_id"] for _ in range(2)}
    assert len(ids) == 2


def test_debug_adds_the_walks_steps(run: Run, setup: tuple[dict[str, str], int]) -> None:
    env, d = setup
    quiet = run(env=env | {"ROTATE_STATS_LOG_LEVEL": "INFO"})
    assert "DEBUG rotate_stats " not in quiet.stderr
    # from the first row (before it, dates without keys are left alone: issue 17, 5b)
    result = run("--from", iso(d), "--log-level", "DEBUG", env=env)
    assert result.returncode == 0, result.stderr
    debug = [x for x in result.stderr.splitlines() if " DEBUG rotate_stats " in x]
    assert any("batch planned" in x and iso(d) in x for x in debug), result.stderr
    assert any("claims cut" in x for x in debug)
    assert any("commit done" in x for x in debug)


def test_json_logs_are_masked(run: Run, setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    env = env | {"ROTATE_STATS_REDIS_URL": "redis://:s3cret-Log@127.0.0.1:1/0"}
    result = run("--log-format", "json", "--log-level", "DEBUG", env=env)
    assert result.returncode == 1
    assert "s3cret-Log" not in result.stdout + result.stderr
