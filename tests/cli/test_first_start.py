"""What a new operator meets at the first start (issue 17, item 4).

An unedited example environment file (``cron/rotate-stats.env.example``) used to cost a
60 s "no leader" wait (``ROTATE_STATS_DATABASE_RETRY_FOR``) on what was a DNS failure.
Now a URL still holding an example's placeholder is refused at start (exit 2, naming
the variable), and a host name that does not resolve fails at once, naming the host
(exit 1: unreachable, as a DNS outage is; nothing was done).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from rotate_stats.errors import ConfigError
from rotate_stats.settings import Settings
from tests.helpers import run_program

ROOT = Path(__file__).resolve().parents[2]


def _example_settings() -> dict[str, str]:
    """The ``ROTATE_STATS_*`` lines of the shipped example environment file."""
    text = (ROOT / "cron/rotate-stats.env.example").read_text()
    return dict(re.findall(r"^(ROTATE_STATS_[A-Z_]+)=(.*)$", text, re.M))


def _kubernetes_secret_urls() -> list[str]:
    """The URLs of the ``kubectl create secret`` command in the CronJob's header."""
    text = (ROOT / "deploy/kubernetes/cronjob.yaml").read_text()
    return re.findall(r"--from-literal=[a-z-]+='([^']+)'", text)


def test_the_unedited_example_env_file_is_refused_at_once() -> None:
    """Before: about 60 s of "rqlite cannot serve the request now (no leader...)", exit 1."""
    env = _example_settings()
    assert "ROTATE_STATS_DATABASE_URL" in env and "ROTATE_STATS_REDIS_URL" in env
    for command in ("status", "check", "migrate", "rotate"):
        started = time.monotonic()
        result = run_program(command, env=env)
        assert time.monotonic() - started < 10, command
        assert result.returncode == 2, (command, result.stderr)
        assert "placeholder CHANGE-ME" in result.stderr, result.stderr
        assert "ROTATE_STATS_" in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis://:CHANGE-ME@redis.internal:6379/0",
        "redis://:change_me@cache:6379/0",
        "redis://cache.example:6379/0",
        "rqlite://rotate:CHANGE-ME@db:4001",
        "rqlite://db1:4001,rqlite.example:4001",
        "rqlites://rotate:secret@db.example.com:4001",
        *_kubernetes_secret_urls(),
    ],
)
def test_placeholders_are_refused(url: str) -> None:
    field = "redis_url" if url.startswith("redis") else "database_url"
    with pytest.raises(ConfigError, match="placeholder|example"):
        Settings(**{field: url})  # type: ignore[arg-type]


def test_real_looking_urls_are_accepted() -> None:
    Settings(redis_url="redis://:s3cret@redis.internal:6379/0")
    Settings(database_url="rqlite://rotate:s3cret@db1.prod.example-corp.net:4001,db2:4001")
    Settings(database_url="sqlite:////var/lib/rotate-stats/stats.sqlite3")


@pytest.mark.parametrize(
    ("variable", "url", "host"),
    [
        ("ROTATE_STATS_REDIS_URL", "redis://:pw@no-such-redis.invalid:6379/0", "no-such-redis"),
        ("ROTATE_STATS_DATABASE_URL", "rqlite://u:pw@127.0.0.1:9,no-such-db.invalid:4001", "db"),
    ],
)
def test_a_host_name_that_does_not_resolve_fails_at_once_naming_it(
    variable: str, url: str, host: str
) -> None:
    """``.invalid`` never resolves (RFC 2606). Before, an rqlite URL was retried for
    ``ROTATE_STATS_DATABASE_RETRY_FOR`` (60 s) and reported as "no leader"."""
    env = {variable: url}  # status: the database part is opened first, when given
    name = f"no-such-{host}.invalid" if host == "db" else f"{host}.invalid"
    for fmt in ("text", "json"):
        started = time.monotonic()
        result = run_program("status", "--format", fmt, env=env)
        assert time.monotonic() - started < 15
        assert result.returncode == 1, result.stderr
        assert f"the host name '{name}' does not resolve" in result.stderr, result.stderr
        assert ":pw@" not in result.stderr + result.stdout  # the password is masked
