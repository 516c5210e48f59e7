"""A closed output ends the program quietly, as it ends any Unix filter.

Issue 17, item 5(b): ``rotate-stats check --format json | head`` printed two
tracebacks (the BrokenPipeError of the report, then another from the error document
written in its handler) and exited 1. Now, for every command and format, a reader
that went away ends the run with no traceback and no message, exit 141: what a shell
reports for a filter killed by SIGPIPE (``yes | head`` under ``set -o pipefail``).

The pipe's reading end is closed before the program starts, so every write to it
fails, whenever the program makes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer

CLOSED_OUTPUT = 141


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The writing end of a pipe whose reader has gone."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


def _run(
    args: list[str], env: dict[str, str], stdout: int, stderr: int
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", *args],
        env=full,
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def _commands(database: str) -> list[list[str]]:
    """Every command, in every format it serves, plus help, version and failures."""
    commands = [["check", "--format", fmt] for fmt in ("json", "text", "junit")]
    commands += [["--help"], ["check", "--help"], ["--version"]]
    for fmt in ("text", "json"):
        commands += [
            ["migrate", "--format", fmt],
            ["rotate", "--format", fmt],
            ["rotate", "--dry-run", "--format", fmt],
            ["status", "--format", fmt],
            ["prune-ledger", "--before", "2024-01-01", "--format", fmt],
            ["demo", "--days", "3", "--database-url", database + ".demo", "--format", fmt],
        ]
    commands += [  # failures: their document on stdout
        ["--no-such-flag", "--format", "json"],
        ["status", "--format", "json", "--redis-url", "redis://127.0.0.1:1/0"],
    ]
    return commands


@pytest.mark.parametrize("both", [False, True], ids=["stdout-closed", "stdout-and-stderr-closed"])
def test_a_closed_output_ends_every_command_quietly(
    redis_server: RedisServer, tmp_path: Path, closed_pipe: int, both: bool
) -> None:
    database = f"sqlite:///{tmp_path}/stats.sqlite3"
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": database,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    prepared = _run(["migrate"], env, subprocess.PIPE, subprocess.PIPE)
    assert prepared.returncode == 0, prepared.stderr
    for args in _commands(database):
        if args[0] == "demo":
            run_env = {k: v for k, v in env.items() if k == "XDG_CACHE_HOME"}
            Path(args[4].removeprefix("sqlite:///")).unlink(missing_ok=True)
        else:
            run_env = env
        stderr = closed_pipe if both else subprocess.PIPE
        result = _run(args, run_env, closed_pipe, stderr)
        assert result.returncode == CLOSED_OUTPUT, (args, result.stderr)
        if not both:
            assert "Traceback" not in result.stderr, (args, result.stderr)
            assert "BrokenPipeError" not in result.stderr, (args, result.stderr)
            assert "Exception ignored" not in result.stderr, (args, result.stderr)


def test_an_open_output_is_not_mistaken_for_a_closed_one(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The same commands with a reader exit as before (0)."""
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/stats.sqlite3",
    }
    for args in (["migrate", "--format", "json"], ["check", "--format", "junit"], ["--help"]):
        result = _run(args, env, subprocess.PIPE, subprocess.PIPE)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout
