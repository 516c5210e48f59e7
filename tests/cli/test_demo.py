"""``rotate_stats demo`` (issue 10 #12): any number of days from 1 to 3660, no traceback
without fakeredis, flags honoured or refused, nothing left behind but one named file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotate_stats.cli import main
from tests.conftest import IN_CI


@pytest.fixture(autouse=True)
def _keep_log_level() -> Iterator[None]:
    """``main(["demo"])`` quiets the package logger; give the next test its level back."""
    logger = logging.getLogger("rotate_stats")
    level = logger.level
    yield
    logger.setLevel(level)


def run_demo(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The demo as a subprocess with its own TMPDIR and cache directory."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    full["TMPDIR"] = str(tmp_path / "tmp")
    full["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", "demo", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = int(db.execute("SELECT COUNT(*) FROM journal_chat_job_stats").fetchone()[0])
    db.close()
    return count


@pytest.mark.parametrize("days", ["1", "2"])
def test_a_few_days_work(tmp_path: Path, days: str) -> None:
    result = run_demo(tmp_path, "--days", days)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "merged" in result.stdout and "7-grammar" in result.stdout
    assert _rows(tmp_path / "cache" / "rotate-stats" / "demo.sqlite3") == int(days)


@pytest.mark.parametrize("days", ["3661", "10000"])
def test_too_many_days_are_refused_at_once(tmp_path: Path, days: str) -> None:
    result = run_demo(tmp_path, "--days", days)
    assert result.returncode == 2
    assert "--days" in result.stderr and "3660" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything was touched


def test_runs_leave_one_named_file_and_no_temp_directory(tmp_path: Path) -> None:
    for _ in range(2):
        result = run_demo(tmp_path, "--days", "3")
        assert result.returncode == 0, result.stderr
    database = tmp_path / "cache" / "rotate-stats" / "demo.sqlite3"
    assert f"database: {database}" in result.stdout
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(database.parent) == ["demo.sqlite3"]
    assert _rows(database) == 3  # replaced, not added to


def test_long_demo_output_stays_short(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--days", "300")
    assert result.returncode == 0, result.stderr
    assert "more day(s), all in the database" in result.stdout
    assert len(result.stdout.splitlines()) < 60
    assert _rows(tmp_path / "cache" / "rotate-stats" / "demo.sqlite3") == 300


def test_format_json(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--days", "4", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["database"].endswith("demo.sqlite3")
    assert len(data["first_run"]["outcomes"]) == 4
    assert data["exit_code_of_a_real_run"] == 3
    assert any(o["state"] == "merged" for o in data["second_run"]["outcomes"])


def test_database_url_names_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "mine.sqlite3"
    result = run_demo(tmp_path, "--days", "5", "--database-url", f"sqlite:///{target}")
    assert result.returncode == 0, result.stderr
    assert _rows(target) == 5 and f"database: {target}" in result.stdout
    assert not (tmp_path / "cache").exists()
    again = run_demo(tmp_path, "--days", "5", "--database-url", f"sqlite:///{target}")
    assert again.returncode == 2 and "a new SQLite file" in again.stderr
    assert _rows(target) == 5


def test_rqlite_and_redis_urls_are_refused(tmp_path: Path) -> None:
    rq = run_demo(tmp_path, "--database-url", "rqlite://db:4001")
    assert rq.returncode == 2 and "sqlite:///" in rq.stderr
    url = "redis://:hunter2@elsewhere:6379/0"
    rd = run_demo(tmp_path, "--redis-url", url)
    assert rd.returncode == 2 and "--redis-url" in rd.stderr and "hunter2" not in rd.stderr


def test_production_variables_are_not_used(tmp_path: Path) -> None:
    """ROTATE_STATS_DATABASE_URL of the host is not where made-up data goes."""
    prod = tmp_path / "prod.sqlite3"
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{prod}"}
    result = run_demo(tmp_path, "--days", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert not prod.exists()


def test_without_fakeredis_a_private_redis_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("redis-server") is None and not IN_CI:
        pytest.skip("redis-server is not installed")
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # import fakeredis -> ImportError
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    target = tmp_path / "demo.sqlite3"
    code = main(["demo", "--days", "3", "--database-url", f"sqlite:///{target}"], environ={})
    out = capsys.readouterr().out
    assert code == 0
    assert "redis-server (fakeredis is not installed)" in out
    assert _rows(target) == 3
    assert os.listdir(tmp_path) == ["demo.sqlite3"]  # its socket directory is gone


def test_without_fakeredis_or_redis_server_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server there
    code = main(["demo", "--database-url", f"sqlite:///{tmp_path / 'd.sqlite3'}"], environ={})
    err = capsys.readouterr().err
    assert code == 1
    assert "pip install 'rotate-stats[demo]'" in err and "redis-server" in err
