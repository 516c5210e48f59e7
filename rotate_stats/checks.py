"""``check`` and ``status``: read-only views over stored rows and pending Redis dates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import family
from .database import Store, pending_migrations
from .dates import iso, last_stable, parse_iso, today
from .errors import ConfigError, DataError
from .invariants import Finding, Invariant, check_day
from .redis_side import RedisSide
from .report import ExitCode


@dataclass
class CheckReport:
    """Findings over stored rows (and, with Redis, over dates still pending there)."""

    first: str | None
    last: str | None
    rows_checked: int = 0
    pending_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    dates_checked: set[int] = field(default_factory=set)
    """Unix dates with a stored row or a pending date checked (JUnit: one case each)."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.VIOLATIONS if self.findings else ExitCode.OK

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.first,
            "to": self.last,
            "rows_checked": self.rows_checked,
            "pending_checked": self.pending_checked,
            "findings": [f.as_dict() for f in self.findings],
            "exit_code": int(self.exit_code),
        }


def check(
    store: Store,
    first: int | None = None,
    last: int | None = None,
    side: RedisSide | None = None,
    now: float | None = None,
) -> CheckReport:
    """Check every stored row in [first, last]; with ``side``, also pending stable dates."""
    report = CheckReport(None if first is None else iso(first), None if last is None else iso(last))
    for row in store.rows(report.first, report.last):
        report.rows_checked += 1
        d = parse_iso(row.retrieved_for)
        report.dates_checked.add(d)
        for column, detail in zip(row.problems, row.details, strict=True):
            report.findings.append(
                Finding(
                    d,
                    Invariant.GRAMMAR if column.endswith("_breakdown") else Invariant.NON_NEGATIVE,
                    column.removesuffix("_breakdown"),
                    None,
                    None,
                    None,
                    f"{column}: {detail}",
                )
            )
        report.findings += check_day(d, row.day)
    if side is not None:
        earliest = side.read_earliest()
        stable = last_stable(time.time() if now is None else now)
        if earliest is not None:
            lo = max(earliest, first if first is not None else earliest)
            hi = min(stable, last if last is not None else stable)
            dates = list(range(lo, hi + 1))
            for d, (live, pending) in zip(dates, side.peek(dates), strict=True):
                report.pending_checked += 1
                report.dates_checked.add(d)
                day = live if pending is None else pending.plus(live)
                if not day.is_empty():
                    report.findings += check_day(d, day)
    report.findings.sort(key=lambda f: (f.unix_date, f.invariant.value))
    return report


@dataclass(frozen=True)
class Status:
    """Where rotation stands."""

    earliest: int | None
    last_stable: int
    backlog: int
    lock_holder: str | None
    lock_ttl_ms: int | None
    orphaned: dict[int, list[str]]
    refused: dict[str, int]
    newest_row: str | None
    pending_migrations: list[str]
    earliest_error: str | None = None
    unknown_keys: tuple[str, ...] = ()
    """Keys of the stats namespaces that are not stats keys this job knows (left alone)."""
    durability: str = ""
    """What the default (auto) fence would use, and a warning when it has nothing."""

    def as_dict(self) -> dict[str, object]:
        return {
            "earliest": None if self.earliest is None else iso(self.earliest),
            "earliest_unix_date": self.earliest,
            "last_stable": iso(self.last_stable),
            "backlog_dates": self.backlog,
            "lock_holder": self.lock_holder,
            "lock_ttl_ms": self.lock_ttl_ms,
            "orphaned_keys": {iso(d): keys for d, keys in sorted(self.orphaned.items())},
            "refused_writes": self.refused,
            "newest_row": self.newest_row,
            "pending_migrations": self.pending_migrations,
            "earliest_error": self.earliest_error,
            "unknown_keys": list(self.unknown_keys),
            "durability": self.durability,
        }


def status(side: RedisSide, store: Store | None, now: float | None = None) -> Status:
    """Earliest, last stable date, backlog, orphaned keys, lock holder, newest row.

    Orphaned keys are live or claim keys of dates a normal run will not visit:
    below ``earliest``, or any dated key when ``earliest`` is absent. Found with
    SCAN, so this costs O(keyspace).
    """
    now = time.time() if now is None else now
    stable = last_stable(now)
    earliest_error = None
    try:
        earliest = side.read_earliest()
    except DataError as exc:  # status must still show everything else
        earliest, earliest_error = None, str(exc)
    holder, ttl = side.lock_holder()
    dated, unknown = side.scan_keys()
    orphaned = {
        d: sorted(keys)
        for d, keys in dated.items()
        if earliest is None or d < earliest or d > today(now) + 1
    }
    newest = None
    pending: list[str] = []
    if store is not None:
        pending = pending_migrations(store)
        if not pending:
            rows = store.rows(None, None)
            newest = rows[-1].retrieved_for if rows else None
    backlog = 0 if earliest is None else max(0, stable - earliest + 1)
    refused = side.refusals()
    return Status(
        earliest,
        stable,
        backlog,
        holder,
        ttl,
        orphaned,
        refused,
        newest,
        pending,
        earliest_error,
        tuple(unknown),
        _durability(side),
    )


def _durability(side: RedisSide) -> str:
    fence = side.resolve_fence("auto")
    return fence.description + (f"; WARNING: {fence.warning}" if fence.warning else "")


PRUNE_MIN_AGE_DAYS = 7
"""Ledger entries younger than this are never pruned (see ``prune_ledger``)."""


@dataclass(frozen=True)
class PruneReport:
    """What ``prune_ledger`` removed and what it kept back."""

    before: str
    deleted: int
    kept_in_redis: int

    def as_dict(self) -> dict[str, object]:
        return {"before": self.before, "deleted": self.deleted, "kept_in_redis": self.kept_in_redis}


def prune_ledger(
    side: RedisSide, store: Store, before: int, now: float | None = None
) -> PruneReport:
    """Delete ledger entries of dates before ``before`` that can no longer matter.

    The ledger is what makes a resent or repeated commit of a claim add nothing;
    an entry matters as long as its claim can still come back. So an entry is
    kept when (1) its claim id is in a claim key in Redis right now (a pending
    claim: dropping its id would let it be added twice), or (2) it was applied
    less than 7 days ago (a failover that lost a release could bring its claim
    back). ``before`` must be a stable date.
    """
    now = time.time() if now is None else now
    if before > last_stable(now) + 1:
        raise ConfigError("--before", iso(before), f"a date up to {iso(last_stable(now) + 1)}")
    live_ids = side.claim_ids()
    cutoff = now - PRUNE_MIN_AGE_DAYS * 86400
    found = store.read(
        f"SELECT claim_id FROM {family.CLAIMS_TABLE} WHERE retrieved_for < ? AND applied_at < ?",
        (iso(before), cutoff),
    )
    doomed = [str(r[0]) for r in found if str(r[0]) not in live_ids]
    kept = len(found) - len(doomed)
    deleted = 0
    for start in range(0, len(doomed), 500):  # bounded statements, one transaction each
        chunk = doomed[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        deleted += store.execute(
            f"DELETE FROM {family.CLAIMS_TABLE} WHERE claim_id IN ({marks})", tuple(chunk)
        )
    return PruneReport(iso(before), deleted, kept)
