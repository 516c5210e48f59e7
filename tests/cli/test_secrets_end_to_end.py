"""One password, every way out (issue 10, item 2): a password-protected
redis-server, the password in the URL's userinfo (percent-encoded, with reserved
characters) or in its query, DEBUG logs as text and JSON, the metrics file, the
heartbeat's bodies, JUnit, a refused password: the password and the heartbeat's
UUID appear nowhere."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats.dates import parse_iso
from tests.cli.test_monitoring_cli import Pings, ping_server
from tests.conftest import RedisServer, redis_binary
from tests.helpers import foreign_job

__all__ = ["ping_server"]

PASSWORD = "p@ss/w#rd?Zq9"
UUID = "5f0c1d2e-aaaa-bbbb-cccc-0123456789ab"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path, "--requirepass", PASSWORD)
    yield server
    server.stop()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", *args],
        env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_password_and_the_uuid_never_leave(
    secured: RedisServer, tmp_path: Path, ping_server: str
) -> None:
    client = redis.Redis(port=secured.port, password=PASSWORD)
    foreign_job(client, parse_iso("2024-06-10"), "sync", "completed")
    client.close()
    quoted = urllib.parse.quote(PASSWORD, safe="")
    heartbeat = ping_server.replace("secret-uuid", UUID)
    prom = tmp_path / "m.prom"
    urls = [
        f"redis://:{quoted}@127.0.0.1:{secured.port}/0",
        f"redis://default:{quoted}@127.0.0.1:{secured.port}/0",
        f"redis://127.0.0.1:{secured.port}/0?password={quoted}",
    ]
    seen: list[str] = []
    for n, url in enumerate(urls):
        env = {
            "ROTATE_STATS_REDIS_URL": url,
            "ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/s{n}.sqlite3",
            "ROTATE_STATS_LOG_LEVEL": "DEBUG",
            "ROTATE_STATS_HEARTBEAT_URL": heartbeat,
            "ROTATE_STATS_METRICS_FILE": str(prom),
        }
        for log_format in ("text", "json"):
            env["ROTATE_STATS_LOG_FORMAT"] = log_format
            for args in (
                ("migrate",),
                ("--dry-run",),
                (),
                ("status", "--format", "json"),
                ("check", "--pending", "--format", "junit"),
            ):
                result = _run(env, *args)
                assert result.returncode in (0, 3), (args, result.stderr)
                seen += [result.stdout, result.stderr]
            wrong = {**env, "ROTATE_STATS_REDIS_URL": url.replace(quoted, quoted + "x")}
            result = _run(wrong)
            assert result.returncode == 1
            seen += [result.stdout, result.stderr, prom.read_text()]
    assert any("DEBUG" in s for s in seen) and any('"level": "DEBUG"' in s for s in seen)
    assert any(path.endswith("/fail") for path, _ in Pings.seen)
    seen += [body for _, body in Pings.seen]  # what healthchecks shows
    seen.append(prom.read_text())
    everything = "\n".join(seen)
    for secret in (PASSWORD, quoted, UUID, "w#rd"):
        assert secret not in everything
