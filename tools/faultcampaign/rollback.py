"""Redis rolled back under the job (issue 8, item 2): it forgets recent writes.

- ``failover``: a primary and a replica whose link runs through a proxy the
  campaign stalls; the primary is SIGKILLed after the rotators and the replica
  promoted, so every write the link held back (claims, releases) is gone.
- ``rdb-restart``: a server without AOF; writers write, ``SAVE`` takes a
  snapshot, rotators run, then the server is SIGKILLed and restarts from the
  snapshot.

With the fence on (``auto``/``replicas:1`` on the pair, ``aof`` on the RDB-only
server, which refuses to run) nothing may be lost or doubled. With it off
(``none``) the counts the rotators committed come back as live counts and are
committed again: the oracle must see that doubling, or it could not be trusted
to see any.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from rotate_stats import family
from rotate_stats.database import Store, migrate
from rotate_stats.errors import StoreError
from tests.helpers import StallableProxy, SwitchableProxy

from .oracle import Oracle, Verdict, judge
from .runner import Backend, Outcome, RedisServer, Rotators, Writers, _is_stopped, final_rotation
from .scenario import Scenario

VOLATILE = ("--save", "", "--appendonly", "no")  # SAVE is called by hand


def run_rollback(scenario: Scenario, backend: Backend, directory: Path) -> Outcome:
    """One rollback scenario, its servers stopped however it ends."""
    servers: list[RedisServer] = []
    link: StallableProxy | None = None
    store = backend.open()
    try:
        # no 5 s wait for more replicas before a diskless first sync (Redis 7's default)
        primary = RedisServer(directory / "primary", (*VOLATILE, "--repl-diskless-sync-delay", "0"))
        servers.append(primary)
        if scenario.rollback == "failover":
            link = StallableProxy(primary.port)
            replica_args = (*VOLATILE, "--replicaof", "127.0.0.1", str(link.port))
            servers.append(RedisServer(directory / "replica", replica_args))
        return _run(scenario, backend, store, servers, link, directory)
    finally:
        _stop_all([link], servers, store, backend)


def _stop_all(
    proxies: list[SwitchableProxy | None],
    servers: list[RedisServer],
    store: Store,
    backend: Backend,
) -> None:
    """Close what a scenario started, proxies first (their upstreams are going away)."""
    for proxy in proxies:
        if proxy is not None:
            proxy.close()
    for server in servers:
        server.stop()
    store.close()
    backend.close()


def _run(
    scenario: Scenario,
    backend: Backend,
    store: Store,
    servers: list[RedisServer],
    link: StallableProxy | None,
    directory: Path,
) -> Outcome:
    primary = servers[0]
    client = redis.Redis(port=primary.port)
    problems: list[str] = []
    if link is not None:
        problems += _wait_for_replica(client)
    migrate(store)
    oracle = Oracle()
    writers = Writers(scenario, primary.url, oracle)
    writers.start()
    writers.join()
    problems += writers.errors
    if link is not None:  # the replica has every write before the rotators start
        if client.wait(1, 10_000) != 1:
            problems.append("the replica did not catch up with the writers")
    else:
        client.save()
    fence = scenario.fence_setting if scenario.fence_on else "none"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        ROTATE_STATS_REDIS_URL=primary.url,
        ROTATE_STATS_DATABASE_URL=backend.url,
        ROTATE_STATS_LOCK_TTL="5",
        ROTATE_STATS_BATCH_SIZE=str(scenario.batch_size),
        ROTATE_STATS_REDIS_FENCE=fence,
        ROTATE_STATS_REDIS_FENCE_TIMEOUT="0.3",
        ROTATE_STATS_LOG_LEVEL="ERROR",
    )
    rotators = Rotators(scenario, env, directory)
    events: list[tuple[int, Callable[[], None]]] = [
        (p.start_ms, functools.partial(rotators.launch, p)) for p in scenario.rotators
    ]
    if link is not None:
        events.append((scenario.stall_after_ms, link.stall))
    events.sort(key=lambda e: e[0])
    t0 = time.monotonic()
    while events or rotators.busy():
        while events and events[0][0] <= (time.monotonic() - t0) * 1000:
            events.pop(0)[1]()
        if time.monotonic() > t0 + 60:
            problems.append("the rotators did not finish within 60 s")
            break
        time.sleep(0.01)
    rotators.kill_all()
    exits = rotators.exits()
    committed = int(store.read(f"SELECT COUNT(*) FROM {family.CLAIMS_TABLE}")[0][0])
    survivor = _roll_back(scenario, servers, client)
    before = "some claims" if committed else "nothing"
    happened = Counter({f"rollback: {before} committed before Redis forgot": 1})
    try:
        verdict = _final_verdict(
            scenario, oracle, survivor, store, problems, committed, "before Redis forgot them"
        )
    finally:
        client.close()
    return Outcome(scenario, verdict, oracle.increments, problems, exits, happened)


def _final_verdict(
    scenario: Scenario,
    oracle: Oracle,
    survivor: redis.Redis,
    store: Store,
    problems: list[str],
    committed: int,
    when: str,
) -> Verdict:
    """The final rotation on the Redis that survived and the oracle's verdict; problems
    are appended. A fence-off scenario that committed something (``committed`` claims,
    ``when``) must show the doubling: the oracle's own test. Closes ``survivor``."""
    try:
        problems += final_rotation(survivor, store)
        verdict = judge(oracle, survivor, store)
    except (StoreError, redis.RedisError) as exc:
        problems.append(f"the oracle could not read (no verdict): {type(exc).__name__}: {exc}")
        verdict = Verdict(0, 0, {}, {})
    finally:
        survivor.close()
    if verdict.refusal_mismatch:
        problems.append(f"refusals not visible as counted: {verdict.refusal_mismatch}")
    if scenario.expects_doubling and committed and not verdict.doubled:
        problems.append(
            f"{committed} claim(s) were committed {when}, yet the oracle saw nothing doubled"
        )
    return verdict


def _wait_for_replica(client: redis.Redis) -> list[str]:
    deadline = time.monotonic() + 20
    while int(client.info("replication").get("connected_slaves", 0)) < 1:
        if time.monotonic() > deadline:
            return ["the replica did not connect"]
        time.sleep(0.05)
    return []


def _roll_back(scenario: Scenario, servers: list[RedisServer], client: redis.Redis) -> redis.Redis:
    """Make Redis forget: promote the replica, or restart from the snapshot."""
    client.connection_pool.disconnect()
    if scenario.rollback == "failover":
        servers[0].stop()  # SIGKILL: no last sync to the replica
        promoted = redis.Redis(port=servers[1].port)
        promoted.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        return promoted
    servers[0].crash_and_restart()  # loads dump.rdb, taken before the rotators ran
    return redis.Redis(port=servers[0].port)


def run_moving(scenario: Scenario, backend: Backend, directory: Path) -> Outcome:
    """Redis behind a moving address (round three): the rotators reach Redis through one
    switchable proxy; while they run, the primary dies, the replica is promoted (given
    a replica of its own where the fence needs one) and the proxy is pointed at it.

    The switch comes at a moment drawn from the seed, when a rotator froze at a step
    boundary, or right after a rotator's fence was met; the replica link is stalled
    (claims not replicated; with the fence trigger, from the fence on) or not. With the
    fence on nothing may be lost or doubled; with it off, what was committed before the
    switch must show as doubled."""
    servers: list[RedisServer] = []
    link: StallableProxy | None = None
    front: SwitchableProxy | None = None
    store = backend.open()
    try:
        sync = ("--repl-diskless-sync-delay", "0")
        primary = RedisServer(directory / "primary", (*VOLATILE, *sync))
        servers.append(primary)
        link = StallableProxy(primary.port)
        replica_args = (*VOLATILE, *sync, "--replicaof", "127.0.0.1", str(link.port))
        servers.append(RedisServer(directory / "replica", replica_args))
        front = SwitchableProxy(primary.port)
        return _run_moving(scenario, backend, store, servers, link, front, directory)
    finally:
        _stop_all([front, link], servers, store, backend)


def _run_moving(
    scenario: Scenario,
    backend: Backend,
    store: Store,
    servers: list[RedisServer],
    link: StallableProxy,
    front: SwitchableProxy,
    directory: Path,
) -> Outcome:
    primary, replica = servers
    client = redis.Redis(port=primary.port)
    problems = _wait_for_replica(client)
    migrate(store)
    oracle = Oracle()
    writers = Writers(scenario, primary.url, oracle)
    writers.start()
    writers.join()
    problems += writers.errors
    if client.wait(1, 10_000) != 1:  # the replica has every write before the rotators start
        problems.append("the replica did not catch up with the writers")
    client.close()
    fence = scenario.fence_setting if scenario.fence_on else "none"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        ROTATE_STATS_REDIS_URL=f"redis://127.0.0.1:{front.port}/0",
        ROTATE_STATS_DATABASE_URL=backend.url,
        ROTATE_STATS_LOCK_TTL="1",
        ROTATE_STATS_BATCH_SIZE=str(scenario.batch_size),
        ROTATE_STATS_REDIS_FENCE=fence,
        ROTATE_STATS_REDIS_FENCE_TIMEOUT="0.3",
        ROTATE_STATS_LOG_LEVEL="WARNING",
        CAMPAIGN_FENCE_DIR=str(directory),
    )
    rotators = Rotators(scenario, env, directory)
    events: list[tuple[int, Callable[[], None]]] = [
        (p.start_ms, functools.partial(rotators.launch, p)) for p in scenario.rotators
    ]
    if scenario.link_stalled and scenario.switch_when != "fenced":
        events.append((scenario.stall_after_ms, link.stall))
    events.sort(key=lambda e: e[0])
    happened: Counter[str] = Counter()
    committed_before = -1  # ledger entries when the switch came; -1: not yet
    trigger: float | None = None  # when the step / fence trigger was seen
    promoted: redis.Redis | None = None

    def switch(how: str) -> None:
        nonlocal committed_before, promoted
        committed_before = _ledger_size(store)
        servers[0].stop()  # SIGKILL: no last sync to the replica
        promoted = redis.Redis(port=replica.port)
        promoted.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        front.retarget(replica.port)
        if scenario.fence_on:  # the fence counts a replica: give the new primary one
            args = (*VOLATILE, "--replicaof", "127.0.0.1", str(replica.port))
            servers.append(RedisServer(directory / "replica-2", args))
        happened[f"moving: switched {how}"] += 1

    t0 = time.monotonic()
    while events or rotators.busy():
        now = time.monotonic()
        while events and events[0][0] <= (now - t0) * 1000:
            events.pop(0)[1]()
        rotators.tend(1.0)
        if promoted is None:
            if scenario.switch_when == "time":
                if (now - t0) * 1000 >= scenario.switch_ms:
                    switch("at its moment")
            elif trigger is None:
                if scenario.switch_when == "fenced":
                    seen = any(directory.glob("fenced-*"))
                else:
                    seen = any(
                        _is_stopped(proc.pid)
                        for _, proc, _ in rotators.running
                        if proc.poll() is None
                    )
                if seen:
                    trigger = now
                    if scenario.link_stalled and scenario.switch_when == "fenced":
                        link.stall()  # lag from the fence on: later claims never arrive
            elif now - trigger >= scenario.switch_ms / 1000:
                switch(f"after the {scenario.switch_when} trigger")
        if now > t0 + 60:
            problems.append("the rotators did not finish within 60 s")
            break
        time.sleep(0.005)
    rotators.kill_all()
    if promoted is None:  # the trigger never came (every run ended first)
        switch("after the rotators ended (no trigger came)")
    assert promoted is not None
    exits = rotators.exits()
    notes = sum(
        p.read_text(errors="replace").count("is no longer in Redis") for p in rotators.log_paths
    )
    if notes:
        happened["moving: claims the proof found missing (not committed)"] += notes
    happened["moving: proofs met"] += len(list(directory.glob("fenced-*")))
    before = "some claims" if committed_before else "nothing"
    happened[f"moving: {before} committed before the switch"] += 1
    verdict = _final_verdict(
        scenario,
        oracle,
        promoted,
        store,
        problems,
        committed_before,
        "before the switch to a replica that never got them",
    )
    return Outcome(scenario, verdict, oracle.increments, problems, exits, happened)


def _ledger_size(store: Store) -> int:
    return int(store.read(f"SELECT COUNT(*) FROM {family.CLAIMS_TABLE}")[0][0])
