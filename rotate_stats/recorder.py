"""The writer API: count journal chat job events the way the rotation expects.

``Recorder.record`` increments a date's count and its breakdown in one round
trip (one Lua call), sets ``earliest`` to the date only when it is absent, and
refuses a write for a date below ``earliest`` (already rotated): the refusal
is counted in the ``family.REFUSED_KEY`` hash
(``{unix_date}:{event}`` -> increments), which ``status`` shows, so such a
loss is visible instead of silently recreating a rotated date.
"""

from __future__ import annotations

import redis

from . import family
from .redis_side import scripts_for


class Recorder:
    """Records events for unix dates in Los Angeles (see ``dates``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = scripts_for(client).record

    def record(self, unix_date: int, event: str, breakdown: str, amount: int = 1) -> bool:
        """Add ``amount`` to ``event`` and to its ``breakdown`` key on ``unix_date``.

        ``breakdown`` is the job type (``{type}:{reason}`` for failed_to_queue and
        failed). Returns False when the date was already rotated and the write was
        refused (and counted). Raises ValueError for an unknown event or a bad amount.
        """
        if event not in family.EVENTS:
            raise ValueError(f"event {event!r} is not one of {', '.join(family.EVENTS)}")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"amount {amount!r} must be a positive integer")
        if not isinstance(unix_date, int) or isinstance(unix_date, bool):
            raise ValueError(f"unix_date {unix_date!r} must be an integer")
        if not breakdown:
            raise ValueError("breakdown must be a non-empty string")
        keys = [
            family.counts_key(unix_date),
            family.extra_key(unix_date, event),
            family.EARLIEST_KEY,
            family.REFUSED_KEY,
        ]
        args: list[str | int] = [unix_date, event, breakdown, amount, f"{unix_date}:{event}"]
        return bool(self._script(keys=keys, args=args))
