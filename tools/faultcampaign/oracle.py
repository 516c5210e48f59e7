"""The oracle: what Redis accepted, against what the table and Redis hold at the end.

For every (date, event, breakdown key or None for the count):
``accepted == stored row + what remains in Redis`` (live and claim keys),
exactly. Refused recorder writes must equal the refusals hash operators see.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import redis

from rotate_stats import family
from rotate_stats.database import Store
from rotate_stats.dates import parse_iso
from rotate_stats.redis_side import RedisSide

Key = tuple[int, str, str | None]


@dataclass
class Oracle:
    """Thread-safe tallies of accepted and refused increments."""

    accepted: Counter[Key] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    increments: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, key: Key, amount: int) -> None:
        with self._lock:
            self.accepted[key] += amount
            self.increments += 1

    def refuse(self, unix_date: int, event: str, amount: int) -> None:
        with self._lock:
            self.refused[f"{unix_date}:{event}"] += amount


def stored(store: Store) -> Counter[Key]:
    """Every count and breakdown value in the table."""
    out: Counter[Key] = Counter()
    for row in store.rows(None, None):
        d = parse_iso(row.retrieved_for)
        for event in family.EVENTS:
            if row.day.count(event):
                out[d, event, None] += row.day.count(event)
            for key, value in row.day.breakdown(event).items():
                out[d, event, key] += value
    return out


def remaining(client: redis.Redis) -> Counter[Key]:
    """Every count and breakdown value still in Redis, live or claimed."""
    out: Counter[Key] = Counter()
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        d = family.date_of_key(key)
        if d is None or key.endswith(":id"):
            continue
        event = key.rsplit(":extra:", 1)[1] if ":extra:" in key else None
        for f, v in client.hgetall(key).items():
            name = f.decode()
            out[(d, event, name) if event else (d, name, None)] += int(v)
    return out


@dataclass(frozen=True)
class Verdict:
    """lost / doubled increments (summed over keys) and the keys that differ."""

    lost: int
    doubled: int
    differences: dict[Key, tuple[int, int]]
    refusal_mismatch: dict[str, tuple[int, int]]


def judge(oracle: Oracle, client: redis.Redis, store: Store) -> Verdict:
    found = stored(store) + remaining(client)
    keys = set(oracle.accepted) | set(found)
    diffs = {k: (oracle.accepted[k], found[k]) for k in keys if oracle.accepted[k] != found[k]}
    lost = sum(max(0, a - f) for a, f in diffs.values())
    doubled = sum(max(0, f - a) for a, f in diffs.values())
    shown = RedisSide(client).refusals()
    names = set(shown) | set(oracle.refused)
    refusals = {
        n: (oracle.refused[n], shown.get(n, 0))
        for n in names
        if oracle.refused[n] != shown.get(n, 0)
    }
    return Verdict(lost, doubled, diffs, refusals)
