"""Randomized scenarios: what writers, rotators and faults do, drawn from one seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .rotator import POINTS

ROTATOR_FAULTS = ("none", "kill", "kill", "random-kill", "stop", "lost-response", "lost-request")


@dataclass(frozen=True)
class RotatorPlan:
    """One rotation run: when it starts (ms after the scenario starts) and its fault."""

    start_ms: int
    fault: str
    point: str
    nth: int
    kill_after_ms: int = 0  # random-kill: SIGKILL this long after the start
    lockless: bool = False  # ignores the lock, as if it had expired
    repeat: int = 1  # runs one after the other in the same process

    def describe(self) -> str:
        who = f"{'lockless ' if self.lockless else ''}rotator@{self.start_ms}ms"
        who += f" x{self.repeat}" if self.repeat > 1 else ""
        if self.fault == "none":
            return f"{who} clean"
        if self.fault == "random-kill":
            return f"{who} SIGKILL after {self.kill_after_ms}ms"
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
        if self.db_outage is not None:
            parts.append(f"database unreachable@{self.db_outage[0]}ms for {self.db_outage[1]}ms")
        if self.delete_earliest_ms is not None:
            parts.append(f"earliest deleted@{self.delete_earliest_ms}ms")
        if self.drop_response_ms is not None:
            parts.append(f"commit response dropped@{self.drop_response_ms}ms")
        return "; ".join(parts)


def generate(seed: int, backend: str, today: int) -> Scenario:
    """A scenario over a few stable dates well before ``today`` (a unix date)."""
    rng = random.Random(seed)
    first = today - rng.randint(8, 30)
    dates = tuple(range(first, first + rng.randint(2, 6)))
    rotators = []
    for _ in range(rng.randint(1, 4)):
        fault = rng.choice(ROTATOR_FAULTS)
        rotators.append(
            RotatorPlan(
                start_ms=rng.randint(0, 700),
                fault=fault,
                point=rng.choice(POINTS),
                nth=rng.randint(1, 3),
                kill_after_ms=rng.randint(50, 900) if fault == "random-kill" else 0,
                lockless=rng.random() < 0.25,
            )
        )
    ops, write_seconds = rng.randint(20, 90), rng.uniform(0.3, 2.5)
    if rng.random() < 0.4:  # an adversarial interleaving around a frozen or killed run
        pattern = _PATTERNS[rng.randrange(len(_PATTERNS))]
        rotators = list(pattern(rng))
        if pattern in (_pickup_under_load, _lockless_crowd):  # writers flat out
            ops, write_seconds = rng.randint(1500, 3000), 0.0
    faults = [r.fault if r.fault != "kill" else f"kill@{r.point}" for r in rotators]
    faults += ["lockless"] * sum(r.lockless for r in rotators)
    restart = rng.randint(100, 900) if rng.random() < 0.2 else None
    outage = (rng.randint(0, 800), rng.randint(200, 1200)) if rng.random() < 0.2 else None
    delete = rng.randint(0, 900) if rng.random() < 0.2 else None
    drop = rng.randint(0, 900) if backend == "rqlite" and rng.random() < 0.3 else None
    faults += ["redis-restart"] * (restart is not None) + ["db-outage"] * (outage is not None)
    faults += ["earliest-deleted"] * (delete is not None) + ["drop-response"] * (drop is not None)
    return Scenario(
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
