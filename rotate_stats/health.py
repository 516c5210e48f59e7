"""Signs that the job is not working although it looks as if it were (issue 10, items 8-9).

Shared by the walk (``rotate``) and ``status``: where Redis is, the newest
stored row, the "nothing to rotate, but the table stopped growing" check, and
the exact ``redis-cli`` commands that inspect and repair a bad value.
"""

from __future__ import annotations

import shlex
from typing import Any

from . import family
from .database import Store
from .dates import iso, last_stable
from .errors import ClaimBelowWatermark, DataError

STALE_AFTER_DAYS = 2
"""Default of ``ROTATE_STATS_STALE_AFTER_DAYS``: the newest row may lag the last stable
date by this many days (a normal night leaves it 0 or 1 day behind) before it is a
problem."""


def redis_where(client: Any) -> tuple[str, int]:
    """(URL of the client's server without any password, database number)."""
    try:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
    except AttributeError:
        return "an unknown Redis", 0
    db = int(kwargs.get("db") or 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}", db
    scheme = "rediss" if "SSL" in getattr(pool.connection_class, "__name__", "") else "redis"
    user = kwargs.get("username")
    auth = f"{user or ''}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{db}", db


def redis_cli(client: Any) -> str:
    """The ``redis-cli`` invocation that reaches the client's server and database
    (``--askpass`` instead of any password)."""
    try:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
    except AttributeError:
        return "redis-cli"
    parts = ["redis-cli"]
    if kwargs.get("path"):
        parts += ["-s", shlex.quote(str(kwargs["path"]))]
    else:
        parts += ["-h", shlex.quote(str(kwargs.get("host", "127.0.0.1")))]
        parts += ["-p", str(kwargs.get("port", 6379))]
        if "SSL" in getattr(pool.connection_class, "__name__", ""):
            parts.append("--tls")
    if kwargs.get("username"):
        parts += ["--user", shlex.quote(str(kwargs["username"]))]
    if kwargs.get("password"):
        parts.append("--askpass")
    parts += ["-n", str(int(kwargs.get("db") or 0))]
    return " ".join(parts)


def newest_row(store: Store) -> str | None:
    """``retrieved_for`` of the newest stored row, or None for an empty table."""
    found = store.read(f"SELECT MAX(retrieved_for) FROM {family.TABLE}")
    return str(found[0][0]) if found and found[0][0] is not None else None


def is_stale(newest: str, stable: int, stale_after_days: int) -> bool:
    """Whether a newest row ``newest`` (ISO) lags the last stable date by more than
    ``stale_after_days``: one rule for the run (``stale_newest_row``) and ``status``."""
    return newest < iso(stable - stale_after_days)


def stale_newest_row(
    store: Store, client: Any, now: float, stale_after_days: int = STALE_AFTER_DAYS
) -> str | None:
    """Why a run that found ``earliest`` absent is a failure, or None when it is not.

    ``earliest`` is only absent before the first write ever: every run leaves it
    past what it rotated. Absent while the table has rows whose newest lags the last
    stable date by more than ``stale_after_days``, the job is most likely pointed at
    the wrong Redis database (or the writers stopped): exit 1 instead of "nothing to
    rotate" night after night.
    """
    newest = newest_row(store)
    if newest is None:
        return None  # a new installation: nothing written, nothing rotated yet
    stable = last_stable(now)
    if not is_stale(newest, stable, stale_after_days):
        return None
    url, db = redis_where(client)
    return (
        f"{family.EARLIEST_KEY} is absent in Redis {url} (database {db}), but the table "
        f"{family.TABLE} has rows up to {newest} and the last stable date is {iso(stable)} "
        f"(more than ROTATE_STATS_STALE_AFTER_DAYS={stale_after_days} days behind): wrong "
        "Redis database, or writers stopped? Check ROTATE_STATS_REDIS_URL (its /N is the "
        "database number) and `python -m rotate_stats status`"
    )


def repair_hint(exc: DataError, client: Any) -> str:
    """The commands that inspect and repair the bad value ``exc`` names, then rotate its
    date; "" when ``exc`` is not about a stats key in Redis."""
    d = family.date_of_key(exc.key)
    if d is None or isinstance(exc, ClaimBelowWatermark):  # its message says what to do
        return ""
    cli = redis_cli(client)
    key = shlex.quote(exc.key)
    if exc.field is None:  # a key of the wrong type
        steps = [
            f"inspect: {cli} TYPE {key}",
            f"repair: move it aside ({cli} RENAME {key} {shlex.quote('bad:' + exc.key)}) "
            f"or delete it ({cli} DEL {key})",
        ]
    elif exc.field.isprintable() and exc.expected != "a UTF-8 field name":
        field = shlex.quote(exc.field)
        steps = [
            f"inspect: {cli} HGET {key} {field}",
            f"repair: {cli} HSET {key} {field} <the right count>, or drop it with "
            f"{cli} HDEL {key} {field}",
        ]
    else:  # a field name a shell cannot spell: list it, delete it from a client library
        steps = [
            f"inspect: {cli} --no-raw HSCAN {key} 0 COUNT 1000",
            "repair: HDEL that field from a client library (its name is not printable text)",
        ]
    steps.append(
        f"then: python -m rotate_stats --date {iso(d)} (or let the next run pick it up; "
        f"{family.EARLIEST_KEY} stays at {iso(d)} until then)"
    )
    return "; ".join(steps)


def with_repair_hint(exc: DataError, client: Any) -> str:
    """``str(exc)`` followed by its repair commands, when it has any."""
    hint = repair_hint(exc, client)
    return f"{exc}. To fix it - {hint}" if hint else str(exc)
