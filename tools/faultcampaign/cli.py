"""Argument parsing and the summary of ``tools/campaign``."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from rotate_stats.dates import today

from .cluster import rqlited_binary
from .runner import RedisServer, run_scenario
from .scenario import generate

BACKENDS = ("sqlite", "rqlite", "rqlite-real")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM: unwind through every ``finally`` (servers are stopped by PID)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/campaign", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="first scenario's seed")
    parser.add_argument("--runs", type=int, required=True, help="number of scenarios")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        required=True,
        help="sqlite: a file; rqlite: the in-process emulator; rqlite-real: a real 3-node "
        "rqlited cluster per scenario (ROTATE_STATS_TEST_RQLITED, else rqlited on PATH)",
    )
    parser.add_argument("--workdir", type=Path, help="keep scenario files here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the files of passing scenarios too (logs)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # runs report through the oracle, not logs
    rqlited = None
    if args.backend == "rqlite-real":
        rqlited, version = rqlited_binary()
        print(f"rqlited {version}: {rqlited}", flush=True)
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir / "redis")
    faults: Counter[str] = Counter()
    happened: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    increments = lost = doubled = failed = 0
    fence_off = detected = detected_increments = 0  # rollbacks with the fence off
    started = time.monotonic()
    done = 0
    try:
        for i in range(args.runs):
            scenario = generate(args.seed + i, args.backend, today(time.time()))
            outcome = run_scenario(scenario, server, workdir, rqlited, keep=args.keep)
            faults.update(scenario.faults)
            happened.update(outcome.happened)
            exits.update(outcome.exits)
            increments += outcome.increments
            lost += outcome.verdict.lost
            if scenario.expects_doubling:  # the oracle's own test: it must see it
                fence_off += 1
                detected += outcome.verdict.doubled > 0
                detected_increments += outcome.verdict.doubled
            else:
                doubled += outcome.verdict.doubled
            if outcome.failed:
                failed += 1
                print(f"FAILED {scenario.describe()}", flush=True)
                diffs = sorted(outcome.verdict.differences.items(), key=lambda kv: repr(kv[0]))
                for key, (accepted, found) in diffs[:10]:
                    print(f"  {key}: accepted {accepted}, found {found}", flush=True)
                for problem in outcome.problems:
                    print(f"  {problem}", flush=True)
                print(f"  files: {workdir / f's{scenario.seed}'}", flush=True)
            done = i + 1
            if done % 25 == 0:
                print(f"... {done} scenarios, {time.monotonic() - started:.0f}s", flush=True)
    except KeyboardInterrupt as exc:  # everything was stopped on the way out
        print(f"interrupted ({exc}) after {done} complete scenarios", flush=True)
        return 130
    finally:
        server.stop()
    print("faults: " + _tally(faults))
    if happened:
        print("as it happened: " + ", ".join(f"{k}={v}" for k, v in sorted(happened.items())))
    print("rotator exits: " + _tally(exits))
    for line in _round_three(faults):
        print(line)
    if fence_off:
        print(
            f"rollbacks with the fence off: {fence_off}, the oracle saw counts doubled in "
            f"{detected} ({detected_increments} increments; not counted below: the fence "
            "is what prevents it)"
        )
    print(f"failed scenarios: {failed} ({time.monotonic() - started:.0f}s)")
    print(f"scenarios={args.runs} increments={increments} lost={lost} doubled={doubled}")
    bad = bool(lost or doubled or failed)
    if args.workdir is None and not args.keep and not bad:
        shutil.rmtree(workdir, ignore_errors=True)  # a temp dir of our own, nothing to look at
    return 1 if bad else 0


ROUND_THREE = (
    ("moving-address", "Redis behind a moving address (failover behind one proxy)"),
    ("wide-restart", "Redis SIGKILLed and restarted mid-read of wide dates"),
    ("prune-race", "prune-ledger racing the runs"),
    ("replica-url", "a rotator pointed at a replica by mistake"),
)


def _round_three(faults: Counter[str]) -> list[str]:
    """The round-three classes: scenarios per class, and per variant."""
    lines = ["round three (scenarios per class):"]
    for prefix, title in ROUND_THREE:
        variants = {k: v for k, v in faults.items() if k.startswith(prefix)}
        detail = f" ({_tally(Counter(variants))})" if len(variants) > 1 else ""
        lines.append(f"  {prefix}: {sum(variants.values())} - {title}{detail}")
    return lines


def _tally(counts: Counter[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
