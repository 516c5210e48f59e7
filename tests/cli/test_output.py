"""What the commands print: ISO dates, increments with ``+``, proper wording, an
aligned ``status``, and a JSON document on stdout even on error (issue 10, item 11)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.cli import COMMANDS
from rotate_stats.dates import iso, last_stable, today
from tests.cli.test_cli import Run, run
from tests.helpers import foreign_job

__all__ = ["run"]


@pytest.fixture
def env(run: Run, tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite database for the CLI."""
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/stats.sqlite3"}
    assert run("migrate", env=env).returncode == 0
    return env


def test_rotate_text_shows_dates_and_increments(
    run: Run, redis_client: redis.Redis, env: dict[str, str]
) -> None:
    d = last_stable(time.time()) - 3
    for _ in range(40):
        foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, d)
    first = run(env=env)
    assert first.returncode == 0, first.stderr
    summary = first.stdout.splitlines()
    line = next(x for x in summary if "earliest" in x)
    assert f"earliest {iso(d)} -> {iso(today(time.time()) - 1)}" in line
    assert str(d) not in first.stdout  # no raw unix date anywhere
    assert re.search(r"\(\d zero rows\)", line) and "unchanged" not in line  # no "0 unchanged"
    assert "requested=40 " in first.stdout  # an insert shows the counts as they are

    foreign_job(redis_client, d, "sync", "completed")  # a late write, merged next run
    second = run("--date", iso(d), env=env)
    assert second.returncode == 0, second.stderr
    merged = next(x for x in second.stdout.splitlines() if "merged" in x)
    assert "requested=+1 " in merged and "completed=+1" in merged
    assert "zero row" not in second.stdout  # "0 zero rows" is not printed
    assert "None" not in first.stdout + second.stdout


def test_rotate_text_says_absent_for_an_absent_earliest(run: Run, env: dict[str, str]) -> None:
    result = run(env=env)
    assert result.returncode == 0, result.stderr
    assert "earliest absent, unchanged" in result.stdout
    assert "None" not in result.stdout and "no invariant findings" in result.stdout


def test_rotate_json_earliest_fields_have_one_type(
    run: Run, redis_client: redis.Redis, env: dict[str, str]
) -> None:
    d = last_stable(time.time()) - 1
    foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, d)
    data = json.loads(run("--format", "json", env=env).stdout)
    assert data["earliest_before"] == iso(d)
    assert data["earliest_after"] == iso(today(time.time()) - 1)
    assert data["earliest_before_unix_date"] == d
    assert data["earliest_after_unix_date"] == today(time.time()) - 1
    empty = json.loads(run("--format", "json", env=env).stdout)  # nothing to do: unchanged
    assert empty["earliest_before"] == iso(today(time.time()) - 1)
    assert empty["earliest_after"] is None and empty["earliest_after_unix_date"] is None


def test_status_text_is_an_aligned_listing(
    run: Run, redis_client: redis.Redis, env: dict[str, str]
) -> None:
    d = last_stable(time.time()) - 9
    foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, d)
    redis_client.set(family.LOCK_KEY, "cron-run-7", px=60_000)
    result = run("status", env={**env, "ROTATE_STATS_ALERT_BACKLOG_DAYS": "10"})
    assert result.returncode == 0, result.stderr
    verdict, *lines = result.stdout.splitlines()
    assert verdict == "status: healthy"
    assert "{" not in result.stdout and "None" not in result.stdout
    columns = {re.match(r"[a-z ]+: +", line).end() for line in lines}  # type: ignore[union-attr]
    assert len(columns) == 1  # every value starts in the same column
    listing = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines}
    assert listing["earliest"].startswith(f"{iso(d)} (unix date {d}), held by keys the next run")
    assert listing["backlog"] == f"1 date with keys: {iso(d)}"  # dates that have keys
    assert listing["lock"].startswith("held by cron-run-7 (expires in ")
    assert listing["pending migrations"] == "none" and listing["orphaned keys"] == "none"


def _args(command: str) -> list[str]:
    return [command] + (["--before", "2024-01-01"] if command == "prune-ledger" else [])


@pytest.mark.parametrize("command", COMMANDS)
def test_json_on_stdout_for_a_usage_error_of_every_command(run: Run, command: str) -> None:
    for argv in ([*_args(command), "--format", "json", "--bogus"],
                 ["--format=json", *_args(command), "--bogus"]):  # fmt: skip
        result = run(*argv)
        assert result.returncode == 2
        data = json.loads(result.stdout)
        assert data["exit_code"] == 2 and "--bogus" in data["error"]
        assert "--bogus" in result.stderr


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "demo"])
def test_json_on_stdout_for_a_runtime_error_of_every_command(
    run: Run, command: str, tmp_path: Path
) -> None:
    env = {"ROTATE_STATS_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    if command == "migrate":  # touches no Redis: a directory that does not exist
        env["ROTATE_STATS_DATABASE_URL"] = f"sqlite:///{tmp_path}/no/such/dir/stats.sqlite3"
    elif command != "status":
        env["ROTATE_STATS_DATABASE_URL"] = f"sqlite:///{tmp_path}/stats.sqlite3"
        assert run("migrate", env=env).returncode == 0
    argv = ["check", "--pending"] if command == "check" else _args(command)  # Redis fails
    result = run(*argv, "--format", "json", env=env)
    assert result.returncode == 1, (command, result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1 and data["error"]


def test_json_on_stdout_for_a_config_error(run: Run) -> None:
    result = run("status", "--format", "json", env={"ROTATE_STATS_BATCHSIZE": "3"})
    assert result.returncode == 2
    assert "ROTATE_STATS_BATCHSIZE" in json.loads(result.stdout)["error"]


def test_status_text_lists_orphans_and_unknown_keys_briefly(
    run: Run, redis_client: redis.Redis, env: dict[str, str]
) -> None:
    d = last_stable(time.time()) - 20
    for i in range(7):  # stats keys below earliest: orphans
        foreign_job(redis_client, d + i, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, d + 10)
    redis_client.hset(f"{family.counts_key(d + 10)}:extra:cancelled", "sync", 1)  # unknown key
    result = run("status", env=env)
    listing = {x.split(":", 1)[0]: x.split(":", 1)[1].strip() for x in result.stdout.splitlines()}
    shown = ", ".join(iso(d + i) for i in range(5))
    assert listing["orphaned keys"].endswith(f"for 7 dates: {shown} and 2 more")
    assert listing["unknown keys"] == f"{family.counts_key(d + 10)}:extra:cancelled"


def test_json_on_stdout_even_for_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception still leaves a JSON document on stdout, then propagates."""
    import logging

    from rotate_stats import cli

    def broken(*_: object) -> int:
        raise RuntimeError("a bug with redis://:bug-Secret@h:1 in it")

    monkeypatch.setitem(cli.COMMAND_FUNCTIONS, "status", broken)
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        with pytest.raises(RuntimeError):
            cli.main(["status", "--format", "json"], environ={})
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and "internal error" in data["error"]
    assert "bug-Secret" not in data["error"]
