"""Reply-losing proxies between the campaign's clients and Redis (issue 8).

Rotators reach Redis through one that loses a share of every kind of reply: the
command ran, the client's connection closes unanswered, and redis-py (default
retries, as ``redis.Redis.from_url`` makes them) sends it again. Recorders reach
it through one that loses only the reply ``:1`` (the increment was counted), so
that an ``AmbiguousWrite`` is known to the oracle to have counted - and a
recorder that resent behind its caller's back would show as a doubling.
"""

from __future__ import annotations

import random
from collections import Counter

from tests.helpers import ReplyDropper

from .scenario import Scenario

COUNTED = b":1\r\n"  # record.lua's reply when the increment was counted


class Proxies:
    """The scenario's proxies (none, either or both) and their URLs."""

    def __init__(self, scenario: Scenario, redis_port: int) -> None:
        rng = random.Random(scenario.seed * 7 + 1)  # policies run under the proxy's lock
        self.rotator: ReplyDropper | None = None
        self.recorder: ReplyDropper | None = None
        if scenario.rotator_drop:
            chance = scenario.rotator_drop
            self.rotator = ReplyDropper(redis_port, policy=lambda _: rng.random() < chance)
        if scenario.recorder_drop:
            share = scenario.recorder_drop
            self.recorder = ReplyDropper(
                redis_port, policy=lambda data: data == COUNTED and rng.random() < share
            )

    @property
    def rotator_url(self) -> str | None:
        return f"redis://127.0.0.1:{self.rotator.port}/0" if self.rotator else None

    @property
    def recorder_url(self) -> str | None:
        return f"redis://127.0.0.1:{self.recorder.port}/0" if self.recorder else None

    def happened(self) -> Counter[str]:
        out: Counter[str] = Counter()
        if self.rotator is not None:
            out["rotator replies lost"] += self.rotator.dropped
        if self.recorder is not None:
            out["recorder replies lost"] += self.recorder.dropped
        return out

    def close(self) -> None:
        for proxy in (self.rotator, self.recorder):
            if proxy is not None:
                proxy.close()
