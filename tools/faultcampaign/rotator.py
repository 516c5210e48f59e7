"""A rotation run with one injected fault, for the campaign (a subprocess).

    python -m tools.faultcampaign.rotator --fault KIND [--point P] [--nth N]

Runs ``python -m rotate_stats`` (configured by ROTATE_STATS_* variables) after
wrapping the step functions so that, on the ``nth`` time ``point`` is reached:

- ``kill``: the process SIGKILLs itself (a crash at a step boundary);
- ``stop``: the process SIGSTOPs itself (frozen past its lock; the campaign
  sends SIGCONT later);
- ``lost-response``: the commit is applied, then the run fails as if its
  response had been lost;
- ``lost-request``: the run fails just before the commit, which never happens.

``--lockless`` makes the run ignore the lock, as a run whose lock expired or
was deleted would: overlapping runs then race on claims, commits and releases.

Points: ``claim-before``, ``claim-after``, ``commit-after``, ``release-before``,
``release-after`` (``commit-after`` and ``release-before`` differ in what runs
between them: nothing in the library, but the report line in this driver).
The library itself has no test hooks; everything is patched here.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from rotate_stats import cli
from rotate_stats.database import SqliteStore
from rotate_stats.errors import StoreError
from rotate_stats.redis_side import RedisSide
from rotate_stats.rqlite_store import RqliteStore

POINTS = ("claim-before", "claim-after", "commit-after", "release-before", "release-after")
FAULTS = ("none", "kill", "stop", "lost-response", "lost-request")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", choices=FAULTS, default="none")
    parser.add_argument("--point", choices=POINTS, default="claim-after")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument(
        "--lockless", action="store_true", help="ignore the lock (as if it had expired)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs, one after the other")
    args, rest = parser.parse_known_args()
    seen: dict[str, int] = {}

    def reached(point: str) -> None:
        seen[point] = seen.get(point, 0) + 1
        if point != args.point or seen[point] != args.nth:
            return
        if args.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif args.fault == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)

    def wrap(owner: Any, name: str, before: str | None, after: str | None) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def wrapped(*a: Any, **k: Any) -> Any:
            if before:
                reached(before)
            result = real(*a, **k)
            if after:
                reached(after)
            return result

        setattr(owner, name, wrapped)

    if args.lockless:  # correctness must not depend on the lock: defeat it
        RedisSide.acquire_lock = lambda self, token, ttl: True  # type: ignore[method-assign]
        RedisSide.refresh_lock = lambda self, token, ttl: True  # type: ignore[method-assign]
    wrap(RedisSide, "claim", "claim-before", "claim-after")
    wrap(RedisSide, "release", "release-before", "release-after")
    for store in (SqliteStore, RqliteStore):
        real_commit = store.commit

        def commit(self: Any, items: Any, at: float, _real: Any = real_commit) -> Any:
            if args.fault == "lost-request" and _nth_commit(seen) == args.nth:
                raise StoreError("campaign", "request lost before the database saw it")
            result = _real(self, items, at)
            reached("commit-after")
            if args.fault == "lost-response" and seen["commit-after"] == args.nth:
                raise StoreError("campaign", "response lost after the database applied it")
            return result

        store.commit = commit  # type: ignore[method-assign]
    code = 0
    for _ in range(args.repeat):
        code = max(code, cli.main(["rotate", *rest]))
    return code


def _nth_commit(seen: dict[str, int]) -> int:
    seen["commit-before"] = seen.get("commit-before", 0) + 1
    return seen["commit-before"]


if __name__ == "__main__":
    sys.exit(main())
