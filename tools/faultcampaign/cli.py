"""Argument parsing and the summary of ``tools/campaign``."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

from rotate_stats.dates import today

from .runner import RedisServer, run_scenario
from .scenario import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/campaign", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="first scenario's seed")
    parser.add_argument("--runs", type=int, required=True, help="number of scenarios")
    parser.add_argument("--backend", choices=("sqlite", "rqlite"), required=True)
    parser.add_argument("--workdir", type=Path, help="keep scenario files here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # runs report through the oracle, not logs
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir / "redis")
    faults: Counter[str] = Counter()
    increments = lost = doubled = failed = 0
    started = time.monotonic()
    try:
        for i in range(args.runs):
            scenario = generate(args.seed + i, args.backend, today(time.time()))
            outcome = run_scenario(scenario, server, workdir)
            faults.update(scenario.faults)
            increments += outcome.increments
            lost += outcome.verdict.lost
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
            if (i + 1) % 25 == 0:
                print(f"... {i + 1} scenarios, {time.monotonic() - started:.0f}s", flush=True)
    finally:
        server.stop()
    print("faults: " + ", ".join(f"{k}={v}" for k, v in sorted(faults.items())))
    print(f"failed scenarios: {failed} ({time.monotonic() - started:.0f}s)")
    print(f"scenarios={args.runs} increments={increments} lost={lost} doubled={doubled}")
    return 1 if lost or doubled or failed else 0
