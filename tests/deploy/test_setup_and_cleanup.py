"""Defect 13: ``scripts/setup`` installs once, not on every ``scripts/test``/``scripts/demo``;
a test run leaves no campaign temp directories behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_binary
from tests.deploy.common import ROOT

# A stand-in for python3: `-m venv DIR` makes DIR/bin/python, a copy of itself that
# records every call (one line of arguments) instead of doing anything.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >>"$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"
fi
"""


def _setup_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    fake = tmp_path / "fake-python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), CALLS=str(tmp_path / "calls"), NEED_REDIS_SERVER="0")
    return tmp_path, env


def _installs(tmp_path: Path) -> list[str]:
    calls = (tmp_path / "calls").read_text().splitlines()
    return [c for c in calls if c.startswith("-m pip install") and " -e " in f" {c} "]


def test_setup_run_twice_installs_once(tmp_path: Path) -> None:
    checkout, env = _setup_copy(tmp_path)
    for _ in range(2):
        done = subprocess.run(
            ["bash", "scripts/setup"], cwd=checkout, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert len(_installs(checkout)) == 1, (checkout / "calls").read_text()
    # ...and a changed pyproject.toml installs again (the check above can see an install).
    with (checkout / "pyproject.toml").open("a") as handle:
        handle.write("\n# changed\n")
    subprocess.run(["bash", "scripts/setup"], cwd=checkout, env=env, check=True)
    assert len(_installs(checkout)) == 2


def test_the_demo_extras_reuse_a_dev_install(tmp_path: Path) -> None:
    """scripts/test installs `dev` (every extra); scripts/demo asks for `demo` after it."""
    checkout, env = _setup_copy(tmp_path)
    subprocess.run(["bash", "scripts/setup"], cwd=checkout, env=env, check=True)
    env["ROTATE_STATS_EXTRAS"] = "demo"
    subprocess.run(["bash", "scripts/setup"], cwd=checkout, env=env, check=True)
    assert len(_installs(checkout)) == 1


def test_a_campaign_without_workdir_removes_its_temp_dir(tmp_path: Path) -> None:
    require_binary("redis-server")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    args = [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", "1", "--runs", "0"]
    done = subprocess.run(
        [*args, "--backend", "sqlite"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmpdir.iterdir()) == []


def test_the_campaign_tests_keep_their_files_in_pytests_tmp_path() -> None:
    """The suite's own campaigns write into tmp_path (removed by pytest), not /tmp."""
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text()
        if '"campaign"' in text and "tools" in text and path.name != Path(__file__).name:
            assert text.count('"--workdir"') >= text.count('"campaign")'), path


def test_the_license_is_an_spdx_string() -> None:
    """A ``license = { text = ... }`` table made setuptools print ~50 lines of deprecation
    warnings on every install."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
