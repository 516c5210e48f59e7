"""Randomized scenarios: what writers, rotators and faults do, drawn from one seed."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field, replace

from .rotator import POINTS

ROTATOR_FAULTS = ("none", "kill", "kill", "random-kill", "stop", "lost-response", "lost-request")
# A real cluster adds a rotator that kills the rqlite leader as its commit starts.
REAL_ROTATOR_FAULTS = (*ROTATOR_FAULTS, "leader-kill")


@dataclass(frozen=True)
class RotatorPlan:
    """One rotation run: when it starts (ms after the scenario starts) and its fault."""

    start_ms: int
    fault: str
    point: str
    nth: int
    kill_after_ms: int = 0  # random-kill: SIGKILL this long after the start; leader-kill: delay
    lockless: bool = False  # ignores the lock, as if it had expired
    repeat: int = 1  # runs one after the other in the same process
    retry_for: int | None = None  # ROTATE_STATS_DATABASE_RETRY_FOR, None: the default (60)
    strict: bool = False  # --strict: a date with findings is given back, not committed

    def describe(self) -> str:
        who = f"{'lockless ' if self.lockless else ''}{'strict ' if self.strict else ''}"
        who += f"rotator@{self.start_ms}ms"
        who += f" x{self.repeat}" if self.repeat > 1 else ""
        who += f" RETRY_FOR={self.retry_for}" if self.retry_for is not None else ""
        if self.fault == "none":
            return f"{who} clean"
        if self.fault == "random-kill":
            return f"{who} SIGKILL after {self.kill_after_ms}ms"
        if self.fault == "leader-kill":
            return f"{who} SIGKILLs the leader {self.kill_after_ms}ms into commit #{self.nth}"
        return f"{who} {self.fault} at {self.point} #{self.nth}"


@dataclass(frozen=True)
class Scenario:
    """Everything one scenario does; ``describe`` is what a failure report prints."""

    seed: int
    backend: str
    dates: tuple[int, ...]
    recorder_writers: int
    foreign_writers: int
    ops_per_writer: int
    write_seconds: float
    rotators: tuple[RotatorPlan, ...]
    batch_size: int
    redis_restart_ms: int | None = None
    db_outage: tuple[int, int] | None = None  # (start ms, length ms)
    delete_earliest_ms: int | None = None
    drop_response_ms: int | None = None  # rqlite: a commit applied, its response lost
    faults: tuple[str, ...] = field(default=())
    # rqlite-real only (see cluster.py): db_outage is then a loss of quorum
    host_order: tuple[int, ...] = (0, 1, 2)  # nodes in the rotators' URL
    outage_spares: str = "leader"  # quorum loss: the node left running
    leader_kill: tuple[int, int] | None = None  # (at ms, restart after ms)
    node_restart: tuple[int, str, int] | None = None  # (at ms, "leader"|"follower", after ms)
    restart_delay_ms: int = 1000  # a node killed by a rotator restarts this much later
    # round two (issue 8): see _with_round_two
    planted: tuple[int, ...] = ()  # dates given a count without its breakdown (a finding)
    lifecycles: bool = False  # writers write whole jobs (dates without findings exist)
    rotator_drop: float = 0.0  # chance that a reply to a rotator is lost (redis-py resends)
    recorder_drop: float = 0.0  # chance that a recorder's "counted" reply is lost
    foreign_table: str | None = None  # "extra-not-null" | "no-unique": a table not seed 000's
    foreign_when: str = "before-migrate"  # or "after-migrate": swapped in behind migrate
    rollback: str | None = None  # "failover" | "rdb-restart": Redis forgets recent writes
    fence_on: bool = True  # rollback: ROTATE_STATS_REDIS_FENCE on, or none
    fence_setting: str = "auto"  # rollback, fence on: the setting the rotators use
    stall_after_ms: int = 0  # failover: the replica link stalls this long after rotators start
    # round three: see _with_round_three
    switch_when: str = "time"  # moving: "time" | "step" (a rotator frozen at a boundary) | "fenced"
    switch_ms: int = 0  # moving: when ("time"), or how long after the trigger
    link_stalled: bool = False  # moving: the replica link stalls at stall_after_ms (lag)
    wide: tuple[int, ...] = ()  # dates given a wide breakdown (read with HSCAN)
    wide_keys: int = 0  # distinct breakdown keys per wide date
    wide_restarts: tuple[int, ...] = ()  # Redis SIGKILL+restart this long after a wide read starts
    aof_fsync: str = "always"  # wide: "everysec" runs on valkey-server with a WAITAOF fence
    wide_fence: str = "auto"  # wide, everysec: the rotators' fence (auto or aof)
    prunes: tuple[tuple[int, str], ...] = ()  # (ms, "cli" | "library"): prune-ledger runs
    prune_before: int = 0  # prune-ledger --before (a unix date)
    replica_url_ms: int | None = None  # a rotator pointed at a replica by mistake, at this ms

    @property
    def expects_doubling(self) -> bool:
        """A rollback with the fence off: the oracle must see the counts doubled."""
        return self.rollback is not None and not self.fence_on

    def describe(self) -> str:
        parts = [
            f"seed={self.seed} backend={self.backend}",
            f"dates={self.dates[0]}..{self.dates[-1]}",
            f"writers: {self.recorder_writers} recorder + {self.foreign_writers} foreign "
            f"x {self.ops_per_writer} ops over {self.write_seconds:.1f}s",
            f"batch size {self.batch_size}",
            *(r.describe() for r in self.rotators),
        ]
        if self.redis_restart_ms is not None:
            parts.append(f"redis SIGKILL+restart@{self.redis_restart_ms}ms")
        if self.backend == "rqlite-real":
            parts.append(f"URL lists nodes n{', n'.join(str(i + 1) for i in self.host_order)}")
        if self.db_outage is not None and self.backend == "rqlite-real":
            parts.append(
                f"quorum lost@{self.db_outage[0]}ms for {self.db_outage[1]}ms "
                f"(2 nodes SIGSTOPped, the {self.outage_spares} left running)"
            )
        elif self.db_outage is not None:
            parts.append(f"database unreachable@{self.db_outage[0]}ms for {self.db_outage[1]}ms")
        if self.leader_kill is not None:
            at, after = self.leader_kill
            parts.append(f"leader SIGKILL@{at}ms (during a rotation), restarted {after}ms later")
        if self.node_restart is not None:
            at, role, after = self.node_restart
            parts.append(f"{role} SIGKILL@{at}ms, restarted {after}ms later")
        if self.delete_earliest_ms is not None:
            parts.append(f"earliest deleted@{self.delete_earliest_ms}ms")
        if self.drop_response_ms is not None:
            parts.append(f"commit response dropped@{self.drop_response_ms}ms")
        if self.lifecycles:
            parts.append("writers write whole jobs")
        if self.planted:
            parts.append(f"violations planted on {', '.join(map(str, self.planted))}")
        if self.rotator_drop:
            parts.append(f"{self.rotator_drop:.0%} of rotator replies lost (client resends)")
        if self.recorder_drop:
            parts.append(f"{self.recorder_drop:.0%} of recorder replies lost")
        if self.foreign_table is not None:
            parts.append(f"foreign table ({self.foreign_table}) {self.foreign_when}")
        if self.rollback == "failover":
            parts.append(
                f"replica link stalled {self.stall_after_ms}ms after the rotators start, then "
                f"the primary dies and the replica is promoted; fence "
                f"{self.fence_setting if self.fence_on else 'none'}"
            )
        elif self.rollback == "moving":
            sync = (
                f"replica link stalled {self.stall_after_ms}ms after the rotators start"
                if self.link_stalled and self.switch_when != "fenced"
                else "replica link stalled when a fence was met"
                if self.link_stalled
                else "replica in sync"
            )
            when = {
                "time": f"{self.switch_ms}ms after the rotators start",
                "step": f"{self.switch_ms}ms after a rotator froze at its step boundary",
                "fenced": f"{self.switch_ms}ms after a rotator's fence was met",
            }[self.switch_when]
            parts.append(
                f"rotators reach Redis through one switchable address; {sync}; the primary "
                f"dies and the replica is promoted and switched to {when}; fence "
                f"{self.fence_setting if self.fence_on else 'none'}"
            )
        elif self.rollback == "rdb-restart":
            parts.append(
                "Redis SIGKILLed after the rotators and restarted from its RDB snapshot; "
                f"fence {self.fence_setting if self.fence_on else 'none'}"
            )
        if self.wide:
            server = "valkey-server" if self.aof_fsync == "everysec" else "redis-server"
            fence = f", fence {self.wide_fence}" if self.aof_fsync == "everysec" else ""
            parts.append(
                f"wide dates {', '.join(map(str, self.wide))} ({self.wide_keys} keys); {server} "
                f"appendfsync {self.aof_fsync}{fence}; SIGKILL+restart "
                f"{', '.join(f'{ms}ms' for ms in self.wide_restarts)} into wide reads"
            )
        if self.prunes:
            runs = ", ".join(f"{how}@{ms}ms" for ms, how in self.prunes)
            parts.append(f"prune-ledger --before {self.prune_before} (min age 0): {runs}")
        if self.replica_url_ms is not None:
            parts.append(f"a rotator pointed at a replica by mistake@{self.replica_url_ms}ms")
        return "; ".join(parts)


def generate(seed: int, backend: str, today: int) -> Scenario:
    """A scenario over a few stable dates well before ``today`` (a unix date)."""
    rng = random.Random(seed)
    first = today - rng.randint(8, 30)
    dates = tuple(range(first, first + rng.randint(2, 6)))
    real = backend == "rqlite-real"
    rotators = []
    for _ in range(rng.randint(1, 4)):
        fault = rng.choice(REAL_ROTATOR_FAULTS if real else ROTATOR_FAULTS)
        rotators.append(
            RotatorPlan(
                start_ms=rng.randint(0, 700),
                fault=fault,
                point=rng.choice(POINTS),
                nth=rng.randint(1, 3),
                kill_after_ms=_delay_ms(fault, rng),
                lockless=rng.random() < 0.25,
            )
        )
    ops, write_seconds = rng.randint(20, 90), rng.uniform(0.3, 2.5)
    if rng.random() < 0.4:  # an adversarial interleaving around a frozen or killed run
        pattern = _PATTERNS[rng.randrange(len(_PATTERNS))]
        rotators = list(pattern(rng))
        if pattern in (_pickup_under_load, _lockless_crowd):  # writers flat out
            ops, write_seconds = rng.randint(1500, 3000), 0.0
    faults = [_fault_name(r) for r in rotators]
    faults += ["lockless"] * sum(r.lockless for r in rotators)
    restart = rng.randint(100, 900) if rng.random() < 0.2 else None
    outage = (rng.randint(0, 800), rng.randint(200, 1200)) if rng.random() < 0.2 else None
    delete = rng.randint(0, 900) if rng.random() < 0.2 else None
    drop = rng.randint(0, 900) if backend != "sqlite" and rng.random() < 0.3 else None
    outage_name = "quorum-loss" if real else "db-outage"
    faults += ["redis-restart"] * (restart is not None) + [outage_name] * (outage is not None)
    faults += ["earliest-deleted"] * (delete is not None) + ["drop-response"] * (drop is not None)
    scenario = Scenario(
        seed=seed,
        backend=backend,
        dates=dates,
        recorder_writers=rng.randint(0, 2),
        foreign_writers=rng.randint(1, 2),
        ops_per_writer=ops,
        write_seconds=write_seconds,
        rotators=tuple(rotators),
        batch_size=rng.randint(1, 4),
        redis_restart_ms=restart,
        db_outage=outage,
        delete_earliest_ms=delete,
        drop_response_ms=drop,
        faults=tuple(faults),
    )
    if real:
        scenario = _with_cluster_faults(scenario, rng)
    return _with_round_three(_with_round_two(scenario, rng), rng)


def _with_round_two(scenario: Scenario, rng: random.Random) -> Scenario:
    """Issue 8's classes, drawn after everything else (older seeds keep their draws).

    Strict rotators with planted violations; lost replies with client resends, to
    rotators and to recorders; a foreign table; Redis rolled back (a failover
    with a stalled replica link, a restart from an RDB snapshot), with the
    fence on (nothing may double) or off (the oracle must see the doubling).
    """
    faults = list(scenario.faults)
    rotators = [replace(r, strict=rng.random() < 0.3) for r in scenario.rotators]
    faults += ["strict"] * sum(r.strict for r in rotators)
    planted: tuple[int, ...] = ()
    if rng.random() < 0.35:
        planted = tuple(sorted(rng.sample(scenario.dates, min(2, len(scenario.dates)))))
        faults.append("planted-violations")
    lifecycles = rng.random() < (0.6 if any(r.strict for r in rotators) else 0.2)
    ops = scenario.ops_per_writer
    if lifecycles and scenario.write_seconds == 0.0:  # flat out: a job is 2-4 writes
        ops = max(1, ops // 4)
    rotator_drop = rng.choice((0.02, 0.05, 0.1)) if rng.random() < 0.3 else 0.0
    recorder_drop = rng.choice((0.05, 0.2)) if rng.random() < 0.3 else 0.0
    faults += ["rotator-replies-lost"] * (rotator_drop > 0)
    faults += ["recorder-replies-lost"] * (recorder_drop > 0)
    scenario = replace(
        scenario,
        rotators=tuple(rotators),
        planted=planted,
        lifecycles=lifecycles,
        ops_per_writer=ops,
        rotator_drop=rotator_drop,
        recorder_drop=recorder_drop,
        faults=tuple(faults),
    )
    draw = rng.random()
    if draw < 0.08:
        kind = rng.choice(("extra-not-null", "no-unique"))
        when = rng.choice(("before-migrate", "after-migrate"))
        return replace(
            scenario,
            foreign_table=kind,
            foreign_when=when,
            faults=(*scenario.faults, f"foreign-table-{kind}-{when}"),
        )
    if draw < 0.22 and scenario.backend != "rqlite-real":
        return _rollback(scenario, rng)
    return scenario


def _rollback(scenario: Scenario, rng: random.Random) -> Scenario:
    """A rollback scenario: its own Redis servers, clean rotators, no other Redis faults."""
    kind = rng.choice(("failover", "rdb-restart"))
    fence_on = rng.random() < 0.6
    if kind == "failover":
        setting = rng.choice(("auto", "replicas:1"))
        stall = rng.randint(0, 400) if fence_on else 0  # fence off: stalled from the start
    else:
        setting, stall = "aof", 0  # an RDB-only server cannot honour it: runs refuse
    rotators = tuple(
        RotatorPlan(rng.randint(0, 300), "none", "claim-after", 1, strict=rng.random() < 0.3)
        for _ in range(rng.randint(1, 2))
    )
    name = f"rollback-{kind}-fence-{'on' if fence_on else 'off'}"
    return replace(
        scenario,
        rotators=rotators,
        redis_restart_ms=None,
        db_outage=None,
        delete_earliest_ms=None,
        drop_response_ms=None,
        rotator_drop=0.0,
        recorder_drop=0.0,
        rollback=kind,
        fence_on=fence_on,
        fence_setting=setting,
        stall_after_ms=stall,
        faults=(
            *(f for f in scenario.faults if f == "planted-violations"),
            *["strict"] * sum(r.strict for r in rotators),
            name,
        ),
    )


def _with_round_three(scenario: Scenario, rng: random.Random) -> Scenario:
    """Round three's classes, drawn after everything else (older seeds keep their draws).

    Redis behind a moving address (a failover behind one switchable proxy, at any
    moment); restarts mid-read of wide dates; prune-ledger racing runs; a rotator
    pointed at a replica by mistake. Not drawn for round two's rollback and
    foreign-table scenarios (their own servers, their own repair).
    """
    draw = rng.random()
    if scenario.rollback is not None or scenario.foreign_table is not None:
        return scenario
    if draw < 0.12 and scenario.backend != "rqlite-real":
        return _moving(scenario, rng)
    faults = list(scenario.faults)
    rotators = list(scenario.rotators)
    if rng.random() < 0.18:
        wide = tuple(
            sorted(rng.sample(scenario.dates, rng.randint(1, min(2, len(scenario.dates)))))
        )
        keys = rng.randint(1500, 4000)
        restarts = tuple(rng.randint(0, 60) for _ in range(rng.randint(1, 3)))
        fsync = "everysec" if rng.random() < 0.4 else "always"
        fence = rng.choice(("auto", "aof"))
        if fsync == "everysec" and shutil.which("valkey-server") is None:
            fsync = "always"  # redis-server 7.0 has no WAITAOF: only `always` is safe
        scenario = replace(
            scenario,
            wide=wide,
            wide_keys=keys,
            wide_restarts=restarts,
            aof_fsync=fsync,
            wide_fence=fence,
        )
        faults.append(f"wide-restart-{fsync}")
    if rng.random() < 0.2:
        prunes = tuple(
            sorted(
                (rng.randint(100, 3000), rng.choice(("cli", "cli", "library")))
                for _ in range(rng.randint(2, 5))
            )
        )
        before = rng.choice((scenario.dates[-1] + 1, rng.choice(scenario.dates)))
        # claims left pending: runs killed after their commit or before their release
        for i in rng.sample(range(len(rotators)), min(len(rotators), rng.randint(1, 2))):
            old = rotators[i]
            if old.fault == "random-kill":
                continue
            new = replace(
                old,
                fault="kill",
                point=rng.choice(("commit-after", "release-before")),
                lockless=old.lockless or rng.random() < 0.5,
            )
            faults.remove(_fault_name(old))
            faults.append(_fault_name(new))
            faults += ["lockless"] * (new.lockless and not old.lockless)
            rotators[i] = new
        scenario = replace(scenario, prunes=prunes, prune_before=before)
        faults.append("prune-race")
    if rng.random() < 0.08:
        scenario = replace(scenario, replica_url_ms=rng.randint(0, 1500))
        faults.append("replica-url")
    return replace(scenario, rotators=tuple(rotators), faults=tuple(faults))


def _moving(scenario: Scenario, rng: random.Random) -> Scenario:
    """Redis behind a moving address: the primary dies mid-run and the replica is
    promoted behind the rotators' one address, while the rotators run."""
    fence_on = rng.random() < 0.7
    setting = rng.choice(("auto", "replicas:1"))
    when = rng.choice(("time", "step", "fenced")) if fence_on else rng.choice(("time", "step"))
    stalled = rng.random() < 0.5 or not fence_on  # fence off: stalled from the start
    stall = 0 if not fence_on else rng.randint(0, 600)
    switch = rng.randint(300, 1200) if when == "time" else rng.randint(0, 60)
    rotators = []
    for _ in range(rng.randint(1, 3)):
        fault = rng.choice(("none", "none", "kill", "stop"))
        rotators.append(
            RotatorPlan(
                rng.randint(0, 400),
                fault,
                rng.choice(POINTS),
                rng.randint(1, 2),
                lockless=rng.random() < 0.25,
                strict=rng.random() < 0.2,
            )
        )
    if when == "step":  # the first run freezes at its first step boundary: the switch then
        rotators[0] = replace(rotators[0], fault="stop", nth=1)
    sync = "lag" if stalled else "in-sync"
    name = f"moving-address-{sync}-{when}-fence-{'on' if fence_on else 'off'}"
    return replace(
        scenario,
        rotators=tuple(rotators),
        redis_restart_ms=None,
        db_outage=None,
        delete_earliest_ms=None,
        drop_response_ms=None,
        rotator_drop=0.0,
        recorder_drop=0.0,
        rollback="moving",
        fence_on=fence_on,
        fence_setting=setting,
        stall_after_ms=stall,
        link_stalled=stalled,
        switch_when=when,
        switch_ms=switch,
        faults=(
            *(f for f in scenario.faults if f == "planted-violations"),
            *["strict"] * sum(r.strict for r in rotators),
            *(_fault_name(r) for r in rotators),
            *["lockless"] * sum(r.lockless for r in rotators),
            name,
        ),
    )


def _with_cluster_faults(scenario: Scenario, rng: random.Random) -> Scenario:
    """rqlite-real: node order, quorum loss, leader kill, node restart (drawn last, so
    the other backends' seeds keep the scenarios they always had)."""
    outage, faults = scenario.db_outage, list(scenario.faults)
    if outage is not None:  # long enough for the leader's lease to run out
        outage = (outage[0], rng.randint(500, 3000))
    leader_kill: tuple[int, int] | None = None
    node_restart: tuple[int, str, int] | None = None
    host_order = tuple(rng.sample(range(3), 3))
    spares = rng.choice(("leader", "follower"))
    restart_delay = rng.randint(500, 3000)
    if rng.random() < 0.4:
        leader_kill = (rng.randint(100, 1500), rng.randint(1500, 4000))
        faults.append("leader-kill")
    if rng.random() < 0.3:
        role = rng.choice(("leader", "follower"))
        node_restart = (rng.randint(0, 2000), role, rng.randint(100, 1500))
        faults.append(f"node-restart-{role}")
    # A third of the runs give up at once (RETRY_FOR=0: each node tried once), so
    # runs still die mid-walk in an election, as before the store rode through them.
    rotators = [replace(r, retry_for=0) if rng.random() < 1 / 3 else r for r in scenario.rotators]
    faults += ["retry-for-0"] * sum(r.retry_for == 0 for r in rotators)
    return replace(
        scenario,
        rotators=tuple(rotators),
        db_outage=outage,
        faults=tuple(faults),
        host_order=host_order,
        outage_spares=spares,
        leader_kill=leader_kill,
        node_restart=node_restart,
        restart_delay_ms=restart_delay,
    )


def _delay_ms(fault: str, rng: random.Random) -> int:
    """random-kill: when the SIGKILL comes; leader-kill: how far into the commit."""
    if fault == "random-kill":
        return rng.randint(50, 900)
    if fault == "leader-kill":  # a commit takes about 5 ms on loopback
        return rng.randint(0, 15)
    return 0


def _fault_name(plan: RotatorPlan) -> str:
    if plan.fault == "kill":
        return f"kill@{plan.point}"
    if plan.fault == "leader-kill":
        return "leader-kill@commit"
    return plan.fault


# The lock's TTL in the campaign is 1 s: a run frozen at a step boundary loses it,
# and the runs started after that overlap with its stale view when it resumes.
def _stale_release(rng: random.Random) -> list[RotatorPlan]:
    """A freezes before releasing a committed claim; B picks the claim up, claims the
    date anew in its retry pass and dies; A resumes and releases. Only the claim it
    committed may go: B's fresh claim must survive for the next run."""
    return [
        RotatorPlan(0, "stop", "release-before", 1),
        RotatorPlan(rng.randint(1100, 1500), "kill", "claim-after", 2),
        RotatorPlan(rng.randint(2000, 3000), "none", "claim-after", 1),
    ]


def _stale_commit(rng: random.Random) -> list[RotatorPlan]:
    """A freezes after claiming; B commits and releases A's claim; A resumes and
    commits it again: the ledger must refuse the second application."""
    return [
        RotatorPlan(0, "stop", "claim-after", rng.randint(1, 2)),
        RotatorPlan(rng.randint(1100, 1500), "none", "claim-after", 1),
        RotatorPlan(rng.randint(1600, 2600), "random-kill", "claim-after", 1, rng.randint(50, 400)),
    ]


def _crowd(rng: random.Random) -> list[RotatorPlan]:
    """Four runs at once, two frozen mid-walk, while writers keep writing."""
    return [
        RotatorPlan(rng.randint(0, 100), "stop", rng.choice(POINTS), rng.randint(1, 3)),
        RotatorPlan(rng.randint(0, 100), "stop", rng.choice(POINTS), rng.randint(1, 3)),
        RotatorPlan(rng.randint(0, 300), "none", "claim-after", 1),
        RotatorPlan(rng.randint(1100, 2000), "lost-response", rng.choice(POINTS), 1),
    ]


def _pickup_under_load(rng: random.Random) -> list[RotatorPlan]:
    """A dies after claiming; B picks A's claims up while writers write flat out, so
    B's first pass mixes picked-up and fresh claims and its retry pass claims the
    fresh dates again: each claim must be told apart by the ledger."""
    return [
        RotatorPlan(rng.randint(0, 100), "kill", "claim-after", 1),
        RotatorPlan(rng.randint(1150, 1400), "none", "claim-after", 1),  # after A's lock
        RotatorPlan(rng.randint(1400, 2000), "none", "claim-after", 1),
    ]


def _lockless_crowd(rng: random.Random) -> list[RotatorPlan]:
    """Runs that ignore the lock, overlapping freely: their batches start at whatever
    ``earliest`` each one read, so picked-up and fresh claims mix within a batch."""
    plans = []
    for _ in range(rng.randint(3, 4)):
        fault = rng.choice(("none", "none", "kill", "lost-response", "random-kill"))
        plans.append(
            RotatorPlan(
                rng.randint(0, 900),
                fault,
                rng.choice(POINTS),
                rng.randint(1, 3),
                rng.randint(100, 900) if fault == "random-kill" else 0,
                lockless=True,
                repeat=rng.randint(2, 6),
            )
        )
    return plans


_PATTERNS = (
    _stale_release,
    _stale_commit,
    _crowd,
    _pickup_under_load,
    _lockless_crowd,
    _lockless_crowd,  # the strongest: twice the weight
)
