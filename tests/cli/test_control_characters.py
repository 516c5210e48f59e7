"""A breakdown key (any text: Redis field names are binary-safe) holding a
terminal escape or a newline must not reach an operator's terminal or a text log
raw: no colours, no cursor moves, no forged log line (``check``, ``rotate``,
``--dry-run``, text logs). JSON output escapes them by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from rotate_stats.dates import parse_iso
from tests.conftest import RedisServer
from tests.helpers import foreign_write

KEY = "sy\x1b[2J\x1b[31mnc\nFORGED 2026-01-01 INFO rotate_stats: all fine\x01\u2028\x9b"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture
def env(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> dict[str, str]:
    day = parse_iso("2024-06-10")
    for event in ("requested", "queued", "started", "completed"):
        foreign_write(redis_client, day, event, KEY)
    foreign_write(redis_client, day, "failed_to_queue", "sync:" + KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env["ROTATE_STATS_REDIS_URL"] = redis_server.url
    env["ROTATE_STATS_DATABASE_URL"] = f"sqlite:///{tmp_path}/stats.sqlite3"
    _run(env, "migrate")
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--pending"),
        ("--dry-run",),
        ("--log-level", "DEBUG"),
        ("status",),
    ],
)
def test_no_raw_control_character_reaches_the_terminal(
    env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = _run(env, *args)
    assert result.returncode in (0, 1, 3), result.stderr
    for stream in (result.stdout, result.stderr):
        raw = [line for line in stream.splitlines() if RAW.search(line)]
        assert RAW.search(stream) is None, raw
        assert not any(line.startswith("FORGED") for line in stream.splitlines())
    if args[0] != "status":
        assert "\\x1b" in result.stdout + result.stderr  # shown, escaped, not dropped


def test_stored_rows_are_checked_with_the_key_escaped(env: dict[str, str]) -> None:
    assert _run(env).returncode == 3  # rotated, with grammar findings
    result = _run(env, "check")
    assert result.returncode == 3
    assert RAW.search(result.stdout) is None and "\\x1b" in result.stdout


def test_text_output_survives_a_non_utf8_terminal(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A key with characters the terminal's encoding lacks is shown escaped, not a
    UnicodeEncodeError traceback."""
    day = parse_iso("2024-06-10")
    for event in ("requested", "queued", "started", "completed"):
        foreign_write(redis_client, day, event, "sync✓")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env["ROTATE_STATS_REDIS_URL"] = redis_server.url
    env["ROTATE_STATS_DATABASE_URL"] = f"sqlite:///{tmp_path}/stats.sqlite3"
    env["PYTHONIOENCODING"] = "latin-1"
    _run(env, "migrate")
    for args in (("check", "--pending"), ()):
        result = _run(env, *args)
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        assert "sync\\u2713" in result.stdout
