"""How the suite reports real-rqlite tests it cannot run (issue 17, item 5(f)).

``scripts/test`` on a machine without ``rqlited`` printed one ``SKIPPED`` line per
test location (about 60, for 160 tests). They fold into one summary line now;
other skips keep their own ``-ra`` lines, and under ``CI=true`` a binary that must be
there still fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECTED = ["tests/integration/test_store.py", "tests/integration/test_wide.py"]


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROTATE_STATS_", "PYTEST_")) and k != "CI"
    }
    full["PATH"] = f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"  # no rqlited
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider"]
        + ["-m", "rqlited", *args, *SELECTED],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_missing_rqlited_is_one_summary_line() -> None:
    result = _pytest()
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [ln for ln in result.stdout.splitlines() if ln.startswith("SKIPPED ")]
    assert len(skipped) == 1, skipped
    assert skipped[0].startswith("SKIPPED [") and "tests/real_rqlite.py: no rqlited:" in skipped[0]
    count = int(skipped[0].removeprefix("SKIPPED [").split("]")[0])
    assert count > 10  # every real-rqlite test of those files, in one line


def test_under_ci_a_named_binary_that_is_missing_still_fails() -> None:
    result = _pytest(CI="true", ROTATE_STATS_TEST_RQLITED="/nonexistent/rqlited")
    assert result.returncode == 1, result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]
    assert "is not an executable file" in result.stdout
