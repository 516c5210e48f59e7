"""``python -m rotate_stats`` as operators and cron run it (subprocess, real time)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import Store
from rotate_stats.dates import day_start, iso, last_stable, parse_iso, today
from rotate_stats.rqlite_store import RqliteStore
from tests.helpers import foreign_job, redis_dump, run_program
from tests.rqlite_emulator import start_emulator

Run = Callable[..., subprocess.CompletedProcess[str]]


class Database:
    """The test's database as the CLI sees it (a URL) and as the test reads it."""

    def __init__(self, url: str, store: Store) -> None:
        self.url = url
        self.store = store

    def rows(self) -> list[tuple[object, ...]]:
        """Every row exactly as stored (breakdown text included), by date."""
        sql = "SELECT * FROM journal_chat_job_stats ORDER BY retrieved_for"
        if isinstance(self.store, RqliteStore):
            return [tuple(r) for r in self.store._query(sql, (), "strong")]
        return [tuple(r) for r in self.store._query(sql)]  # type: ignore[attr-defined]

    def execute(self, sql: str, *params: object) -> None:
        self.store._transaction([(sql, params)])  # type: ignore[attr-defined]


@pytest.fixture
def database(
    backend: str,
    sqlite_path: str,
    store_factory: Callable[[], Store],
    backend_node: Any,
) -> Database:
    """Once per backend: SQLite file, the rqlite emulator or a real rqlited, over HTTP."""
    store = store_factory()
    if backend == "sqlite":
        return Database(f"sqlite:///{sqlite_path}", store)
    return Database(f"rqlite://{backend_node.host}:{backend_node.port}", store)


@pytest.fixture
def run(redis_server: object, redis_client: redis.Redis, tmp_path: Path) -> Run:
    url = redis_server.url  # type: ignore[attr-defined]

    def _run(
        *args: str, env: dict[str, str] | None = None, database: Database | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {"ROTATE_STATS_REDIS_URL": url}
        if database is not None:
            base["ROTATE_STATS_DATABASE_URL"] = database.url
        return run_program(*args, env={**base, **(env or {})})

    return _run


def _recent_dst_days(now: float) -> list[int]:
    """Dates of the 400 days before the last stable one that last 23 or 25 hours in LA."""
    end = last_stable(now)
    return [d for d in range(end - 400, end) if day_start(d + 1) - day_start(d) != 86400]


def test_migrate_rotate_and_repeat(run: Run, redis_client: redis.Redis, database: Database) -> None:
    """A walk over a year with both DST changes, repeated, repaired, checked."""
    dst = _recent_dst_days(time.time())[-2:]  # the last spring-forward and fall-back
    assert len(dst) == 2 and dst[1] - dst[0] < 250, dst
    dates = [dst[0] - 12, *dst]
    for i, d in enumerate(dates):
        for _ in range(i + 2):
            foreign_job(redis_client, d, "greeting", "completed")
        foreign_job(redis_client, d, "sync", "ftq:locked")
    unmigrated = run("rotate", database=database)
    assert unmigrated.returncode == 1 and "rotate_stats migrate" in unmigrated.stderr
    migrated = run("migrate", database=database)
    assert migrated.returncode == 0, migrated.stderr
    assert "0001_journal_chat_job_stats" in migrated.stdout
    assert run("migrate", database=database).stdout.strip() == "already up to date"

    first = run(database=database)
    assert first.returncode == 0, first.stderr
    stored = database.rows()
    now = time.time()
    assert [r[1] for r in stored] == [iso(d) for d in range(dates[0], last_stable(now) + 1)]
    by_date = {r[1]: r for r in stored}
    for i, d in enumerate(dates):
        assert by_date[iso(d)][3:5] == (i + 3, f'{{"greeting":{i + 2},"sync":1}}')
        assert by_date[iso(d)][5:7] == (1, '{"sync:locked":1}')
    assert by_date[iso(dates[1] + 1)][3:5] == (0, "{}")
    assert int(redis_client.get(family.EARLIEST_KEY)) == today(now) - 1
    keys = sorted(redis_client.scan_iter())
    ours = [family.EARLIEST_KEY, family.CLAIM_SEQUENCE_KEY, family.FENCE_KEY]  # fence: a TTL
    assert keys == sorted(k.encode() for k in ours)

    assert run(database=database).returncode == 0
    assert database.rows() == stored
    repaired = run("--date", iso(dates[1]), database=database)
    assert repaired.returncode == 0 and "1 unchanged" in repaired.stdout
    assert database.rows() == stored
    assert run("check", database=database).returncode == 0


def test_yesterday_is_refused_and_nothing_changes(
    run: Run, redis_client: redis.Redis, database: Database
) -> None:
    assert run("migrate", database=database).returncode == 0
    yesterday = today(time.time()) - 1
    foreign_job(redis_client, yesterday, "sync", "completed")
    before = redis_dump(redis_client)
    result = run("--date", iso(yesterday), database=database)
    assert result.returncode == 2
    assert "today and yesterday" in result.stderr and iso(yesterday) in result.stderr
    assert redis_dump(redis_client) == before
    assert database.rows() == []


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "2024-2-3", "2024-02-30"])
def test_malformed_date_is_a_usage_error(run: Run, bad: str) -> None:
    result = run("--date", bad)
    assert result.returncode == 2
    assert "--date" in result.stderr and bad in result.stderr


def test_database_url_is_required(run: Run) -> None:
    for command in ("rotate", "check", "migrate"):
        result = run(command)
        assert result.returncode == 2, command
        assert "ROTATE_STATS_DATABASE_URL" in result.stderr


def test_unknown_variable_is_an_error(run: Run) -> None:
    result = run("status", env={"ROTATE_STATS_BATCHSIZE": "3"})
    assert result.returncode == 2 and "ROTATE_STATS_BATCHSIZE" in result.stderr


def test_lock_held_exits_75(run: Run, redis_client: redis.Redis, database: Database) -> None:
    assert run("migrate", database=database).returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.LOCK_KEY, "cron-run-1", px=60_000)
    result = run(database=database)
    assert result.returncode == 75 and "cron-run-1" in result.stderr
    assert database.rows() == []


def test_check_names_the_violation(run: Run, database: Database) -> None:
    assert run("migrate", database=database).returncode == 0
    assert run("check", database=database).returncode == 0
    database.execute(
        f"INSERT INTO journal_chat_job_stats ({', '.join(family.COLUMNS)}) VALUES "
        f"({', '.join('?' for _ in family.COLUMNS)})",
        "2024-04-01", 0.0, 2, '{"sync":2}', 0, "{}", 2, '{"sync":2}', 2, '{"sync":2}',
        1, '{"sync":1}', 0, "{}",
    )  # fmt: skip
    text = run("check", database=database)
    assert text.returncode == 3
    assert "2024-04-01" in text.stdout and "5-completed+failed=started" in text.stdout
    assert "job_type=sync" in text.stdout and "event=started" in text.stdout
    data = json.loads(run("check", "--format", "json", database=database).stdout)
    assert data["exit_code"] == 3
    per_type = [f for f in data["findings"] if f["job_type"] == "sync"]
    assert per_type[0] == {
        "date": "2024-04-01", "invariant": "6-per-type", "event": "started", "job_type": "sync",
        "expected": 2, "actual": 1, "detail": per_type[0]["detail"],
    }  # fmt: skip
    assert run("check", "--to", "2024-03-31", database=database).returncode == 0


def test_status_reports_backlog_and_lock(
    run: Run, redis_client: redis.Redis, database: Database
) -> None:
    assert run("migrate", database=database).returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.LOCK_KEY, "someone", px=60_000)
    data = json.loads(run("status", "--format", "json", database=database).stdout)
    assert data["earliest"] == "2024-01-02" and data["lock_holder"] == "someone"
    # the stable dates with keys (issue 17, item 3), not every date since earliest
    assert data["backlog_dates"] == 1 and data["backlog"] == ["2024-01-02"]


def test_help_lists_exit_codes_and_variables(run: Run) -> None:
    out = run("--help").stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "75"):
        assert f"\n  {code}" in out
    assert "ROTATE_STATS_DATABASE_URL" in out and "check" in out


def test_demo_prints_a_summary(run: Run, tmp_path: Path) -> None:
    result = run("demo", "--days", "5", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "first run (per day):" in result.stdout
    assert "7-grammar" in result.stdout and "merged" in result.stdout


def test_status_shows_a_garbage_earliest_and_orphans(
    run: Run, redis_client: redis.Redis, database: Database
) -> None:
    assert run("migrate", database=database).returncode == 0
    foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, "soon")
    result = run("status", "--format", "json", database=database)
    assert result.returncode == 1  # issue 10 #8: a problem an alerting check must see
    data = json.loads(result.stdout)
    assert {p["check"] for p in data["problems"]} == {"earliest", "orphaned-keys"}
    assert "soon" in data["earliest_error"] and data["earliest"] is None
    assert "2024-01-02" in data["orphaned_keys"]


def test_wrong_rqlite_password_exits_1_naming_the_host_only(
    run: Run, tmp_path: Path, redis_client: redis.Redis
) -> None:
    secret = "Pa55-w0rd-n0t-for-logs"
    creds = [{"username": "rotate", "password": "right", "perms": ["all"]}]
    (tmp_path / "auth.json").write_text(json.dumps(creds))
    node = start_emulator(tmp_path / "secured", auth_file=tmp_path / "auth.json")
    try:
        url = f"rqlite://rotate:{secret}@{node.host}:{node.port}"
        foreign_job(redis_client, parse_iso("2024-01-02"), "sync", "completed")
        for args in (("migrate",), (), ("--dry-run",), ("check",), ("status",)):
            result = run(
                *args, env={"ROTATE_STATS_DATABASE_URL": url, "ROTATE_STATS_LOG_LEVEL": "DEBUG"}
            )
            assert result.returncode == 1, (args, result.stderr)
            assert f"{node.host}:{node.port}" in result.stderr and "401" in result.stderr
            assert secret not in result.stdout + result.stderr
    finally:
        node.stop()


def test_redis_password_never_printed(run: Run, tmp_path: Path) -> None:
    secret = "r3dis-Secret"
    url = f"redis://:{secret}@127.0.0.1:1/0"  # nothing listens on port 1
    result = run("status", env={"ROTATE_STATS_REDIS_URL": url})  # no database: Redis only
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr and "***" in result.stderr
    assert secret not in result.stdout + result.stderr
