"""Signs that the job is not working although it looks as if it were (issue 10, items 8-9).

Shared by the walk (``rotate``) and ``status``: where Redis is, the newest
stored row, the "nothing to rotate, but the table stopped growing" check, and
the exact ``redis-cli`` commands that inspect and repair a bad value.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from . import family
from .database import Store
from .dates import iso, last_stable
from .errors import ClaimBelowWatermark, ConfigError, DataError
from .invocation import command
from .report import BadDate

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


def oldest_row(store: Store) -> str | None:
    """``retrieved_for`` of the oldest stored row, or None for an empty table."""
    found = store.read(f"SELECT MIN(retrieved_for) FROM {family.TABLE}")
    return str(found[0][0]) if found and found[0][0] is not None else None


def backlog_dates(dated: Iterable[int], earliest: int | None, stable: int) -> list[int]:
    """The stable dates a normal run will visit that still have keys (live or claim):
    from ``earliest`` on. One rule for ``status`` and the run's metrics; dates without
    keys are no backlog, whatever ``earliest`` says (issue 17, item 3)."""
    if earliest is None:
        return []
    return sorted(d for d in dated if earliest <= d <= stable)


def orphan_dates(dated: Iterable[int], earliest: int | None, stable: int) -> list[int]:
    """Stable dates with keys that no normal run will visit: below ``earliest``, or any
    while it is absent. One rule for the run and ``status`` (issue 17, item 5c)."""
    return sorted(d for d in dated if d <= stable and (earliest is None or d < earliest))


def orphan_message(found: Sequence[int], keys: int, earliest: int | None, max_days: int) -> str:
    """What to say about orphaned keys of the dates ``found`` (ascending, not empty): how
    many, which, and the command that rotates exactly the dates that have keys (the
    narrow range), in ranges the backlog limit accepts."""
    first, last = found[0], found[-1]
    chunk_last = max(d for d in found if d < first + max_days)
    hint = f"`{command('--from', iso(first), '--to', iso(chunk_last))}`"
    if chunk_last < last:
        hint += (
            f", then the dates with keys up to {iso(last)} in ranges of at most {max_days} "
            "dates (ROTATE_STATS_MAX_BACKLOG_DAYS)"
        )
    where = "is absent" if earliest is None else f"is {iso(earliest)}"
    return (
        f"{keys} stats key(s) for {len(found)} date(s) from {iso(first)} to {iso(last)} "
        f"will never be rotated: {family.EARLIEST_KEY} {where}; rotate them with {hint}"
    )


def eviction_verdict(policy: str | None, allowed: bool) -> tuple[ConfigError | None, str]:
    """(refusal, note) about Redis's ``maxmemory-policy``: one rule for the run (which
    raises the refusal: it does not start) and ``status`` (which reports it as a problem).

    Under ``allkeys-*`` Redis may evict any key when memory runs out - a pending
    claim too, whose counts would then be lost. Claim keys are PERSISTed, so the
    ``volatile-*`` policies cannot evict them.
    """
    if policy is None:
        return None, (
            "cannot read maxmemory-policy (CONFIG is disabled): make sure Redis does not use "
            "an allkeys-* policy, which may evict a pending claim"
        )
    if not policy.startswith("allkeys-"):
        return None, ""
    if not allowed:
        refusal = ConfigError(
            "Redis maxmemory-policy",
            policy,
            "noeviction or a volatile-* policy (allkeys-* may evict a pending claim and "
            "lose its counts); set ROTATE_STATS_ALLOW_EVICTION=1 to run anyway",
        )
        return refusal, ""
    return None, f"maxmemory-policy is {policy}: a pending claim may be evicted (allowed)"


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
        f"database number) and `{command('status')}`"
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
        f"then: {command('--date', iso(d))} (or let the next run pick it up; "
        f"{family.EARLIEST_KEY} stays at {iso(d)} until then)"
    )
    return "; ".join(steps)


def with_repair_hint(exc: DataError, client: Any) -> str:
    """``str(exc)`` followed by its repair commands, when it has any."""
    hint = repair_hint(exc, client)
    return f"{exc}. To fix it - {hint}" if hint else str(exc)


def bad_date(unix_date: int, exc: DataError, client: Any) -> BadDate:
    """The report's record of a date left in Redis because of ``exc``."""
    value = exc.value if isinstance(exc.value, str) else repr(exc.value)
    return BadDate(
        unix_date, exc.key, exc.field, value, exc.expected, str(exc), repair_hint(exc, client)
    )


def bad_dates_summary(bad: Sequence[BadDate]) -> str:
    """A run's error for its bad dates: each one, with its repair commands."""
    dates = ", ".join(iso(b.unix_date) for b in bad)
    head = "" if len(bad) == 1 else f"{len(bad)} dates left in Redis with bad data ({dates}):\n"
    return head + "\n".join(b.describe() for b in bad)
