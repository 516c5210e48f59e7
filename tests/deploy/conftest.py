"""Fixtures the wrapper tests share (test_wrapper.py, test_env_file.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.deploy.common import shared_temp_dir

STUB = """#!/bin/sh
env | grep '^ROTATE_STATS_' | grep -v '^ROTATE_STATS_COMMAND=' | sort | sed 's/^/stub env: /'
echo "stub command: ${ROTATE_STATS_COMMAND-unset}"
echo "stub args: $*"
echo "stub cwd: $(pwd)"
exit "${STUB_EXIT:-0}"
"""


@pytest.fixture
def site() -> Iterator[Path]:
    """A stub venv, an environment file, a state directory (in a directory any user
    can reach, whoever owns the checkout: tests run the wrapper as ``nobody``)."""
    require_binary("flock")
    tmp_path = shared_temp_dir("rotate-stats-wrapper-")
    (tmp_path / "venv/bin").mkdir(parents=True)
    program = tmp_path / "venv/bin/rotate-stats"
    program.write_text(STUB)
    program.chmod(0o755)
    (tmp_path / "state").mkdir()
    (tmp_path / "rotate-stats.env").write_text("ROTATE_STATS_LOG_LEVEL=INFO\n")
    (tmp_path / "rotate-stats.env").chmod(0o640)  # as installed
    yield tmp_path
    shutil.rmtree(tmp_path)
