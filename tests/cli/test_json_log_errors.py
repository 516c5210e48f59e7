"""``--log-format json`` promises one JSON object per stderr line (issue 10, item 16):
the error that ends a run (a bad flag, a bad setting, Redis unreachable, a
failed rotation, another run holding the lock) is a line like the others, or a
log pipeline parsing JSON drops exactly the line that matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from tests.cli.test_cli import Run, run

__all__ = ["run"]


def _objects(stderr: str) -> list[dict[str, object]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    objects = []
    for line in lines:
        obj = json.loads(line)  # every line: one object
        assert isinstance(obj, dict)
        objects.append(obj)
    return objects


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("--log-format", "json", "--bogus"), {}, 2),
        (("--log-format=json", "status"), {"ROTATE_STATS_BATCH_SIZE": "0"}, 2),
        (("status",), {"ROTATE_STATS_LOG_FORMAT": "json", "ROTATE_STATS_BATCH_SIZE": "x"}, 2),
        (("--log-format", "json"), {"ROTATE_STATS_REDIS_URL": "redis://:pw@127.0.0.1:1/0"}, 1),
        (("--log-format", "json", "status"), {"ROTATE_STATS_REDIS_URL": "redis://127.0.0.1:1"}, 1),
    ],
)
def test_the_final_error_is_a_json_line(
    run: Run, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], code: int
) -> None:
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite3", **env}
    run("migrate", env={"ROTATE_STATS_DATABASE_URL": env["ROTATE_STATS_DATABASE_URL"]})
    result = run(*args, env=env)
    assert result.returncode == code, result.stderr
    objects = _objects(result.stderr)
    last = objects[-1]
    assert last["level"] == "ERROR" and last["exit_code"] == code
    assert "error" in str(last["message"]) or code == 2
    assert "pw@" not in result.stderr


def test_a_failed_rotation_and_a_held_lock_are_json_lines(
    run: Run, tmp_path: Path, redis_client: redis.Redis
) -> None:
    env = {
        "ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/s.sqlite3",
        "ROTATE_STATS_LOG_FORMAT": "json",
    }
    assert run("migrate", env=env).returncode == 0
    redis_client.set(family.EARLIEST_KEY, "garbage")
    failed = run(env=env)
    assert failed.returncode == 1
    assert any(o["level"] == "ERROR" for o in _objects(failed.stderr))
    redis_client.set(family.EARLIEST_KEY, 19_000)
    redis_client.set(family.LOCK_KEY, "someone-else", px=60_000)
    held = run(env=env)
    assert held.returncode == 75, held.stderr
    assert _objects(held.stderr)[-1]["exit_code"] == 75
