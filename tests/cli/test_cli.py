"""``python -m rotate_stats`` as operators and cron run it (subprocess, real time)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable, parse_iso, today
from tests.helpers import foreign_job, redis_dump

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(redis_server: object, redis_client: redis.Redis, tmp_path: Path) -> Run:
    url = redis_server.url  # type: ignore[attr-defined]
    db = tmp_path / "stats.sqlite3"

    def _run(
        *args: str, env: dict[str, str] | None = None, database: bool = True
    ) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        full["ROTATE_STATS_REDIS_URL"] = url
        if database:
            full["ROTATE_STATS_DATABASE_URL"] = f"sqlite:///{db}"
        full.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "rotate_stats", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )

    _run.db = db  # type: ignore[attr-defined]
    return _run


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT * FROM journal_chat_job_stats ORDER BY retrieved_for"
        ).fetchall()


def test_migrate_rotate_and_repeat(run: Run, redis_client: redis.Redis) -> None:
    dates = [parse_iso(d) for d in ("2024-02-27", "2024-03-10", "2024-11-03")]
    for i, d in enumerate(dates):
        for _ in range(i + 2):
            foreign_job(redis_client, d, "greeting", "completed")
        foreign_job(redis_client, d, "sync", "ftq:locked")
    assert run("rotate").returncode == 1  # unmigrated: refuses, with a hint
    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "0001_journal_chat_job_stats" in migrated.stdout
    assert run("migrate").stdout.strip() == "already up to date"

    first = run()
    assert first.returncode == 0, first.stderr
    stored = rows(run.db)  # type: ignore[attr-defined]
    now = time.time()
    assert [r[1] for r in stored] == [iso(d) for d in range(dates[0], last_stable(now) + 1)]
    by_date = {r[1]: r for r in stored}
    assert by_date["2024-03-10"][3:5] == (4, '{"greeting":3,"sync":1}')
    assert by_date["2024-03-10"][5:7] == (1, '{"sync:locked":1}')
    assert by_date["2024-03-11"][3:5] == (0, "{}")
    assert int(redis_client.get(family.EARLIEST_KEY)) == today(now) - 1
    assert sorted(redis_client.scan_iter()) == [family.EARLIEST_KEY.encode()]

    assert run().returncode == 0
    assert rows(run.db) == stored  # type: ignore[attr-defined]
    repaired = run("--date", "2024-03-10")
    assert (
        repaired.returncode == 0
        and "unchanged" in repaired.stdout.lower()
        or (rows(run.db) == stored)
    )  # type: ignore[attr-defined]
    assert rows(run.db) == stored  # type: ignore[attr-defined]


def test_yesterday_is_refused_and_nothing_changes(run: Run, redis_client: redis.Redis) -> None:
    assert run("migrate").returncode == 0
    yesterday = today(time.time()) - 1
    foreign_job(redis_client, yesterday, "sync", "completed")
    before = redis_dump(redis_client)
    result = run("--date", iso(yesterday))
    assert result.returncode == 2
    assert "today and yesterday" in result.stderr and iso(yesterday) in result.stderr
    assert redis_dump(redis_client) == before
    assert rows(run.db) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "2024-2-3", "2024-02-30"])
def test_malformed_date_is_a_usage_error(run: Run, bad: str) -> None:
    result = run("--date", bad)
    assert result.returncode == 2
    assert "--date" in result.stderr and bad in result.stderr


def test_database_url_is_required(run: Run) -> None:
    for command in ("rotate", "check", "migrate"):
        result = run(command, database=False)
        assert result.returncode == 2, command
        assert "ROTATE_STATS_DATABASE_URL" in result.stderr


def test_unknown_variable_is_an_error(run: Run) -> None:
    result = run("status", env={"ROTATE_STATS_BATCHSIZE": "3"})
    assert result.returncode == 2 and "ROTATE_STATS_BATCHSIZE" in result.stderr


def test_lock_held_exits_75(run: Run, redis_client: redis.Redis) -> None:
    assert run("migrate").returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.LOCK_KEY, "cron-run-1", px=60_000)
    result = run()
    assert result.returncode == 75 and "cron-run-1" in result.stderr
    assert rows(run.db) == []  # type: ignore[attr-defined]


def test_check_names_the_violation(run: Run) -> None:
    assert run("migrate").returncode == 0
    assert run("check").returncode == 0
    with sqlite3.connect(run.db) as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO journal_chat_job_stats (retrieved_for, retrieved_at, requested, "
            "requested_breakdown, failed_to_queue, failed_to_queue_breakdown, queued, "
            "queued_breakdown, started, started_breakdown, completed, completed_breakdown, "
            "failed, failed_breakdown) VALUES ('2024-04-01', 0, 2, '{\"sync\":2}', 0, '{}', 2, "
            "'{\"sync\":2}', 2, '{\"sync\":2}', 1, '{\"sync\":1}', 0, '{}')"
        )
    text = run("check")
    assert text.returncode == 3
    assert "2024-04-01" in text.stdout and "5-completed+failed=started" in text.stdout
    assert "job_type=sync" in text.stdout and "event=started" in text.stdout
    data = json.loads(run("check", "--format", "json").stdout)
    assert data["exit_code"] == 3
    per_type = [f for f in data["findings"] if f["job_type"] == "sync"]
    assert per_type[0] == {
        "date": "2024-04-01",
        "invariant": "6-per-type",
        "event": "started",
        "job_type": "sync",
        "expected": 2,
        "actual": 1,
        "detail": per_type[0]["detail"],
    }
    assert run("check", "--to", "2024-03-31").returncode == 0


def test_status_reports_backlog_and_lock(run: Run, redis_client: redis.Redis) -> None:
    assert run("migrate").returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.LOCK_KEY, "someone", px=60_000)
    data = json.loads(run("status", "--format", "json").stdout)
    assert data["earliest"] == "2024-01-02" and data["lock_holder"] == "someone"
    assert data["backlog_dates"] == last_stable(time.time()) - parse_iso("2024-01-02") + 1


def test_help_lists_exit_codes_and_variables(run: Run) -> None:
    out = run("--help").stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "75"):
        assert f"\n  {code}" in out
    assert "ROTATE_STATS_DATABASE_URL" in out and "check" in out


def test_demo_prints_a_summary(run: Run) -> None:
    result = run("demo", "--days", "5", database=False)
    assert result.returncode == 0, result.stderr
    assert "first run (per day):" in result.stdout
    assert "7-grammar" in result.stdout and "merged" in result.stdout


def test_status_shows_a_garbage_earliest_and_orphans(run: Run, redis_client: redis.Redis) -> None:
    assert run("migrate").returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, "soon")
    result = run("status", "--format", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert "soon" in data["earliest_error"] and data["earliest"] is None
    assert "2024-01-02" in data["orphaned_keys"]
