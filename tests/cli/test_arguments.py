"""Common flags before or after the command; ``--from`` alone; formats per command
(issue 10, items 5 and 14)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.cli import parse_args
from rotate_stats.database import SqliteStore
from rotate_stats.dates import iso, last_stable
from tests.cli.test_cli import Run, run
from tests.conftest import RedisServer
from tests.helpers import foreign_job

__all__ = ["run"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--redis-url", "redis://r:1/0", "--database-url", "sqlite:///d.db", "status"],
        ["status", "--redis-url", "redis://r:1/0", "--database-url", "sqlite:///d.db"],
        ["--redis-url=redis://r:1/0", "status", "--database-url=sqlite:///d.db"],
        ["--redis-url", "redis://r:1/0", "status", "--database-url", "sqlite:///d.db"],
    ],
)
def test_common_flags_before_or_after_the_command(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args.command == "status"
    assert args.redis_url == "redis://r:1/0" and args.database_url == "sqlite:///d.db"
    assert args.format == "text" and args.log_level is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "json", "check", "--from", "2024-01-01"],
        ["check", "--format", "json", "--from", "2024-01-01"],
        ["check", "--from", "2024-01-01", "--format=json"],
    ],
)
def test_format_anywhere_is_not_clobbered_by_the_command_default(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args.command == "check" and args.format == "json" and args.from_ is not None


def test_flag_after_the_command_wins_over_the_one_before() -> None:
    args = parse_args(["--format", "json", "status", "--format", "text"])
    assert args.format == "text"


@pytest.mark.parametrize(
    "argv",
    [
        ["--redis-url", "redis://r:1/0", "--dry-run"],
        ["--log-level", "DEBUG", "--date", "2024-01-02"],
        ["--format", "json"],
        [],
    ],
)
def test_without_a_command_it_is_rotate(argv: list[str]) -> None:
    assert parse_args(argv).command == "rotate"


def test_an_abbreviated_flag_before_the_command() -> None:
    args = parse_args(["--redis", "redis://r:1/0", "--form", "json", "status"])
    assert args.command == "status" and args.redis_url == "redis://r:1/0"
    assert args.format == "json"


def test_an_option_value_that_names_a_command_is_not_the_command() -> None:
    args = parse_args(["--database-url", "status", "check"])  # a (silly) file named status
    assert args.command == "check" and args.database_url == "status"


def test_flags_before_the_command_end_to_end(
    run: Run, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path}/stats.sqlite3"
    assert run("migrate", env={"ROTATE_STATS_DATABASE_URL": database}).returncode == 0
    redis_client.set(family.LOCK_KEY, "someone", px=60_000)
    result = run(
        "--redis-url", redis_server.url, "--database-url", database, "--format", "json", "status",
        env={"ROTATE_STATS_REDIS_URL": "redis://127.0.0.1:1/0"},  # the flag must win
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["lock_holder"] == "someone"


def test_from_alone_rotates_through_the_last_stable_date(
    run: Run, redis_client: redis.Redis, tmp_path: Path
) -> None:
    stable = last_stable(time.time())
    first, later = stable - 5, stable - 2
    for d in (first, later):
        foreign_job(redis_client, d, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, first)
    database = f"sqlite:///{tmp_path}/stats.sqlite3"
    env = {"ROTATE_STATS_DATABASE_URL": database}
    assert run("migrate", env=env).returncode == 0
    result = run("--from", iso(first), env=env)
    assert result.returncode == 0, result.stderr
    store = SqliteStore(f"{tmp_path}/stats.sqlite3")
    try:
        rows = {r.retrieved_for: r.day.count("requested") for r in store.rows(None, None)}
    finally:
        store.close()
    assert rows == {iso(d): int(d in (first, later)) for d in range(first, stable + 1)}
    assert not redis_client.exists(family.live_keys(later)[0])


@pytest.mark.parametrize("command", ["rotate", "status", "migrate", "prune-ledger", "demo"])
@pytest.mark.parametrize("where", ["after", "before"])
def test_junit_is_for_check_only(run: Run, command: str, where: str) -> None:
    """Refused where it is not served, as any unknown choice is: after the command's
    name or before it, with that command's usage (and no JUnit document on stdout)."""
    extra = ["--before", "2024-01-01"] * (command == "prune-ledger")
    flag = ["--format", "junit"]
    args = [command, *flag, *extra] if where == "after" else [*flag, command, *extra]
    result = run(*args)
    assert result.returncode == 2
    assert (
        "argument --format: invalid choice: 'junit' (choose from 'text', 'json')"
    ) in result.stderr
    assert f"usage: rotate_stats {command} " in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", ["rotate", "check", "status", "migrate", "prune-ledger", "demo"]
)
def test_each_command_offers_only_the_formats_it_serves(run: Run, command: str) -> None:
    """Issue 17, item 5(d): every command's ``--help`` (and parser) offered
    ``--format junit``, which all but ``check`` then refused."""
    result = run(command, "--help")
    assert result.returncode == 0
    usage_and_options = result.stdout.split("exit codes:")[0]
    if command == "check":
        assert "--format {text,json,junit}" in usage_and_options
    else:
        assert "--format {text,json}" in usage_and_options
        assert "junit" not in usage_and_options
    assert (
        parse_args(
            [
                command,
                "--format",
                "json",
                *(["--before", "2024-01-01"] * (command == "prune-ledger")),
            ]
        ).format
        == "json"
    )
