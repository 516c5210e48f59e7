"""The walk: plan -> (per batch) claim -> read -> check -> prove and fence -> commit -> release.

Why nothing is lost or counted twice (DESIGN §6):

* A date's live keys are renamed to claim keys atomically (``claim.lua``);
  writes arriving later land in fresh live keys and are rotated by a later run.
* A claim is added to its row in the same transaction that records its id in
  the ledger, and only if the id is not there yet (``database``). Re-running,
  resending or overlapping commits of one claim therefore add it once.
* Before the commit, the server about to be fenced proves that it holds each
  claim as it was read - same claim id, every claim hash as long as the fields
  read - and the fence runs on that same connection (``RedisSide.prove``). A
  claim that server lacks (a failover behind one address lost it; its counts
  are in that server's live keys) is not committed; a read that was incomplete
  or came from another server process is read again.
* A claim whose sequence is at or below its date's watermark (ledger entries
  pruned up to there) and whose id the ledger lacks is never committed: it is
  reported, and its keys stay (``_watermarked``).
* Claim keys are deleted only after that commit, and only if the claim id is
  still the one committed (``release.lua``); a crash between commit and release
  leaves the claim for the next run, which finds it in the ledger and just
  releases it. Per date, a new claim is only cut after the previous one was
  released, so claims are applied strictly in order.
* ``earliest`` only moves past a date whose keys are all gone.

The lock only saves work; correctness does not depend on it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import redis

from . import family
from .database import (
    SELECT_LEDGER_IDS,
    SELECT_WATERMARKS,
    DateCommit,
    Store,
    StoredRow,
    overflow,
    require_migrated,
    sequence_floor,
)
from .dates import iso, last_stable, parse_iso, today
from .errors import (
    ClaimBelowWatermark,
    ClockSkew,
    ConfigError,
    DataError,
    LockHeld,
    ReadNotProven,
    RotateStatsError,
)
from .health import (
    STALE_AFTER_DAYS,
    bad_date,
    bad_dates_summary,
    eviction_verdict,
    oldest_row,
    orphan_dates,
    orphan_message,
    stale_newest_row,
)
from .invariants import DayCounts, Finding, check_day
from .redis_side import Claim, Cut, Fence, Proof, RedisSide, refuse_replica
from .report import DateOutcome, DateState, ExitCode, RotationReport

log = logging.getLogger("rotate_stats")


@dataclass(frozen=True)
class RotateOptions:
    """How to run. ``first``/``last`` (unix dates) pick an explicit range; None walks
    from ``earliest`` to the last stable date."""

    first: int | None = None
    last: int | None = None
    strict: bool = False
    dry_run: bool = False
    batch_size: int = 31
    lock_ttl_ms: int = 300_000
    max_backlog_days: int = 3660
    scan_orphans: bool = True
    """Normal runs SCAN for stats keys no run would visit (O(keyspace), see _orphans)."""
    max_clock_skew: float = 300.0
    """Seconds the job's clock may differ from Redis ``TIME``; 0 turns the check off."""
    allow_eviction: bool = False
    """Run even under ``maxmemory-policy allkeys-*``, which may evict a pending claim."""
    fence: str = "auto"
    """Durability fence before each commit: auto, none, aof or replicas:N (redis_side.Fence)."""
    fence_timeout_ms: int = 10_000
    max_fields: int = 50_000
    """Breakdown fields read and committed per group (a day wider than this is a group
    alone): bounds the job's memory whatever the width of a day."""
    max_commit_bytes: int = 8 << 20
    """About this many bytes of breakdown text per database transaction (a date larger
    than this is committed alone): bounds one rqlite request however long the free-form
    ``failed`` reasons are, which a field count alone does not."""
    stale_after_days: int = STALE_AFTER_DAYS
    """With ``earliest`` absent, a newest row further behind the last stable date than
    this is a failure (wrong Redis database?), not "nothing to rotate" (issue 10, #8)."""
    progress: Callable[[int, int], None] | None = None
    """Called as ``progress(dates done, dates planned)`` after each batch of the walk."""
    on_report: Callable[[RotationReport], None] | None = None
    """Called with the run's report as soon as it exists (it fills in as the run goes
    on): a caller that a signal stops mid-run still has what was done (the metrics)."""


def plan(side: RedisSide, options: RotateOptions, now: float) -> tuple[list[int], int | None]:
    """The dates this run covers, and ``earliest`` as read.

    Raises ConfigError for an explicit date that is not stable yet and DataError for
    a garbage ``earliest`` or a plan longer than ``max_backlog_days``.
    """
    stable = last_stable(now)
    earliest = side.read_earliest()
    if options.first is not None:
        last = options.last if options.last is not None else options.first
        for flag, value in (("--from/--date", options.first), ("--to/--date", last)):
            if value > stable:
                raise ConfigError(
                    flag,
                    iso(value),
                    f"a date on or before {iso(stable)} (today and yesterday in "
                    "America/Los_Angeles can still change)",
                )
        if last < options.first:
            raise ConfigError("--to", iso(last), f"a date on or after --from {iso(options.first)}")
        if options.first < 0:
            raise ConfigError("--from/--date", iso(options.first), "a date on or after 1970-01-01")
        first = options.first
    else:
        if earliest is None:
            return [], None
        if earliest > today(now) + 1:
            raise DataError(
                family.EARLIEST_KEY,
                None,
                earliest,
                f"a unix date no later than tomorrow ({today(now) + 1})",
                "writers only lower it; fix or delete the key after checking for stats keys",
            )
        first, last = earliest, stable
    count = last - first + 1  # checked before any list of dates is built
    if count > options.max_backlog_days and options.first is not None:
        raise ConfigError(  # a bad flag: exit 2
            "--from/--to" if last != first else "--date",
            f"{iso(first)}..{iso(last)} ({count} dates)",
            f"a range of at most {options.max_backlog_days} dates "
            "(ROTATE_STATS_MAX_BACKLOG_DAYS): split it into smaller ranges, or raise the limit",
        )
    if count > options.max_backlog_days:
        raise DataError(
            family.EARLIEST_KEY,
            None,
            f"{iso(first)} ({count} dates to rotate)",
            f"at most {options.max_backlog_days} dates per run",
            "raise ROTATE_STATS_MAX_BACKLOG_DAYS if this backlog is real",
        )
    return list(range(first, last + 1)), earliest


def rotate(
    client: redis.Redis,
    store: Store,
    options: RotateOptions | None = None,
    *,
    now: float | None = None,
    run_id: str | None = None,
) -> RotationReport:
    """Rotate stable dates from Redis into the store; see the module docstring.

    Raises ConfigError, ClockSkew (this clock and Redis ``TIME`` disagree, checked
    when ``now`` is not given), NotMigrated, DataError (garbage ``earliest``) or
    LockHeld before anything is touched. Errors met while walking (bad data on a date, the
    store failing) end the walk: they are in ``report.error`` and every date
    before them is done.
    """
    options = options or RotateOptions()
    side = RedisSide(client)
    if now is None:
        now = time.time()
        if options.max_clock_skew > 0:  # an explicit ``now`` (tests, replays) is trusted
            server = side.server_time()
            if abs(now - server) > options.max_clock_skew:
                raise ClockSkew(now, server, options.max_clock_skew)
    run_id = run_id or uuid.uuid4().hex
    report = RotationReport(run_id, started_at=now, dry_run=options.dry_run, strict=options.strict)
    if options.on_report is not None:
        options.on_report(report)
    require_migrated(store)
    if not options.dry_run:
        refuse_replica(side)
    refusal, eviction = eviction_verdict(side.config("maxmemory-policy"), options.allow_eviction)
    if refusal is not None:
        raise refusal
    if eviction:
        report.notes.append(eviction)
        log.warning("%s", eviction)
    dates, earliest = plan(side, options, now)
    if options.first is not None:
        dates = _skip_before_first_row(side, store, dates, report)
    report.earliest_before = earliest
    if dates:
        report.first_date, report.last_date = dates[0], dates[-1]
    elif options.first is None:
        report.notes.append(_nothing_to_do(earliest, now))
        if earliest is None:  # looks like success; may be the wrong Redis database
            report.error = stale_newest_row(store, client, now, options.stale_after_days)
            if report.error:
                log.error("%s", report.error)
    fence = side.resolve_fence(options.fence)
    report.notes.append(f"durability fence: {fence.description}")
    if fence.warning:
        report.notes.append(fence.warning)
        log.warning("%s", fence.warning)
    if options.dry_run:
        _dry_run(side, store, dates, options, report)
    elif dates:
        _walk(side, store, dates, options, report, fence)
    orphans, unknown = "", ""
    if options.first is None and options.scan_orphans:
        orphans, unknown = _orphans(side, now, options.max_backlog_days)
    if unknown:
        report.notes.append(unknown)
        log.warning("%s", unknown)
    if orphans:
        report.notes.append(orphans)
        log.error("%s", orphans)
        if report.error is None:
            report.error = orphans
    report.finished_at = time.time()
    return report


def _walk(
    side: RedisSide,
    store: Store,
    dates: list[int],
    options: RotateOptions,
    report: RotationReport,
    fence: Fence,
) -> None:
    """Lock, then rotate the dates batch by batch; errors end the walk into the report."""
    run_id = report.run_id
    if not side.acquire_lock(run_id, options.lock_ttl_ms):
        holder, ttl = side.lock_holder()
        raise LockHeld(family.LOCK_KEY, holder, ttl)
    try:
        walk = _Walk(side, store, options, report, fence, *sequence_floor(store))
        for start in range(0, len(dates), options.batch_size):
            if not side.refresh_lock(run_id, options.lock_ttl_ms):
                done = len(report.outcomes)
                report.error = (
                    f"lost the lock {family.LOCK_KEY} to another run (it expired: raise "
                    f"ROTATE_STATS_LOCK_TTL?); stopped after {done} date(s), all committed"
                )
                # 75 means "nothing done, try later"; after work was done it is a failure
                report.error_exit = ExitCode.FAILURE if done else ExitCode.LOCKED
                break
            batch = dates[start : start + options.batch_size]
            log.debug(
                "batch planned: %d date(s) %s..%s",
                len(batch),
                iso(batch[0]),
                iso(batch[-1]),
                extra={"first_date": iso(batch[0]), "last_date": iso(batch[-1])},
            )
            # a bad date stays in Redis (`earliest` stays there); the walk goes on
            proceed, again, bad = _rotate_batch(walk, batch)
            if proceed and again and not bad:
                # writes that landed while an earlier run's claim was pending, or
                # counts whose claim a failed-over Redis lost, are in live keys:
                # claim them now, so one run finishes the batch
                proceed, _, bad = _rotate_batch(walk, batch, retry=True)
            _report_bad(side, report, bad)
            if options.progress is not None:
                options.progress(min(start + options.batch_size, len(dates)), len(dates))
            if not proceed:
                break
    except RotateStatsError as exc:
        report.error = str(exc)
        log.error("%s", exc)
    finally:
        side.release_lock(run_id)
    if report.bad_dates and report.error is None:
        report.error = bad_dates_summary(report.bad_dates)


def _report_bad(side: RedisSide, report: RotationReport, bad: dict[int, DataError]) -> None:
    """Name every bad date of a batch, with its repair commands: in the log now, in the
    report (text, JSON, metrics) at the end (issue 17, item 2)."""
    for d in sorted(bad):
        found = bad_date(d, bad[d], side.client)
        report.bad_dates.append(found)
        log.error(
            "%s",
            found.describe(),
            extra={"date": iso(d), "key": found.key, "field": found.field},
        )


def _orphans(side: RedisSide, now: float, max_days: int) -> tuple[str, str]:
    """(error, warning): stats keys no normal run will visit; unknown dated keys.

    Which dates are orphaned, and the command that rotates them, is
    ``health.orphan_dates`` / ``orphan_message`` (``status`` says the same). Nothing
    is changed for them. A key is only reported if it still exists, and is still
    below ``earliest``, after the scan: a writer between its increment and its
    ``earliest`` update is not an orphan. Keys of the namespace that this job does
    not know (``...:{d}:extra:cancelled``, a date past 9999) are only a warning: no
    command of ours would rotate them. Costs one SCAN of the keyspace.
    """
    dated, unknown = side.scan_keys()
    warning = ""
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        warning = (
            f"{len(unknown)} key(s) in the stats namespace are not stats keys this job knows "
            f"and are left alone: {shown}"
        )
    try:
        earliest = side.read_earliest()  # as it is after the walk and the scan
    except DataError:
        return "", warning  # reported by the next run's plan
    candidates = {d: dated[d] for d in orphan_dates(dated, earliest, last_stable(now))}
    still = side.existing([k for keys in candidates.values() for k in keys])
    found = sorted(d for d, keys in candidates.items() if any(k in still for k in keys))
    if not found:
        return "", warning
    keys = sum(1 for d in found for k in candidates[d] if k in still)
    return orphan_message(found, keys, earliest, max_days), warning


def _skip_before_first_row(
    side: RedisSide, store: Store, dates: list[int], report: RotationReport
) -> list[int]:
    """An explicit range without its leading dates that have no keys and come before
    the table's first row (all of them on an empty table): those are left alone, and a
    note says so. A zero row is written for a date without keys only from the first row
    on (issue 17, item 5b): before it, "no traffic" and "data never reached Redis"
    cannot be told apart. Once a date with keys is rotated it is the first row, so the
    rest of the range is inside the rule."""
    oldest = oldest_row(store)
    first_row = parse_iso(oldest) if oldest is not None else None
    skip = 0
    while skip < len(dates) and (first_row is None or dates[skip] < first_row):
        chunk = [d for d in dates[skip : skip + 64] if first_row is None or d < first_row]
        have = side.existing([k for d in chunk for k in _all_keys(d)])
        keyed = next((d for d in chunk if any(k in have for k in _all_keys(d))), None)
        if keyed is not None:
            skip = dates.index(keyed)
            break
        skip += len(chunk)
    if skip:
        where = f"the table's first row {oldest}" if oldest else "any row (the table is empty)"
        note = (
            f"{iso(dates[0])}..{iso(dates[skip - 1])}: no keys in Redis and before {where}: "
            "left alone (a date without keys gets a zero row only from the first row to the "
            "last stable date)"
        )
        report.notes.append(note)
        log.warning("%s", note)
    return dates[skip:]


def _all_keys(d: int) -> list[str]:
    return family.live_keys(d) + family.claim_keys(d) + [family.claim_id_key(d)]


def _nothing_to_do(earliest: int | None, now: float) -> str:
    if earliest is None:
        return f"{family.EARLIEST_KEY} is absent: nothing to rotate"
    return (
        f"nothing to rotate: earliest is {iso(earliest)}, "
        f"last stable date is {iso(last_stable(now))}"
    )


@dataclass
class _Walk:
    """What every batch of one walk shares."""

    side: RedisSide
    store: Store
    options: RotateOptions
    report: RotationReport
    fence: Fence
    floor: int
    """The highest claim sequence the database knows (claim.lua's floor)."""
    watermarked: bool
    """The family had watermarks when the walk started (else ``_watermarked`` is skipped:
    the commit's own guard still refuses a claim a racing prune covered)."""


def _rotate_batch(
    walk: _Walk, batch: list[int], retry: bool = False
) -> tuple[bool, bool, dict[int, DataError]]:
    """One batch; returns (go on, run the batch again, the bad dates).

    The batch's dates are claimed in one round trip (RENAMEs), then read,
    checked, proven, committed and released in groups of at most ``max_fields``
    breakdown fields (a group holds at least one date), so memory and the size
    of one database request stay bounded whatever the width of a day.

    The batch is run again when it picked up an earlier run's claim (writes
    that landed meanwhile are in fresh live keys) or when a claim vanished from
    Redis before its commit (a failover: its counts are in the live keys).

    A date that cannot be claimed or parsed is left in (or given back to) Redis
    and the batch's other dates go on; every such date is returned with its
    DataError (all of them: each is reported).
    """
    side, options = walk.side, walk.options
    cuts, errors = side.cut(batch, walk.report.run_id, walk.floor)
    log.debug(
        "claims cut: %d new, %d left by an earlier run, %d without keys, %d bad",
        sum(c.state == "claimed" for c in cuts),
        sum(c.state == "pending" for c in cuts),
        sum(not c.claim_id for c in cuts),
        len(errors),
    )
    state = _BatchState(batch)
    rest = list(cuts)
    go_on, again = True, False
    while rest and go_on:
        group = _take_group(rest, options.max_fields)
        rest = rest[len(group) :]
        go_on, group_again = _rotate_group(walk, group, retry, state, errors)
        again = again or group_again
    _give_back(side, rest)  # after a stop: the fresh claims not reached
    return go_on, again, errors


MAX_PROOF_ROUNDS = 3
"""Reads of a group before its proof may fail for good (a Redis that keeps restarting)."""


@dataclass
class _Decision:
    """What a group's claims would do, before anything is changed."""

    existing: dict[int, StoredRow]
    findings: dict[int, list[Finding]]
    committed: list[Claim]
    give_back: list[Claim]
    """Strict mode: the claims from the first one with findings on."""
    unmergeable: list[tuple[Claim, DataError]]


def _decide(store: Store, claims: list[Claim], options: RotateOptions) -> _Decision:
    existing = _rows_by_date(store, [c.unix_date for c in claims])
    prospective = {c.unix_date: _prospective(c, existing.get(c.unix_date)) for c in claims}
    usable: list[Claim] = []
    unmergeable: list[tuple[Claim, DataError]] = []
    for claim in claims:
        blocker = _unmergeable(claim, existing.get(claim.unix_date), prospective[claim.unix_date])
        if blocker is None:
            usable.append(claim)
        else:  # this date goes back to Redis (a fresh claim) or stays pending; others go on
            unmergeable.append((claim, blocker))
    findings = {d: check_day(d, day) if day is not None else [] for d, day in prospective.items()}
    keep = len(usable)
    if options.strict:
        # A pending claim may already be in the ledger: giving it back to the live
        # keys would count it twice, so strict mode stops only at fresh claims.
        keep = next(
            (i for i, c in enumerate(usable) if c.state != "pending" and findings[c.unix_date]),
            len(usable),
        )
    return _Decision(existing, findings, usable[:keep], usable[keep:], unmergeable)


def _prove(walk: _Walk, cuts: list[Cut], errors: dict[int, DataError]) -> tuple[_Decision, Proof]:
    """Read, decide and prove the group until the server about to be fenced holds every
    claim to commit exactly as read; then the fence has been met on that server.

    A read that was incomplete (fields read differ from the claim hash's length)
    or that came from another server than the proof's (a restart or failover
    between the claim and the proof: every claim is read and proven again) is
    read again, at most ``MAX_PROOF_ROUNDS`` times. Raises FenceNotMet, or
    ReadNotProven when the rounds run out: nothing of the group is committed and
    its claims stay pending for the next run.
    """
    side, report, options = walk.side, walk.report, walk.options
    claims = side.take(cuts, errors)
    by_date = {c.unix_date: c for c in cuts}
    for round_ in range(1, MAX_PROOF_ROUNDS + 1):
        decision = _decide(walk.store, claims, options)
        to_prove = [c for c in decision.committed if c.claim_id]
        if not to_prove:
            return decision, Proof("", {}, frozenset())
        proof = side.prove(to_prove, walk.fence, report.run_id, options.fence_timeout_ms)
        stale = sorted(
            c.unix_date
            for c in to_prove
            if c.unix_date not in proof.missing
            and (c.unix_date in proof.incomplete or c.sources != {proof.identity})
        )
        if not stale:
            return decision, proof
        if round_ == MAX_PROOF_ROUNDS:
            break
        log.warning(
            "%d claim(s) read incompletely or from another Redis server (restart or failover "
            "during the run): reading them again",
            len(stale),
            extra={"dates": [iso(d) for d in stale]},
        )
        # the proof showed that server holds these claim ids: read them there
        again = side.take([replace(by_date[d], identity=proof.identity) for d in stale], errors)
        fresh = {c.unix_date: c for c in again}
        claims = [fresh.get(c.unix_date, c) for c in claims if c.unix_date not in errors]
    raise ReadNotProven([iso(c.unix_date) for c in to_prove], MAX_PROOF_ROUNDS)


def _rotate_group(
    walk: _Walk,
    cuts: list[Cut],
    retry: bool,
    state: _BatchState,
    errors: dict[int, DataError],
) -> tuple[bool, bool]:
    """Read, check, prove, commit and release one group; returns (go on, run again)."""
    side, store, options, report = walk.side, walk.store, walk.options, walk.report
    decision, proof = _prove(walk, cuts, errors)
    for claim, blocker in decision.unmergeable:
        errors[claim.unix_date] = blocker
        _give_back(side, [claim])
    vanished = [c for c in decision.committed if c.unix_date in proof.missing]
    for claim in vanished:
        found = proof.missing[claim.unix_date]
        note = (
            f"{iso(claim.unix_date)}: claim {claim.claim_id} is no longer in Redis "
            f"({'claim ' + found + ' instead' if found else 'no claim there'}): "
            "not committed. Another run finished it, or Redis failed over or restarted and "
            "lost it (its counts are then back in the live keys for the next run)"
        )
        report.notes.append(note)
        log.warning("%s", note)
    committed = [c for c in decision.committed if c.unix_date not in proof.missing]
    for d, error in _watermarked(walk, committed).items():
        errors[d] = error
    committed = [c for c in committed if c.unix_date not in errors]
    findings, existing = decision.findings, decision.existing
    retrieved_at = time.time()
    if committed:
        items = [DateCommit(c.unix_date, c.claim_id, c.day) for c in committed]
        # One transaction per slice: each date's merge and ledger entry stay together,
        # and a crash between slices leaves claims the ledger recognises next run.
        results = [
            result
            for part in _slices_by_bytes(items, options.max_commit_bytes)
            for result in store.commit(part, retrieved_at)
        ]
        log.debug(
            "commit done: %d date(s) %s..%s, %d claim(s) applied",
            len(items),
            iso(items[0].unix_date),
            iso(items[-1].unix_date),
            sum(r.claim_applied for r in results),
        )
        end = state.batch.index(committed[-1].unix_date) + 1
        span = state.batch[state.span_start : end]
        state.span_start = end
        ids = {c.unix_date: c.claim_id for c in committed}
        flags, report.earliest_after = side.release(span, [ids.get(d, "") for d in span])
        by_date = dict(zip(span, flags, strict=True))
        released = [by_date[c.unix_date] for c in committed]
        for claim, result, was_released in zip(committed, results, released, strict=True):
            # a resent request's first attempt applied it: inserted when no row was read before
            created = result.row_created or (result.resent and claim.unix_date not in existing)
            outcome = _outcome(claim, created, result.claim_applied, existing, findings)
            if claim.claim_id and not was_released:
                outcome = _with_detail(outcome, "claim changed before release; left for next run")
            if retry and not claim.claim_id:
                continue  # the first pass already reported this date
            _log_outcome(outcome)
            report.outcomes.append(outcome)
    _give_back(side, decision.give_back)
    go_on = True
    if decision.give_back:
        first = decision.give_back[0]
        outcome = DateOutcome(
            first.unix_date,
            DateState.STOPPED,
            first.day,
            tuple(findings[first.unix_date]),
            first.claim_id,
            "strict: invariant violations; left in Redis",
        )
        _log_outcome(outcome)
        report.outcomes.append(outcome)
        go_on = False
    again = any(c.state == "pending" for c in committed) or any(
        c.state == "claimed" for c in vanished
    )
    return go_on, again


def _watermarked(walk: _Walk, claims: Sequence[Claim]) -> dict[int, DataError]:
    """Claims the ledger may have forgotten: sequence at or below their date's watermark,
    id not in the ledger. Either an applied claim whose entry prune-ledger removed (a
    slow run, or Redis restored from an old snapshot, brought it back), or a new claim
    drawn while Redis's sequence counter stood below the watermark. The job cannot tell
    which, so it commits nothing for such a date and leaves its keys (docs/OPERATIONS.md,
    "A claim below its date's watermark")."""
    with_ids = [c for c in claims if c.claim_id]
    if not with_ids or not walk.watermarked:
        return {}
    first, last = iso(with_ids[0].unix_date), iso(with_ids[-1].unix_date)
    found = walk.store.read(SELECT_WATERMARKS, (family.NAME, first, last))
    marks = {str(d): int(m) for d, m in found}
    suspects = []
    for claim in with_ids:
        mark = marks.get(iso(claim.unix_date))
        sequence = family.claim_sequence(claim.claim_id)
        if mark is not None and (sequence is None or sequence <= mark):
            suspects.append((claim, mark))
    if not suspects:
        return {}
    ids = json.dumps([c.claim_id for c, _ in suspects])
    applied = {str(r[0]) for r in walk.store.read(SELECT_LEDGER_IDS, (ids,))}
    return {
        claim.unix_date: ClaimBelowWatermark(
            family.claim_id_key(claim.unix_date),
            None,
            claim.claim_id,
            f"a claim sequence above {mark}, the watermark of {iso(claim.unix_date)} in "
            f"{family.WATERMARKS_TABLE}, or a claim id in the ledger",
            "prune-ledger removed this date's ledger entries up to that sequence: the claim is "
            "either one of them, already applied, or new and drawn while Redis's claim counter "
            "stood too low. Nothing was committed and its keys stay; see docs/OPERATIONS.md, "
            "'A claim below its date's watermark'",
        )
        for claim, mark in suspects
        if claim.claim_id not in applied
    }


def _take_group(cuts: Sequence[Cut], max_fields: int) -> list[Cut]:
    """The leading cuts whose fields add up to at most ``max_fields`` (at least one)."""
    total = 0
    for i, cut in enumerate(cuts):
        total += cut.fields
        if i > 0 and total > max_fields:
            return list(cuts[:i])
    return list(cuts)


def commit_bytes(item: DateCommit) -> int:
    """About the bytes one date adds to a commit request, an upper bound in practice:
    the breakdown JSON travels as a string inside the request's JSON, so a key costs
    its characters (6 bytes each when not ASCII: ``\\uXXXX``), escaped quotes, the
    value's 20 digits at most and separators."""
    return 512 + sum(
        (len(key) if key.isascii() else 6 * len(key)) + 32
        for event in family.EVENTS
        for key in item.day.breakdown(event)
    )


def _slices_by_bytes(items: Sequence[DateCommit], max_bytes: int) -> list[list[DateCommit]]:
    """Consecutive slices of at most ``max_bytes`` (by ``commit_bytes``; one date at least)."""
    slices: list[list[DateCommit]] = []
    size = 0
    for item in items:
        cost = commit_bytes(item)
        if not slices or size + cost > max_bytes:
            slices.append([])
            size = 0
        slices[-1].append(item)
        size += cost
    return slices


@dataclass
class _BatchState:
    """Where the next release span of the batch starts (release covers every date
    from there up to the group's last committed one: a date given back in between
    holds ``earliest``)."""

    batch: list[int]
    span_start: int = 0


def _give_back(side: RedisSide, claims: Sequence[Claim | Cut]) -> None:
    """Return fresh claims to the live keys; pending ones (maybe already committed) stay,
    and so does a fresh one another run picked up meanwhile (it may be committing it)."""
    for claim in claims:
        if claim.state == "claimed":
            outcome = side.restore(claim)
            if outcome != "restored":
                log.warning("%s: claim %s kept: %s", iso(claim.unix_date), claim.claim_id, outcome)


def _unmergeable(claim: Claim, row: StoredRow | None, after: DayCounts | None) -> DataError | None:
    """Why this claim cannot be added to its row (a hand-edited row, or a sum past
    64 bits), or None. Checked before the commit; the SQL guards it again."""
    if not claim.claim_id:
        return None
    where = f"{family.TABLE} row {iso(claim.unix_date)}"
    if row is not None and row.problems:
        return DataError(
            where,
            row.problems[0],
            row.details[0],
            "a 64-bit integer count / a JSON object of 64-bit integers, each key once",
            "repair the row; its date's counts stay in Redis until then",
        )
    too_big = overflow(after) if after is not None else None
    if too_big is not None:
        event, key, value = too_big
        return DataError(
            where,
            f"{event}_breakdown[{key!r}]" if key else event,
            value,
            "a merged value within a signed 64-bit integer",
            "the counts in Redis plus the row exceed what the table can hold; "
            "they stay in Redis until the data is repaired",
        )
    return None


def _rows_by_date(store: Store, batch: Sequence[int]) -> dict[int, StoredRow]:
    rows = store.rows(iso(batch[0]), iso(batch[-1]))
    by_iso = {r.retrieved_for: r for r in rows}
    return {d: by_iso[iso(d)] for d in batch if iso(d) in by_iso}


def _prospective(claim: Claim, row: StoredRow | None) -> DayCounts | None:
    """The row as it will be after the commit (None: an existing row stays untouched)."""
    if not claim.claim_id:
        return None if row is not None else DayCounts()
    return claim.day if row is None else row.day.plus(claim.day)


def _outcome(
    claim: Claim,
    row_created: bool,
    applied: bool,
    existing: dict[int, StoredRow],
    findings: dict[int, list[Finding]],
) -> DateOutcome:
    d = claim.unix_date
    found = tuple(findings[d])
    detail = "claim left by an earlier run" if claim.state == "pending" else ""
    if not claim.claim_id:
        state = DateState.ZERO_ROW if row_created else DateState.UNCHANGED
        return DateOutcome(d, state, claim.day, found)
    if not applied:
        row = existing.get(d)
        found = tuple(check_day(d, row.day)) if row is not None else ()
        return DateOutcome(d, DateState.ALREADY_APPLIED, claim.day, found, claim.claim_id, detail)
    state = DateState.INSERTED if row_created else DateState.MERGED
    return DateOutcome(d, state, claim.day, found, claim.claim_id, detail)


def _with_detail(outcome: DateOutcome, detail: str) -> DateOutcome:
    joined = f"{outcome.detail}; {detail}" if outcome.detail else detail
    return DateOutcome(
        outcome.unix_date, outcome.state, outcome.day, outcome.findings, outcome.claim_id, joined
    )


def _log_outcome(outcome: DateOutcome) -> None:
    # a merge adds to the row: its counts are increments, shown with "+"
    sign = "+" if outcome.state is DateState.MERGED else ""
    date = iso(outcome.unix_date)
    # a date without keys is no news: at INFO they would drown the progress bar
    quiet = outcome.state in (DateState.ZERO_ROW, DateState.UNCHANGED) and not outcome.findings
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s requested=%s%d%s",
        date,
        outcome.state.value,
        sign,
        outcome.day.count("requested"),
        f" ({outcome.detail})" if outcome.detail else "",
        extra={
            "date": date,
            "state": outcome.state.value,
            "counts": {e: outcome.day.count(e) for e in family.EVENTS},
        },
    )
    if outcome.findings:  # listed once, in the report; the log only counts them
        log.warning(
            "%s: %d invariant finding(s)",
            date,
            len(outcome.findings),
            extra={"date": date, "findings": len(outcome.findings)},
        )


def _dry_run(
    side: RedisSide,
    store: Store,
    dates: list[int],
    options: RotateOptions,
    report: RotationReport,
) -> None:
    """Describe what a run would do, touching nothing (no lock, no claim, no write).
    A date with bad data is in the plan, marked, and named like a run names it."""
    for start in range(0, len(dates), options.batch_size):
        batch = dates[start : start + options.batch_size]
        existing = _rows_by_date(store, batch)
        bad: dict[int, DataError] = {}
        for d, peeked in zip(batch, side.peek_each(batch), strict=True):
            if isinstance(peeked, DataError):
                bad[d] = peeked
                detail = "bad data: would be left in Redis (see the error)"
                report.outcomes.append(
                    DateOutcome(d, DateState.PLANNED, DayCounts(), (), "", detail)
                )
                continue
            live, pending = peeked
            row = existing.get(d)
            claimed = live if pending is None else pending.plus(live)
            parts = []
            if pending is not None:
                parts.append("a claim left by an earlier run")
            if claimed.is_empty() and pending is None:
                parts.append("no keys: " + ("row kept as is" if row else "zero row"))
                day = None if row else DayCounts()
            else:
                parts.append("merge into existing row" if row else "insert new row")
                day = claimed if row is None else row.day.plus(claimed)
            found = tuple(check_day(d, day)) if day is not None else ()
            report.outcomes.append(
                DateOutcome(d, DateState.PLANNED, claimed, found, "", "; ".join(parts))
            )
        _report_bad(side, report, bad)
    if report.bad_dates and report.error is None:
        report.error = bad_dates_summary(report.bad_dates)
