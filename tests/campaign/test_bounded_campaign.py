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
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tools.faultcampaign.scenario import Scenario, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("backend", "runs"),
    [
        ("sqlite", 6),
        ("rqlite", 6),
        pytest.param("rqlite-real", 3, marks=[pytest.mark.rqlited, pytest.mark.timeout(600)]),
    ],
)
def test_bounded_campaign_loses_and_doubles_nothing(
    backend: str, runs: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    require_binary("redis-server")
    env = dict(os.environ)
    if backend == "rqlite-real":
        env["ROTATE_STATS_TEST_RQLITED"] = request.getfixturevalue("rqlited_binary")
    seed = int(time.time() * 1000) % 10**9
    replay = f"tools/campaign --seed {seed} --runs {runs} --backend {backend}"
    print(f"campaign seed {seed}; replay: {replay}")  # shown by pytest with any failure
    args = [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", str(seed)]
    args += ["--runs", str(runs), "--backend", backend, "--workdir", str(tmp_path)]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=540)
    except BaseException as exc:  # a timeout: SIGTERM lets the campaign stop every server
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        raise AssertionError(f"seed {seed} ({replay}) did not finish:\n{out}\n{err}") from exc
    report = f"seed {seed} ({replay}):\n{stdout}\n{stderr}"
    last = (stdout.strip().splitlines() or [""])[-1]
    match = re.fullmatch(r"scenarios=(\d+) increments=(\d+) lost=(\d+) doubled=(\d+)", last)
    assert match is not None, report
    scenarios, increments, lost, doubled = map(int, match.groups())
    assert (scenarios, lost, doubled) == (runs, 0, 0), report
    assert increments > 100 * runs, report  # the writers really wrote
    assert proc.returncode == 0, report


def _first_seed(want: Callable[[Scenario], bool]) -> int:
    from rotate_stats.dates import today

    return next(s for s in range(10**6) if want(generate(s, "sqlite", today(time.time()))))


@pytest.mark.parametrize("kind", ["failover", "rdb-restart"])
def test_the_oracle_sees_the_doubling_of_a_rollback_without_a_fence(
    kind: str, tmp_path: Path
) -> None:
    """Redis forgets the claims the rotators committed (fence off): the oracle must
    see every one of those counts doubled, or its 0/0 elsewhere proves nothing."""
    require_binary("redis-server")
    seed = _first_seed(lambda s: s.rollback == kind and not s.fence_on)
    args = [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", str(seed)]
    args += ["--runs", "1", "--backend", "sqlite", "--workdir", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = f"seed {seed}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "rollback: some claims committed before Redis forgot" in proc.stdout, report
    assert "rollbacks with the fence off: 1, the oracle saw counts doubled in 1 " in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].endswith("lost=0 doubled=0"), report


ROUND_THREE_KINDS = {
    # a failover behind the rotators' one address while the replica lags, fence on: the
    # run freezes after its first claim, the switch comes, and the proof on the promoted
    # replica must stop the claims it never got
    "moving-address": lambda s: (
        s.rollback == "moving"
        and s.fence_on
        and s.link_stalled
        and s.switch_when == "step"
        and len(s.rotators) == 1
        and (s.rotators[0].point, s.rotators[0].nth) == ("claim-after", 1)
    ),
    # prune-ledger racing runs killed after their commit, and a Redis restart mid-read
    # of a wide date
    "prune-race+wide": lambda s: bool(s.prunes) and bool(s.wide),
}


@pytest.mark.parametrize("kind", sorted(ROUND_THREE_KINDS))
def test_round_three_classes_lose_and_double_nothing(kind: str, tmp_path: Path) -> None:
    """One fixed scenario of round three's classes on every CI run (the first seed that
    draws it; the clock-seeded campaign above draws them at random too)."""
    require_binary("redis-server")
    seed = _first_seed(ROUND_THREE_KINDS[kind])
    args = [sys.executable, str(ROOT / "tools" / "campaign"), "--seed", str(seed)]
    args += ["--runs", "1", "--backend", "sqlite", "--workdir", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = f"seed {seed}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert proc.stdout.strip().splitlines()[-1].endswith("lost=0 doubled=0"), report
    for prefix in kind.split("+"):
        assert re.search(rf"^  {prefix}[a-z-]*: 1 ", proc.stdout, re.M), report
    if kind == "moving-address":
        assert "moving: claims the proof found missing (not committed)=" in proc.stdout, report
