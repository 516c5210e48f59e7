"""``python -m rotate_stats demo``: the real job on embedded defaults, with demo data.

An in-process Redis (fakeredis, with Lua) receives three weeks of seeded,
realistic traffic through the Recorder, plus a few planted anomalies; the real
rotation moves it into a fresh SQLite file; then a late write from a foreign
writer is merged by a second run. Nothing outside the new temp directory is
touched.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import redis

from . import family
from .database import SqliteStore, migrate
from .dates import today
from .recorder import Recorder
from .report import RotationReport
from .rotate import rotate

JOB_TYPES = (
    ("system_chat", 50),
    ("greeting", 20),
    ("reflection_question", 15),
    ("summarize", 10),
    ("sync", 5),
)
QUEUE_FAILURES = (
    "locked",
    "ratelimited:user_queued_jobs:{at}:5",
    "ratelimited:total_queued_jobs:{at}:1000",
    "user_not_found",
    "journal_entry_not_found",
    "bad_state",
)
JOB_FAILURES = ("timed_out", "no_completion", "write_failed:summary", "llm:empathy:RateLimitError")


@dataclass(frozen=True)
class DemoResult:
    """The two runs and where the database file is."""

    first: RotationReport
    second: RotationReport
    database_path: str
    jobs: int


def fake_redis() -> redis.Redis:
    """An in-process Redis with Lua scripting (fakeredis[lua])."""
    try:
        import fakeredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the demo needs fakeredis: pip install 'rotate-stats[demo]'") from exc
    client: redis.Redis = fakeredis.FakeRedis()
    return client


def simulate_day(rng: random.Random) -> list[tuple[str, str]]:
    """One day's jobs as (event, breakdown key) increments, in the order they happen."""
    names = [t for t, _ in JOB_TYPES]
    weights = [w for _, w in JOB_TYPES]
    events: list[tuple[str, str]] = []
    for _ in range(rng.randint(40, 120)):
        job_type = rng.choices(names, weights)[0]
        events.append(("requested", job_type))
        if rng.random() < 0.08:
            reason = rng.choice(QUEUE_FAILURES).format(at=rng.randint(1, 5))
            events.append(("failed_to_queue", f"{job_type}:{reason}"))
            continue
        events += [("queued", job_type), ("started", job_type)]
        if rng.random() < 0.06:
            events.append(("failed", f"{job_type}:{rng.choice(JOB_FAILURES)}"))
        else:
            events.append(("completed", job_type))
    return events


def write_history(client: redis.Redis, unix_date: int, events: list[tuple[str, str]]) -> None:
    """A past day's increments, summed and written in one pipeline (as if writers had
    HINCRBYed them one by one; much faster than a script call per event in fakeredis)."""
    totals = Counter(events)
    pipe = client.pipeline(transaction=False)
    for (event, key), amount in totals.items():
        pipe.hincrby(family.counts_key(unix_date), event, amount)
        pipe.hincrby(family.extra_key(unix_date, event), key, amount)
    pipe.execute()


def run_demo(days: int = 21, seed: int = 2024, directory: str | None = None) -> DemoResult:
    """Write ``days`` stable days (plus yesterday and today) of traffic, then rotate twice."""
    if days < 3:
        raise ValueError(f"days {days} must be at least 3 to place the demo's anomalies")
    client = fake_redis()
    recorder = Recorder(client)
    rng = random.Random(seed)
    now = time.time()
    current = today(now)
    jobs = 0
    first_day = current - days - 1
    client.set(family.EARLIEST_KEY, first_day)
    for d in range(first_day, current + 1):
        events = simulate_day(rng)
        jobs += sum(1 for event, _ in events if event == "requested")
        if d < current - 1:
            write_history(client, d, events)
        else:  # yesterday and today go through the Recorder, as the app writes them
            for event, key in events:
                recorder.record(d, event, key)
    # planted anomalies: a raw task type from an old writer, and a start with no queue
    raw_type, no_queue, late = current - 2 - days // 4, current - 2 - days // 2, current - 3
    for event in ("requested", "queued", "started", "completed"):
        recorder.record(raw_type, event, "chat")
    client.hincrby(family.counts_key(no_queue), "started", 1)
    client.hincrby(family.extra_key(no_queue, "started"), "sync", 1)

    directory = directory or tempfile.mkdtemp(prefix="rotate-stats-demo-")
    path = os.path.join(directory, "stats.sqlite3")
    store = SqliteStore(path)
    migrate(store)
    first = rotate(client, store, now=now)
    # a foreign writer's late event for a rotated date: HINCRBY + set-if-lower
    client.hincrby(family.counts_key(late), "requested", 1)
    client.hincrby(family.extra_key(late, "requested"), "sync", 1)
    client.hincrby(family.counts_key(late), "failed_to_queue", 1)
    client.hincrby(family.extra_key(late, "failed_to_queue"), "sync:locked", 1)
    client.set(family.EARLIEST_KEY, late)
    second = rotate(client, store, now=now)
    store.close()
    return DemoResult(first, second, path, jobs)
