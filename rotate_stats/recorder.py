"""The writer API: count journal chat job events the way the rotation expects.

``Recorder.record`` increments a date's count and its breakdown in one round
trip (one Lua call), sets ``earliest`` to the date only when it is absent, and
refuses a write for a date below ``earliest`` (already rotated): the refusal
is counted in the ``family.REFUSED_KEY`` hash
(``{unix_date}:{event}`` -> increments), which ``status`` shows, so such a
loss is visible instead of silently recreating a rotated date.

An increment is sent exactly once. redis-py resends a command after a lost
answer when the client has retries (the default from redis-py 6), which would
count an applied increment twice; so the recorder runs its script on a pool
connection of its own, bypassing the client's retry, and raises
``AmbiguousWrite`` when the command was sent but its answer did not arrive.
Failures before anything was sent (connecting) are raised as redis-py's own
``ConnectionError``/``TimeoutError``: nothing was recorded, a retry is safe.
"""

from __future__ import annotations

import inspect
from typing import Any

import redis
from redis.exceptions import NoScriptError

from . import family
from .errors import AmbiguousWrite
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
        refused (and counted). Raises ValueError for an unknown event or a bad amount,
        and redis.ResponseError naming the key and field when a hash holds something
        that is not an integer (then nothing was written: never half an event).
        """
        if event not in family.EVENTS:
            raise ValueError(f"event {event!r} is not one of {', '.join(family.EVENTS)}")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount < 10**18:
            raise ValueError(f"amount {amount!r} must be a positive integer below 10^18")
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
        return bool(self._call_once(keys, args, amount))

    def _call_once(self, keys: list[str], args: list[str | int], amount: int) -> Any:
        """EVALSHA on one connection, never resent after the command went out."""
        pool = self.client.connection_pool
        conn = _connection(pool)
        try:
            conn.connect()  # redis-py may retry this: nothing has been sent yet
            for _ in range(2):
                sent = False
                try:
                    conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                    sent = True
                    return conn.read_response()
                except NoScriptError:  # not run: load it (a restarted Redis) and send again
                    conn.send_command("SCRIPT", "LOAD", self._script.script)
                    conn.read_response()
                except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                    conn.disconnect()
                    if sent:
                        raise AmbiguousWrite(keys[0], amount, exc) from exc
                    raise
            raise AssertionError("unreachable: NOSCRIPT twice after SCRIPT LOAD")
        finally:
            pool.release(conn)


def _connection(pool: redis.ConnectionPool) -> Any:
    """A pool connection (redis-py 5 needs a command name, 6+ deprecates it)."""
    parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        return pool.get_connection("EVALSHA")
    return pool.get_connection()
