"""Adversarial ``ROTATE_STATS_*_URL_FILE`` contents and file kinds (issue 10, item 17):
errors name the variable and path, never the content, and nothing hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rotate_stats.errors import ConfigError
from rotate_stats.settings import Settings

SECRET = "s3cr3t-F1le"
URL = f"redis://:{SECRET}@cache:6379/1"


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL_FILE": str(path)})
    message = str(info.value)
    assert "ROTATE_STATS_REDIS_URL_FILE" in message and str(path) in message
    assert SECRET not in message and SECRET not in repr(info.value.value)
    return message


@pytest.mark.parametrize(
    "content", [f"{URL}\nredis://other:6379\n", f"{URL}\r\n{URL}\r\n", f"\n{URL}\nx"]
)
def test_two_lines_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert "one line" in _error(path)


@pytest.mark.parametrize(
    "content", [f"{URL}   \n", f"  {URL}\r\n", f"{URL}\n\n", f"{URL}\r\n\r\n", f"{URL}\t"]
)
def test_blanks_around_the_url_are_dropped(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert Settings.from_env({"ROTATE_STATS_REDIS_URL_FILE": str(path)}).redis_url == URL


def test_a_symlink_is_followed(tmp_path: Path) -> None:
    """Kubernetes mounts secrets as symlinks (..data/...): they must work."""
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "redis-url").write_text(URL + "\n")
    (tmp_path / "redis-url").symlink_to(tmp_path / "..data" / "redis-url")
    env = {"ROTATE_STATS_REDIS_URL_FILE": str(tmp_path / "redis-url")}
    assert Settings.from_env(env).redis_url == URL


def test_a_big_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes((URL + " ").encode() * (10 * 1024 * 1024 // len(URL)))
    message = _error(path)
    assert "bytes" in message and len(message) < 1000


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    """Opening a FIFO waits for a writer: the job would hang before doing anything."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    code = (
        "from rotate_stats.settings import Settings\n"
        "from rotate_stats.errors import ConfigError\n"
        "try:\n"
        f"    Settings.from_env({{'ROTATE_STATS_REDIS_URL_FILE': {str(fifo)!r}}})\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "ROTATE_STATS_REDIS_URL_FILE" in result.stdout and "regular file" in result.stdout


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfe" + SECRET.encode())
    _error(path)


def test_a_nul_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(URL.encode() + b"\x00")
    _error(path)
