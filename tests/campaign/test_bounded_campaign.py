"""A bounded fault campaign on every CI run, with a seed nobody has used before.

The seed comes from the clock, so each run explores new scenarios; a failure
prints the seed and the scenario, which ``tools/campaign --seed N --runs 1``
replays. The full campaign (docs/RELIABILITY.md) runs by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("backend", "runs"), [("sqlite", 10), ("rqlite", 8)])
def test_bounded_campaign_loses_and_doubles_nothing(backend: str, runs: int) -> None:
    require_binary("redis-server")
    seed = int(time.time() * 1000) % 10**9
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", str(seed),
         "--runs", str(runs), "--backend", backend],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    report = f"seed {seed}:\n{result.stdout}\n{result.stderr}"
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"scenarios=(\d+) increments=(\d+) lost=(\d+) doubled=(\d+)", last)
    assert match is not None, report
    scenarios, increments, lost, doubled = map(int, match.groups())
    assert (scenarios, lost, doubled) == (runs, 0, 0), report
    assert increments > 100 * runs, report  # the writers really wrote
    assert result.returncode == 0, report
