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

from rotate_stats.database import Store
from rotate_stats.redis_side import RedisSide
from tests.helpers import stored_tally, tally_redis

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


@dataclass(frozen=True)
class Verdict:
    """lost / doubled increments (summed over keys) and the keys that differ."""

    lost: int
    doubled: int
    differences: dict[Key, tuple[int, int]]
    refusal_mismatch: dict[str, tuple[int, int]]


def judge(oracle: Oracle, client: redis.Redis, store: Store) -> Verdict:
    found = stored_tally(store) + Counter(tally_redis(client))
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
