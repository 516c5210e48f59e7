"""Rotation throughput on a real redis-server and SQLite (or the rqlite emulator).

Run by hand (never asserted in tests):

    .venv/bin/python -m benchmarks.bench_rotate --dates 365 --reasons 40 [--backend rqlite]

Writes ``--dates`` days of counts with ``--reasons`` failure reasons per job type the
way existing writers do, rotates them once, and prints a JSON report: wall time
of the rotation, dates per second, and Redis round trips per batch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.servers import free_port
from rotate_stats import family
from rotate_stats.database import SqliteStore, Store, migrate
from rotate_stats.dates import day_start, last_stable
from rotate_stats.rqlite_store import RqliteStore
from rotate_stats.walk import RotateOptions, rotate


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def fill(client: redis.Redis, first: int, dates: int, reasons: int) -> int:
    """Consistent counts for each date (every job type, ``reasons`` failure reasons per
    type); returns the number of breakdown fields written."""
    fields = 0
    pipe = client.pipeline(transaction=False)
    for d in range(first, first + dates):
        for job_type in sorted(family.JOB_TYPES):
            jobs = 2 * reasons
            for event in ("requested", "queued", "started"):
                pipe.hincrby(family.counts_key(d), event, jobs)
                pipe.hincrby(family.extra_key(d, event), job_type, jobs)
            pipe.hincrby(family.counts_key(d), "completed", reasons)
            pipe.hincrby(family.extra_key(d, "completed"), job_type, reasons)
            for r in range(reasons):
                pipe.hincrby(family.counts_key(d), "failed", 1)
                pipe.hincrby(family.extra_key(d, "failed"), f"{job_type}:llm:error{r}", 1)
            fields += 4 + reasons
        pipe.execute()
    client.set(family.EARLIEST_KEY, first)
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dates", type=int, default=365)
    parser.add_argument("--reasons", type=int, default=40, help="failure reasons per job type")
    parser.add_argument("--batch-size", type=int, default=31)
    parser.add_argument("--backend", choices=("sqlite", "rqlite"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        node = None
        try:
            client = redis.Redis(port=port)
            now = day_start(20_000) + 12 * 3600
            first = last_stable(now) - args.dates + 1
            fields = fill(client, first, args.dates, args.reasons)
            store: Store
            if args.backend == "rqlite":
                from tests.rqlite_emulator import start_emulator

                node = start_emulator(Path(tmp) / "rqlite")
                store = RqliteStore([(node.host, node.port)])
            else:
                store = SqliteStore(str(Path(tmp) / "bench.sqlite3"))
            migrate(store)
            started = time.perf_counter()
            report = rotate(client, store, RotateOptions(batch_size=args.batch_size), now=now)
            elapsed = time.perf_counter() - started
            assert report.error is None and not report.findings, report.error
            batches = -(-args.dates // args.batch_size)
            print(json.dumps({
                "backend": args.backend,
                "dates": args.dates,
                "breakdown_fields": fields,
                "batch_size": args.batch_size,
                "seconds": round(elapsed, 3),
                "dates_per_second": round(args.dates / elapsed, 1),
                "redis_calls_per_batch": 3,  # lock refresh, claim, release
                "database_requests_per_batch": 2,  # read rows, commit
                "batches": batches,
            }, indent=2))  # fmt: skip
            store.close()
        finally:
            if node is not None:
                node.stop()
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
