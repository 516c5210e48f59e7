"""No password from a Redis or rqlite URL appears in any log line, error or dry-run output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats.dates import parse_iso
from tests.conftest import RedisServer, redis_binary, require_rqlited
from tests.helpers import foreign_job
from tests.real_rqlite import RqlitedNode
from tests.rqlite_emulator import EmulatorHandle, start_emulator

REDIS_SECRET = "r3dis-Hunter2"
RQLITE_SECRET = "rql1te-Swordfish"


@pytest.fixture(params=["rqlite", pytest.param("rqlite-real", marks=pytest.mark.rqlited)])
def secured(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RedisServer, EmulatorHandle | RqlitedNode]]:
    """A redis-server with requirepass and an rqlite (emulator or real) with Basic auth."""
    binary = require_rqlited() if request.param == "rqlite-real" else ""  # skip before starting
    server = RedisServer(redis_binary(), tmp_path, "--requirepass", REDIS_SECRET)
    creds = [{"username": "rotate", "password": RQLITE_SECRET, "perms": ["all"]}]
    (tmp_path / "auth.json").write_text(json.dumps(creds))
    node: EmulatorHandle | RqlitedNode
    if request.param == "rqlite":
        node = start_emulator(tmp_path / "rqlite", auth_file=tmp_path / "auth.json")
    else:
        node = RqlitedNode(
            binary, tmp_path / "rqlited", "secured",
            auth_file=tmp_path / "auth.json", credentials=("rotate", RQLITE_SECRET),
        ).start()  # fmt: skip
        node.wait_ready()
    yield server, node
    (node.stop if isinstance(node, EmulatorHandle) else node.kill)()
    server.stop()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    full.update(env, ROTATE_STATS_LOG_LEVEL="DEBUG")
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", *args],
        env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_passwords_never_printed(secured: tuple[RedisServer, EmulatorHandle | RqlitedNode]) -> None:
    server, node = secured
    client = redis.Redis(port=server.port, password=REDIS_SECRET)
    foreign_job(client, parse_iso("2024-06-10"), "sync", "completed")
    env = {
        "ROTATE_STATS_REDIS_URL": f"redis://:{REDIS_SECRET}@127.0.0.1:{server.port}/0",
        "ROTATE_STATS_DATABASE_URL": f"rqlite://rotate:{RQLITE_SECRET}@{node.host}:{node.port}",
    }
    outputs = []
    for args in (("migrate",), ("--dry-run",), ("--dry-run", "--format", "json"), (),
                 ("status", "--format", "json"), ("check",), ("--date", "2024-06-11")):  # fmt: skip
        result = run(env, *args)
        assert result.returncode in (0, 3), (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    wrong = dict(env, ROTATE_STATS_DATABASE_URL=env["ROTATE_STATS_DATABASE_URL"] + ",nohost:1")
    for args in (("--date", "bogus"),):
        outputs.append(run(wrong, *args).stderr)
    wrong_pw = dict(env, ROTATE_STATS_REDIS_URL=f"redis://:x{REDIS_SECRET}@127.0.0.1:{server.port}")
    result = run(wrong_pw, "status")
    assert result.returncode == 1
    outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert "DEBUG" in text  # debug logging really was on
    assert REDIS_SECRET not in text and RQLITE_SECRET not in text
    assert client.dbsize() > 0


# -- a mistyped variable never echoes its password (issue 10, item 2) -------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROTATE_STATS_REDIS_ULR", "redis://:hunter2@cache.internal:6379/0"),
        ("ROTATE_STATS_DATABSE_URL", "rqlite://rotate:hunter2@db.internal:4001"),
        ("ROTATE_STATS_REDIS_PASSWORD", "hunter2"),
        ("ROTATE_STATS_REDIS_URL", "redis://:hunter2@cache.internal:70000/0"),
    ],
)
def test_a_mistyped_variable_never_prints_its_password(name: str, value: str) -> None:
    for fmt in ("text", "json"):
        result = run({name: value}, "status", "--format", fmt)
        assert result.returncode == 2
        assert name in result.stderr
        assert "hunter2" not in result.stdout + result.stderr


def test_a_typo_suggests_the_variable_meant() -> None:
    result = run({"ROTATE_STATS_REDIS_ULR": "redis://:hunter2@h:1"}, "status")
    assert "did you mean ROTATE_STATS_REDIS_URL?" in result.stderr


# -- URLs from files, the container-secret convention (issue 10, item 17) ---------------------


def test_urls_from_files_end_to_end(
    secured: tuple[RedisServer, EmulatorHandle | RqlitedNode], tmp_path: Path
) -> None:
    server, node = secured
    (tmp_path / "redis-url").write_text(f"redis://:{REDIS_SECRET}@127.0.0.1:{server.port}/0\n")
    (tmp_path / "db-url").write_text(f"rqlite://rotate:{RQLITE_SECRET}@{node.host}:{node.port}\n")
    env = {
        "ROTATE_STATS_REDIS_URL_FILE": str(tmp_path / "redis-url"),
        "ROTATE_STATS_DATABASE_URL_FILE": str(tmp_path / "db-url"),
    }
    assert run(env, "migrate").returncode == 0
    result = run(env, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pending_migrations"] == []
    assert REDIS_SECRET not in result.stdout + result.stderr
    both = run(dict(env, ROTATE_STATS_REDIS_URL="redis://127.0.0.1:1/0"), "status")
    assert both.returncode == 2
    assert "ROTATE_STATS_REDIS_URL_FILE" in both.stderr and "not both" in both.stderr


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_a_bad_secret_file_is_named_with_its_path(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "db-url"
    if problem == "empty":
        path.write_text("")
    result = run({"ROTATE_STATS_DATABASE_URL_FILE": str(path)}, "check")
    assert result.returncode == 2
    assert "ROTATE_STATS_DATABASE_URL_FILE" in result.stderr and str(path) in result.stderr
    reason = {"empty": "(the file is empty)", "missing": "(No such file or directory)"}[problem]
    assert reason in result.stderr
