"""A Redis that wants a password: the error says what to put in the URL, masked
(issue 10, item 10). A real ``redis-server --requirepass``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, redis_binary

SECRET = "Req-Pa55-hunter2"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("auth"), "--requirepass", SECRET)
    yield server
    server.stop()


def status(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``status`` (no database: the Redis side alone) against ``redis_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env["ROTATE_STATS_REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", "status", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_no_password_given_says_where_to_put_it(guarded: RedisServer) -> None:
    result = status(f"redis://127.0.0.1:{guarded.port}/0")
    assert result.returncode == 1
    assert "requires a password and the URL gives none" in result.stderr
    assert "redis://:PASSWORD@host:port/db" in result.stderr
    assert "redis://USER:PASSWORD@" in result.stderr
    assert f"127.0.0.1:{guarded.port}" in result.stderr
    assert "HELLO must be called" not in result.stderr and "NOAUTH" not in result.stderr


@pytest.mark.parametrize("userinfo", [f":x{SECRET}", f"default:x{SECRET}", f"bob:{SECRET}"])
def test_wrong_password_is_named_and_masked(guarded: RedisServer, userinfo: str) -> None:
    result = status(f"redis://{userinfo}@127.0.0.1:{guarded.port}/0", "--format", "json")
    assert result.returncode == 1
    assert "refused the password (or user)" in result.stderr
    assert "redis://:PASSWORD@host:port/db" in result.stderr
    assert ":***@127.0.0.1" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "refused the password" in result.stdout  # the JSON error document too


def test_the_right_password_works(guarded: RedisServer, tmp_path: Path) -> None:
    result = status(f"redis://:{SECRET}@127.0.0.1:{guarded.port}/0")
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
