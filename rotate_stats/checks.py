"""``check`` and ``status``: read-only views over stored rows and pending Redis dates."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field

from . import family
from .database import RAISE_WATERMARK, Statement, Store, pending_migrations
from .dates import iso, last_stable, parse_iso
from .errors import ConfigError, DataError, LockHeld
from .health import (
    STALE_AFTER_DAYS,
    backlog_dates,
    bad_date,
    eviction_verdict,
    is_stale,
    newest_row,
    orphan_dates,
    orphan_message,
    redis_cli,
)
from .invariants import Finding, Invariant, check_day
from .invocation import command
from .redis_side import RedisSide
from .report import BadDate, ExitCode


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
class StatusLimits:
    """Thresholds past which ``status`` reports a problem and exits 1 (README "Monitoring").

    Each has an environment variable; see ``settings.ENVIRONMENT``.
    """

    backlog_days: int = 2
    """``ROTATE_STATS_ALERT_BACKLOG_DAYS``: more stable dates than this still in Redis.
    Right before the nightly run the backlog is 1; 2 means one night was missed."""
    stale_after_days: int = STALE_AFTER_DAYS
    """``ROTATE_STATS_STALE_AFTER_DAYS``: the newest row lags the last stable date by more."""
    stuck_claim_after: float = 3600.0
    """``ROTATE_STATS_STUCK_CLAIM_AFTER``: seconds a claim may sit untouched while no run
    holds the lock before it counts as stuck (a run that failed after claiming)."""
    lock_ttl: float = 300.0
    """``ROTATE_STATS_LOCK_TTL``: a lock without expiry, or with more time left than this,
    is stale: it would block every run (exit 75) for longer than a run may hold it."""
    fence: str = "auto"
    """``ROTATE_STATS_REDIS_FENCE``: the durability fence as the runs use it."""
    allow_eviction: bool = False
    """``ROTATE_STATS_ALLOW_EVICTION``: an ``allkeys-*`` policy is no problem (acknowledged)."""
    max_backlog_days: int = 3660
    """``ROTATE_STATS_MAX_BACKLOG_DAYS``: the ranges the orphan hint splits into."""


@dataclass(frozen=True)
class ClaimInfo:
    """A claim in Redis: a date whose counts a run took and has not released yet."""

    unix_date: int
    idle_seconds: int | None
    """Seconds since a run cut or picked up the claim (OBJECT IDLETIME of its id key, read
    without touching it; status never reads the id itself, which would reset this). None
    where Redis does not track it (an LFU maxmemory-policy)."""
    stuck: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "date": iso(self.unix_date),
            "idle_seconds": self.idle_seconds,
            "stuck": self.stuck,
        }


@dataclass(frozen=True)
class Problem:
    """One reason ``status`` is not healthy: a stable ``check`` name and what to do."""

    check: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "detail": self.detail}


@dataclass(frozen=True)
class Status:
    """Where rotation stands, and what an operator should be alerted about."""

    earliest: int | None
    last_stable: int
    backlog: int
    """Stable dates from ``earliest`` on that still have keys (``health.backlog_dates``)."""
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
    claims: tuple[ClaimInfo, ...] = ()
    lock_idle_seconds: int | None = None
    backlog_list: tuple[int, ...] = ()
    """The backlog's dates."""
    bad_dates: tuple[BadDate, ...] = ()
    """Stable dates whose keys hold bad data: no run can rotate them until repaired."""
    earliest_held: str | None = None
    """Why ``earliest`` stands at a stable date (a run would have moved it on), or None."""
    maxmemory_policy: str | None = None
    eviction: Problem | None = None
    fence_problem: Problem | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def exit_code(self) -> ExitCode:
        """0 healthy, 1 at least one problem (``problems`` says which)."""
        return ExitCode.FAILURE if self.problems else ExitCode.OK

    def as_dict(self) -> dict[str, object]:
        return {
            "healthy": not self.problems,
            "problems": [p.as_dict() for p in self.problems],
            "exit_code": int(self.exit_code),
            "earliest": None if self.earliest is None else iso(self.earliest),
            "earliest_unix_date": self.earliest,
            "last_stable": iso(self.last_stable),
            "backlog_dates": self.backlog,
            "backlog": [iso(d) for d in self.backlog_list],
            "earliest_held_by": self.earliest_held,
            "bad_dates": [b.as_dict() for b in self.bad_dates],
            "maxmemory_policy": self.maxmemory_policy,
            "lock_holder": self.lock_holder,
            "lock_ttl_ms": self.lock_ttl_ms,
            "lock_idle_seconds": self.lock_idle_seconds,
            "claims": [c.as_dict() for c in self.claims],
            "orphaned_keys": {iso(d): keys for d, keys in sorted(self.orphaned.items())},
            "refused_writes": self.refused,
            "newest_row": self.newest_row,
            "pending_migrations": self.pending_migrations,
            "earliest_error": self.earliest_error,
            "unknown_keys": list(self.unknown_keys),
            "durability": self.durability,
        }


def status(
    side: RedisSide,
    store: Store | None,
    now: float | None = None,
    limits: StatusLimits | None = None,
) -> Status:
    """Earliest, last stable date, backlog, orphaned keys, lock holder, claims, newest
    row, and the problems among them (``limits``).

    Orphaned keys are live or claim keys of stable dates a normal run will not visit
    (``health.orphan_dates``: the run's rule). The backlog is the stable dates from
    ``earliest`` on that have keys (``health.backlog_dates``); those and the orphaned
    dates are read (``peek``) to name every bad value. Keys are found with SCAN, so
    this costs O(keyspace), plus reading the backlog. Reads only: it changes nothing
    in Redis (the claims' idle times are read before their ids) nor in the database.
    """
    now = time.time() if now is None else now
    limits = limits or StatusLimits()
    stable = last_stable(now)
    earliest_error = None
    try:
        earliest = side.read_earliest()
    except DataError as exc:  # status must still show everything else
        earliest, earliest_error = None, str(exc)
    lock_idle = _idle_seconds(side, [family.LOCK_KEY])[0][1]  # before lock_holder's GET
    holder, ttl = side.lock_holder()
    if holder is None:
        lock_idle = None
    dated, unknown = side.scan_keys()
    orphaned = {d: sorted(dated[d]) for d in orphan_dates(dated, earliest, stable)}
    backlog = backlog_dates(dated, earliest, stable)
    claims = _claims(side, dated, holder is None, limits.stuck_claim_after)
    newest = None
    pending: list[str] = []
    if store is not None:
        pending = pending_migrations(store)
        if not pending:
            newest = newest_row(store)
    refused = side.refusals()
    bad = _bad_dates(side, sorted(set(backlog) | set(orphaned)))
    policy = side.config("maxmemory-policy")
    refusal, _ = eviction_verdict(policy, limits.allow_eviction)
    durability, fence_problem = _durability(side, limits.fence)
    found = Status(
        earliest,
        stable,
        len(backlog),
        holder,
        ttl,
        orphaned,
        refused,
        newest,
        pending,
        earliest_error,
        tuple(unknown),
        durability,
        claims,
        lock_idle,
        tuple(backlog),
        bad,
        _earliest_held(earliest, stable, dated, bad, claims),
        policy,
        None if refusal is None else Problem("eviction", f"{refusal}: every run refuses to start"),
        fence_problem,
    )
    return dataclasses.replace(
        found, problems=tuple(_problems(found, limits, redis_cli(side.client)))
    )


def _idle_seconds(side: RedisSide, keys: list[str]) -> list[tuple[bool, int | None]]:
    """(exists, OBJECT IDLETIME) of each key; the idle time is None where Redis does not
    track it (an LFU maxmemory-policy). OBJECT does not touch the key: reading it does
    not reset what it measures (a GET would)."""
    pipe = side.client.pipeline(transaction=False)
    for key in keys:
        pipe.object("idletime", key)
    replies = pipe.execute(raise_on_error=False) if keys else []
    out: list[tuple[bool, int | None]] = []
    for reply in replies:
        if reply is None:
            out.append((False, None))  # no such key
        elif isinstance(reply, int) and not isinstance(reply, bool):
            out.append((True, reply))
        else:  # an error reply: idle time not tracked
            out.append((True, None))
    return out


def _claims(
    side: RedisSide, dated: dict[int, list[str]], lock_free: bool, stuck_after: float
) -> tuple[ClaimInfo, ...]:
    """Every claim in Redis (from the keys the scan found), oldest date first."""
    dates = sorted(d for d, keys in dated.items() if family.claim_id_key(d) in keys)
    out: list[ClaimInfo] = []
    for start in range(0, len(dates), 1000):
        chunk = dates[start : start + 1000]
        found = _idle_seconds(side, [family.claim_id_key(d) for d in chunk])
        for d, (exists, seconds) in zip(chunk, found, strict=True):
            if not exists:
                continue  # released since the scan
            # no run holds the lock, so nobody is working on it; unknown age counts as old
            stuck = lock_free and (seconds is None or seconds >= stuck_after)
            out.append(ClaimInfo(d, seconds, stuck))
    return tuple(out)


def _bad_dates(side: RedisSide, dates: list[int]) -> tuple[BadDate, ...]:
    """The dates among ``dates`` whose keys hold bad data (read-only, 31 dates a round)."""
    out: list[BadDate] = []
    for start in range(0, len(dates), 31):
        chunk = dates[start : start + 31]
        for d, found in zip(chunk, side.peek_each(chunk), strict=True):
            if isinstance(found, DataError):
                out.append(bad_date(d, found, side.client))
    return tuple(out)


def _earliest_held(
    earliest: int | None,
    stable: int,
    dated: dict[int, list[str]],
    bad: tuple[BadDate, ...],
    claims: tuple[ClaimInfo, ...],
) -> str | None:
    """Why ``earliest`` stands at a stable date, which a run would have moved past."""
    if earliest is None or earliest > stable:
        return None
    held = next((b for b in bad if b.unix_date == earliest), None)
    if held is not None:
        where = held.key if held.field is None else f"{held.key} field {held.field!r}"
        return f"bad data at {where} (found {held.value!r}, expected {held.expected})"
    if any(c.unix_date == earliest for c in claims):
        return "a claim no run has released yet (see claims)"
    if earliest in dated:
        return "keys the next run rotates (late writes, or no run since they came)"
    return "nothing: no keys at that date (a writer lowered it); the next run moves it on"


def _problems(st: Status, limits: StatusLimits, cli: str) -> list[Problem]:
    out: list[Problem] = []
    if st.pending_migrations:
        out.append(
            Problem(
                "not-migrated",
                f"pending migrations {', '.join(st.pending_migrations)}: "
                f"run `{command('migrate')}`",
            )
        )
    if st.earliest_error:
        out.append(Problem("earliest", st.earliest_error))
    if st.eviction is not None:
        out.append(st.eviction)
    if st.fence_problem is not None:
        out.append(st.fence_problem)
    out += [Problem("bad-data", b.describe()) for b in st.bad_dates]
    if st.orphaned:
        keys = sum(len(k) for k in st.orphaned.values())
        message = orphan_message(sorted(st.orphaned), keys, st.earliest, limits.max_backlog_days)
        out.append(Problem("orphaned-keys", message))
    if st.backlog > limits.backlog_days:
        out.append(Problem("backlog", _backlog_detail(st, limits)))
    newest = st.newest_row
    if newest is not None and is_stale(newest, st.last_stable, limits.stale_after_days):
        out.append(
            Problem(
                "stale-newest-row",
                f"the newest row is {st.newest_row}, the last stable date {iso(st.last_stable)} "
                f"(more than ROTATE_STATS_STALE_AFTER_DAYS={limits.stale_after_days} days): "
                "wrong Redis database, or the job is not running?",
            )
        )
    stuck = [c for c in st.claims if c.stuck]
    if stuck:
        shown = ", ".join(iso(c.unix_date) for c in stuck[:5]) + (", ..." if len(stuck) > 5 else "")
        out.append(
            Problem(
                "stuck-claims",
                f"{len(stuck)} claim(s) left by a run that failed after claiming ({shown}), "
                f"untouched for {limits.stuck_claim_after:g}s or more with no run holding the "
                f"lock: the next run commits them; run `{command()}` and read its error",
            )
        )
    stale_lock = _stale_lock(st, limits.lock_ttl, cli)
    if stale_lock:
        out.append(Problem("stale-lock", stale_lock))
    return out


def _backlog_detail(st: Status, limits: StatusLimits) -> str:
    """What the backlog means: the nightly run is asked about only when the newest row
    says it is late; otherwise the dates are held by bad data or wait for the next run."""
    dates = [iso(d) for d in st.backlog_list]
    shown = ", ".join(dates[:5]) + (f" and {len(dates) - 5} more" if len(dates) > 5 else "")
    head = (
        f"{st.backlog} stable date(s) with keys still in Redis ({shown}; more than "
        f"ROTATE_STATS_ALERT_BACKLOG_DAYS={limits.backlog_days})"
    )
    newest = st.newest_row
    if newest is not None and is_stale(newest, st.last_stable, limits.stale_after_days):
        return (
            f"{head}, and the newest row is {newest}: is the nightly run running? see its "
            f"log, then `{command()}`"
        )
    bad = {b.unix_date for b in st.bad_dates}
    held = sum(d in bad for d in st.backlog_list)
    why = f"{held} held by bad data (see bad-data), " if held else ""
    if newest is not None:
        runs = f"the nightly run is keeping up (newest row {newest})"
    elif st.pending_migrations:
        runs = "the database is not migrated: whether the nightly run is late is unknown"
    else:
        runs = "no row to compare (no database given, or an empty table): whether the "
        runs += "nightly run is late is unknown"
    return f"{head}: {why}{runs}; the next run (`{command()}`) rotates what it can"


def _stale_lock(st: Status, lock_ttl: float, cli: str) -> str:
    """Why the held lock will not go away by itself in time, or ""."""
    if st.lock_holder is None or st.lock_ttl_ms is None:
        return ""
    why = ""
    if st.lock_ttl_ms < 0:
        why = "it has no expiry"
    elif st.lock_ttl_ms > lock_ttl * 1000 + 1000:
        why = f"it expires in {st.lock_ttl_ms / 1000:.0f}s, more than the lock TTL"
    # A lock within the TTL needs no more checks: a run that stops refreshing it (hung,
    # killed) loses it within the TTL. Its idle time is shown, not judged: status's own
    # GET of the lock resets it.
    if not why:
        return ""
    return (
        f"the lock {family.LOCK_KEY} held by {st.lock_holder!r} is stale: {why} "
        f"(ROTATE_STATS_LOCK_TTL={lock_ttl:g}s); every run exits 75 meanwhile. If no run is "
        f"alive (ps, journalctl), delete it: {cli} DEL {family.LOCK_KEY}"
    )


def _durability(side: RedisSide, setting: str) -> tuple[str, Problem | None]:
    """The fence the runs use (``ROTATE_STATS_REDIS_FENCE``), and a problem when this
    server cannot give it (every run would stop). An explicit ``none`` is an
    acknowledged choice: its warning is shown as such, not as a WARNING."""
    try:
        fence = side.resolve_fence(setting)
    except ConfigError as exc:
        return f"{setting}: not available on this server", Problem("fence", str(exc))
    if not fence.warning:
        return fence.description, None
    if setting == "none":
        return f"{fence.description}; acknowledged: {fence.warning}", None
    return f"{fence.description}; WARNING: {fence.warning}", None


PRUNE_MIN_AGE_DAYS = 7.0
"""Default of ``ROTATE_STATS_PRUNE_MIN_AGE``: ledger entries younger than this are kept."""


@dataclass(frozen=True)
class PruneReport:
    """What ``prune_ledger`` removed, the watermarks it left, and what it kept and why."""

    before: str
    deleted: int
    watermarked_dates: int
    kept_in_redis: int
    kept_young: int
    kept_unsequenced: int
    min_age_days: float

    def as_dict(self) -> dict[str, object]:
        return {
            "before": self.before,
            "deleted": self.deleted,
            "watermarked_dates": self.watermarked_dates,
            "kept_in_redis": self.kept_in_redis,
            "kept_young": self.kept_young,
            "kept_unsequenced": self.kept_unsequenced,
            "min_age_days": self.min_age_days,
        }

    def describe(self) -> str:
        kept = [
            f"{self.kept_in_redis} whose claims are still in Redis",
            f"{self.kept_young} applied less than {self.min_age_days:g} day(s) ago "
            "(ROTATE_STATS_PRUNE_MIN_AGE)",
            f"{self.kept_unsequenced} whose claim id carries no sequence",
        ]
        head = f"pruned {self.deleted} ledger entries of dates before {self.before}"
        if self.deleted:
            head += f" (watermarks raised on {self.watermarked_dates} date(s))"
        elif not (self.kept_in_redis or self.kept_young or self.kept_unsequenced):
            head += ": the ledger has no entry before that date"
        return f"{head}; kept {', '.join(kept)}"


def prune_ledger(
    side: RedisSide,
    store: Store,
    before: int,
    now: float | None = None,
    *,
    min_age_days: float = PRUNE_MIN_AGE_DAYS,
    run_id: str | None = None,
    lock_ttl_ms: int = 300_000,
) -> PruneReport:
    """Delete ledger entries of dates before ``before``, leaving a watermark behind.

    The ledger is what makes a resent or repeated commit of a claim add nothing.
    An entry is deleted together with raising its date's watermark - the highest
    claim sequence pruned for that (family, date) - in one transaction, and a
    commit refuses any claim at or below its date's watermark that the ledger
    lacks (``database.MERGE_CLAIM``, ``rotate._watermarked``). So pruning never
    makes an applied claim committable again, whether a slow run still holds it
    or a Redis restored from an old snapshot brings it back.

    Kept all the same: an entry whose claim id is in Redis right now (its run
    finds it applied and releases it, rather than meeting the watermark), one
    applied less than ``min_age_days`` ago, and one whose id carries no sequence
    (nothing to put in a watermark). Takes the run lock (LockHeld if another run
    holds it): pruning while a run walks is safe, but says less.
    ``before`` must be at most the day after the last stable date.
    """
    now = time.time() if now is None else now
    if before > last_stable(now) + 1:
        raise ConfigError("--before", iso(before), f"a date up to {iso(last_stable(now) + 1)}")
    token = run_id or f"prune-{uuid.uuid4().hex}"
    if not side.acquire_lock(token, lock_ttl_ms):
        holder, ttl = side.lock_holder()
        raise LockHeld(family.LOCK_KEY, holder, ttl)
    try:
        live_ids = side.claim_ids()
        cutoff = now - min_age_days * 86400
        found = store.read(
            f"SELECT claim_id, retrieved_for, applied_at, sequence FROM {family.CLAIMS_TABLE} "
            "WHERE family = ? AND retrieved_for < ? ORDER BY retrieved_for, claim_id",
            (family.NAME, iso(before)),
        )
        in_redis = young = unsequenced = 0
        doomed: list[tuple[str, str, int]] = []
        for claim_id, date, applied_at, sequence in found:
            if str(claim_id) in live_ids:
                in_redis += 1
            elif float(applied_at) >= cutoff:
                young += 1
            elif sequence is None:
                unsequenced += 1
            else:
                doomed.append((str(claim_id), str(date), int(sequence)))
        deleted = 0
        marked: set[str] = set()
        for start in range(0, len(doomed), 500):  # bounded requests, each one transaction
            chunk = doomed[start : start + 500]
            highest: dict[str, int] = {}
            for _, date, sequence in chunk:
                highest[date] = max(sequence, highest.get(date, sequence))
            statements: list[Statement] = [
                (RAISE_WATERMARK, (family.NAME, date, str(sequence), now))
                for date, sequence in highest.items()
            ]
            marks = ", ".join("?" for _ in chunk)
            statements.append(
                (
                    f"DELETE FROM {family.CLAIMS_TABLE} WHERE claim_id IN ({marks})",
                    tuple(claim_id for claim_id, _, _ in chunk),
                )
            )
            deleted += store.transaction(statements)[-1]
            marked.update(highest)
            side.refresh_lock(token, lock_ttl_ms)
    finally:
        side.release_lock(token)
    kept = (in_redis, young, unsequenced)
    return PruneReport(iso(before), deleted, len(marked), *kept, min_age_days)
