"""A rotation run with one injected fault, for the campaign (a subprocess).

    python -m tools.faultcampaign.rotator --fault KIND [--point P] [--nth N]

Runs ``python -m rotate_stats`` (configured by ROTATE_STATS_* variables) after
wrapping the step functions so that, on the ``nth`` time ``point`` is reached:

- ``kill``: the process SIGKILLs itself (a crash at a step boundary);
- ``stop``: the process SIGSTOPs itself (frozen past its lock; the campaign
  sends SIGCONT later);
- ``lost-response``: the commit is applied, then the run fails as if its
  response had been lost;
- ``lost-request``: the run fails just before the commit, which never happens;
- ``leader-kill`` (``--backend rqlite-real``): as the ``nth`` commit starts, the
  run finds the rqlite leader (``/status`` of each node listed in the file
  named by ``CAMPAIGN_RQLITE_NODES``) and SIGKILLs it by PID ``--delay-ms``
  later, from a thread, while the commit goes on: the commit is in flight,
  applied or not, when the leader dies.

With ``CAMPAIGN_READ_DIR`` set, the process creates ``reading-<pid>-<n>`` there as
each read of wide claim hashes (HSCAN across round trips) starts, and each of
its round trips takes 10 ms longer: the campaign restarts Redis mid-read. With
``CAMPAIGN_FENCE_DIR`` set, it creates ``fenced-<pid>-<n>`` each time a proof
and its fence were met: the campaign fails Redis over right after a fence.

With ``CAMPAIGN_WALKING_DIR`` set, the process creates ``walking-<pid>`` there when
it first reaches ``claim-before``: the campaign kills the rqlite leader only
while some run is walking, not while Python starts up.

``--lockless`` makes the run ignore the lock, as a run whose lock expired or
was deleted would: overlapping runs then race on claims, commits and releases.

Points: ``claim-before``, ``claim-after``, ``commit-after``, ``release-before``,
``release-after`` (``commit-after`` and ``release-before`` differ in what runs
between them: nothing in the library, but the report line in this driver).
The library itself has no test hooks; everything is patched here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rotate_stats import cli, redis_side
from rotate_stats.database import SqliteStore
from rotate_stats.errors import StoreError
from rotate_stats.redis_side import RedisSide
from rotate_stats.rqlite_store import RqliteStore

POINTS = ("claim-before", "claim-after", "commit-after", "release-before", "release-after")
FAULTS = ("none", "kill", "stop", "lost-response", "lost-request", "leader-kill")
WALKING_VARIABLE = "CAMPAIGN_WALKING_DIR"  # rqlite-real: where to say "my walk has begun"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", choices=FAULTS, default="none")
    parser.add_argument("--point", choices=POINTS, default="claim-after")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument(
        "--lockless", action="store_true", help="ignore the lock (as if it had expired)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs, one after the other")
    parser.add_argument("--delay-ms", type=int, default=0, help="leader-kill: delay")
    args, rest = parser.parse_known_args()
    seen: dict[str, int] = {}

    def reached(point: str) -> None:
        seen[point] = seen.get(point, 0) + 1
        if point == "claim-before" and seen[point] == 1 and os.environ.get(WALKING_VARIABLE):
            # tell the campaign this run is past start-up and into its walk
            open(os.path.join(os.environ[WALKING_VARIABLE], f"walking-{os.getpid()}"), "w").close()
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
    _mark_reads_and_fences()
    wrap(RedisSide, "cut", "claim-before", "claim-after")  # the RENAMEs of a batch
    wrap(RedisSide, "release", "release-before", "release-after")
    for store in (SqliteStore, RqliteStore):
        real_commit = store.commit

        def commit(self: Any, items: Any, at: float, _real: Any = real_commit) -> Any:
            nth = _nth_commit(seen)
            if args.fault == "lost-request" and nth == args.nth:
                raise StoreError("campaign", "request lost before the database saw it")
            if args.fault == "leader-kill" and nth == args.nth:
                _kill_leader_soon(args.delay_ms / 1000)
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


def _mark_reads_and_fences() -> None:
    """CAMPAIGN_READ_DIR / CAMPAIGN_FENCE_DIR: say when a wide read starts (and slow its
    round trips down), and when a proof's fence was met (see the module docstring)."""
    reads, fences = os.environ.get("CAMPAIGN_READ_DIR"), os.environ.get("CAMPAIGN_FENCE_DIR")
    counter = {"read": 0, "fenced": 0}
    wide = threading.local()
    if reads:
        real_read: Callable[..., Any] = RedisSide._read_hashes
        real_execute: Callable[..., Any] = redis_side._execute

        def read_hashes(self: Any, keys: Any, lengths: Any) -> Any:
            is_wide = any(n > redis_side.READ_CHUNK for group in lengths for n in group)
            if is_wide:
                counter["read"] += 1
                name = f"reading-{os.getpid()}-{counter['read']}"
                open(os.path.join(reads, name), "w").close()
            wide.on = is_wide
            try:
                return real_read(self, keys, lengths)
            finally:
                wide.on = False

        def execute(pipe: Any) -> Any:
            if getattr(wide, "on", False):
                time.sleep(0.01)
            return real_execute(pipe)

        RedisSide._read_hashes = read_hashes  # type: ignore[method-assign]
        redis_side._execute = execute
    if fences:
        real_prove: Callable[..., Any] = RedisSide.prove

        def prove(self: Any, *a: Any, **k: Any) -> Any:
            proof = real_prove(self, *a, **k)
            counter["fenced"] += 1
            open(os.path.join(fences, f"fenced-{os.getpid()}-{counter['fenced']}"), "w").close()
            return proof

        RedisSide.prove = prove  # type: ignore[method-assign]


def _nth_commit(seen: dict[str, int]) -> int:
    seen["commit-before"] = seen.get("commit-before", 0) + 1
    return seen["commit-before"]


def _kill_leader_soon(delay: float) -> None:
    """SIGKILL the rqlite leader ``delay`` seconds from now (in a thread); no leader, no kill."""
    listed = os.environ.get("CAMPAIGN_RQLITE_NODES")
    if not listed:
        return
    for node in json.loads(open(listed).read()):
        conn = http.client.HTTPConnection(node["host"], node["port"], timeout=0.5)
        try:
            conn.request("GET", "/status")
            status = json.loads(conn.getresponse().read())
        except (OSError, ValueError, http.client.HTTPException):
            continue
        finally:
            conn.close()
        store = status.get("store", {})
        if (store.get("node_id"), store.get("addr")) != (node["id"], node["raft"]):
            continue  # not the node the campaign started on that port
        if store.get("raft", {}).get("state") != "Leader":
            continue
        # not a daemon: the process waits for it before exiting
        threading.Thread(target=_kill_after, args=(int(node["pid"]), delay)).start()
        return


def _kill_after(pid: int, delay: float) -> None:
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
