"""Only ``migrate`` creates a SQLite file; ``check`` refuses nonsense ranges and gives
the migrate hint on an unmigrated database (issue 10, items 6 and 7)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rotate_stats.dates import iso, last_stable
from tests.cli.test_cli import Run, run

__all__ = ["run"]


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("--dry-run",),
        ("--date", "2024-01-02"),
        ("check",),
        ("check", "--pending"),
        ("status",),
        ("prune-ledger", "--before", "2024-01-01"),
    ],
)
def test_no_command_but_migrate_creates_a_missing_file(
    run: Run, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    path = tmp_path / "typo.sqlite3"
    result = run(*argv, env={"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 1, result.stderr
    assert str(path) in result.stderr and "migrate" in result.stderr
    assert "does not exist" in result.stderr
    assert not path.exists()


def test_migrate_creates_it_and_the_others_then_work(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "stats.sqlite3"
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"}
    assert run("migrate", env=env).returncode == 0
    assert path.exists()
    assert run("check", env=env).returncode == 0
    assert run("status", env=env).returncode == 0


def test_a_relative_path_is_relative_to_the_working_directory(run: Run, tmp_path: Path) -> None:
    # sqlite:///rel.db names ./rel.db: the message shows the absolute path it looked for
    result = run("check", env={"ROTATE_STATS_DATABASE_URL": "sqlite:///no-such-rel.sqlite3"})
    assert result.returncode == 1
    assert str(Path.cwd() / "no-such-rel.sqlite3") in result.stderr
    assert not (Path.cwd() / "no-such-rel.sqlite3").exists()


@pytest.fixture
def env(run: Run, tmp_path: Path) -> dict[str, str]:
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/stats.sqlite3"}
    assert run("migrate", env=env).returncode == 0
    return env


def test_check_refuses_from_after_to(run: Run, env: dict[str, str]) -> None:
    result = run("check", "--from", "2024-03-10", "--to", "2024-03-01", env=env)
    assert result.returncode == 2
    assert "2024-03-10" in result.stderr and "2024-03-01" in result.stderr
    assert "--from" in result.stderr and "--to" in result.stderr
    data = json.loads(
        run(
            "check", "--from", "2024-03-10", "--to", "2024-03-01", "--format", "json", env=env
        ).stdout
    )
    assert data["exit_code"] == 2


@pytest.mark.parametrize("flag", ["--from", "--to"])
def test_check_refuses_dates_after_the_last_stable_one(
    run: Run, env: dict[str, str], flag: str
) -> None:
    stable = last_stable(time.time())
    future = iso(stable + 30)
    result = run("check", flag, future, env=env)
    assert result.returncode == 2
    assert flag in result.stderr and future in result.stderr and iso(stable) in result.stderr
    assert run("check", "--to", iso(stable), env=env).returncode == 0  # the edge is fine


@pytest.mark.parametrize(
    "argv", [("check",), ("check", "--pending"), ("prune-ledger", "--before", "2024-01-01")]
)
def test_unmigrated_database_gives_the_migrate_hint(
    run: Run, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()  # exists, no tables
    result = run(*argv, env={"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 1
    assert "rotate_stats migrate" in result.stderr and "not migrated" in result.stderr
    assert "no such table" not in result.stderr


def test_status_of_an_unmigrated_database_shows_the_hint(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    result = run("status", env={"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"})
    line = next(x for x in result.stdout.splitlines() if x.startswith("pending migrations:"))
    assert "0001_journal_chat_job_stats" in line and "rotate_stats migrate" in line


def test_status_without_a_database_shows_redis_and_says_it_skipped(run: Run) -> None:
    result = run("status")
    assert result.returncode == 0, result.stderr
    assert "database:" in result.stdout and "skipped" in result.stdout
    assert "last stable date:" in result.stdout
    data = json.loads(run("status", "--format", "json").stdout)
    assert data["database"] is None and data["last_stable"] == iso(last_stable(time.time()))
