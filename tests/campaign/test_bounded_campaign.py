"""A bounded fault campaign on every CI run, with a seed nobody has used before.

The seed comes from the clock, so each run explores new scenarios; a failure
prints the seed and the scenario, which ``tools/campaign --seed N --runs 1``
replays. The full campaign (docs/RELIABILITY.md) runs by hand.

``rqlite-real`` runs three scenarios on real three-node rqlited clusters (the
binary of the ``rqlited_binary`` fixture, passed on as ROTATE_STATS_TEST_RQLITED);
it is skipped where there is no rqlited.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("backend", "runs"),
    [
        ("sqlite", 10),
        ("rqlite", 8),
        pytest.param("rqlite-real", 3, marks=[pytest.mark.rqlited, pytest.mark.timeout(600)]),
    ],
)
def test_bounded_campaign_loses_and_doubles_nothing(
    backend: str, runs: int, request: pytest.FixtureRequest
) -> None:
    require_binary("redis-server")
    env = dict(os.environ)
    if backend == "rqlite-real":
        env["ROTATE_STATS_TEST_RQLITED"] = request.getfixturevalue("rqlited_binary")
    seed = int(time.time() * 1000) % 10**9
    args = [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", str(seed)]
    args += ["--runs", str(runs), "--backend", backend]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=540)
    except BaseException:  # a timeout: SIGTERM lets the campaign stop every server it started
        proc.terminate()
        proc.communicate(timeout=60)
        raise
    report = f"seed {seed}:\n{stdout}\n{stderr}"
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"scenarios=(\d+) increments=(\d+) lost=(\d+) doubled=(\d+)", last)
    assert match is not None, report
    scenarios, increments, lost, doubled = map(int, match.groups())
    assert (scenarios, lost, doubled) == (runs, 0, 0), report
    assert increments > 100 * runs, report  # the writers really wrote
    assert proc.returncode == 0, report
