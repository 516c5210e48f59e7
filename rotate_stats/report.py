"""Typed results of a run: one ``DateOutcome`` per date, one ``RotationReport`` per run.

The report computes its own exit code; JSON output is built from it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .dates import iso
from .family import EVENTS
from .invariants import DayCounts, Finding, Invariant


class ExitCode(enum.IntEnum):
    """Process exit statuses (README "Exit codes"); meanings in EXIT_MEANINGS."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    VIOLATIONS = 3
    LOCKED = 75


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success, or nothing to do",
    ExitCode.FAILURE: "runtime failure (store or Redis unreachable, bad data, not migrated, "
    "stats keys left below earliest); nothing lost",
    ExitCode.USAGE: "usage error: bad flag, variable, URL or date",
    ExitCode.VIOLATIONS: "done, but invariant violations were found (rotate, check)",
    ExitCode.LOCKED: "another run holds the lock; nothing done, try later",
}


class DateState(enum.StrEnum):
    """What happened to one date."""

    INSERTED = "inserted"
    """New row with the claimed counts."""
    MERGED = "merged"
    """Claimed counts added to the existing row (late writes)."""
    ZERO_ROW = "zero-row"
    """No keys and no row: a row of zeros was inserted."""
    UNCHANGED = "unchanged"
    """No keys; the existing row was left as it was."""
    ALREADY_APPLIED = "already-applied"
    """A claim an earlier run committed but did not release; released now, nothing added."""
    STOPPED = "stopped"
    """Strict mode: violations found, the date was left in Redis."""
    PLANNED = "planned"
    """Dry run: what would be rotated."""


FINDINGS_SHOWN = 3
"""Findings kept per date, invariant and event; the rest are counted in one more."""


def aggregate(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """The first ``FINDINGS_SHOWN`` findings of each (invariant, event) of a date, and
    for each group with more, one finding saying how many more there are: a date
    with 100,000 bad breakdown keys reports a handful of lines, not 100,000."""
    groups: dict[tuple[Invariant, str | None], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.invariant, f.event), []).append(f)
    out: list[Finding] = []
    for (invariant, event), found in groups.items():
        out += found[:FINDINGS_SHOWN]
        if len(found) > FINDINGS_SHOWN:
            first = found[0]
            more = len(found) - FINDINGS_SHOWN
            detail = f"... and {more} more {invariant.value} finding(s) for {event or 'the date'}"
            out.append(Finding(first.unix_date, invariant, event, None, None, None, detail))
    return tuple(out)


@dataclass(frozen=True)
class DateOutcome:
    """One date's outcome: its state, the counts involved and what the checks found.

    Only the counts of ``day`` are kept: a report lives for the whole walk, and
    breakdowns (up to hundreds of thousands of keys a date) would make the job's
    memory grow with the backlog.
    """

    unix_date: int
    state: DateState
    day: DayCounts
    findings: tuple[Finding, ...] = ()
    claim_id: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        if self.day.breakdowns:
            object.__setattr__(self, "day", DayCounts(dict(self.day.counts)))
        object.__setattr__(self, "findings", aggregate(self.findings))

    def as_dict(self) -> dict[str, object]:
        return {
            "date": iso(self.unix_date),
            "state": self.state.value,
            "counts": {e: self.day.count(e) for e in EVENTS},
            "claim_id": self.claim_id,
            "findings": [f.as_dict() for f in self.findings],
            "detail": self.detail,
        }


@dataclass(frozen=True)
class BadDate:
    """A date left in Redis because of bad data (or a row its counts cannot be added to):
    where the culprit is, what was found and expected, and the commands that repair it
    (``health.bad_date``). Every bad date of a run is reported, not only the first."""

    unix_date: int
    key: str
    field: str | None
    value: str
    expected: str
    message: str
    """The whole error, as logged."""
    repair: str = ""
    """The commands that inspect and repair it, then rotate the date ("" when the message
    says what to do instead)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "date": iso(self.unix_date),
            "key": self.key,
            "field": self.field,
            "value": self.value,
            "expected": self.expected,
            "error": self.message,
            "repair": self.repair,
        }

    def describe(self) -> str:
        """The error, then its repair commands."""
        return f"{self.message}. To fix it - {self.repair}" if self.repair else self.message


@dataclass
class RotationReport:
    """What a run did, in order. Built while the run proceeds, so it is complete on errors too."""

    run_id: str
    started_at: float
    dry_run: bool = False
    strict: bool = False
    first_date: int | None = None
    last_date: int | None = None
    earliest_before: int | None = None
    earliest_after: str | None = None
    outcomes: list[DateOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bad_dates: list[BadDate] = field(default_factory=list)
    """Dates left in Redis with bad data, each named (the run's error sums them up)."""
    error: str | None = None
    error_exit: ExitCode = ExitCode.FAILURE
    finished_at: float | None = None

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error_exit
        if self.findings:
            return ExitCode.VIOLATIONS
        return ExitCode.OK

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "strict": self.strict,
            "first_date": None if self.first_date is None else iso(self.first_date),
            "last_date": None if self.last_date is None else iso(self.last_date),
            # both ISO dates or null (issue 10, item 11); the unix dates alongside
            "earliest_before": _iso_or_none(self.earliest_before),
            "earliest_after": _iso_or_none(self.earliest_after),
            "earliest_before_unix_date": _unix_or_none(self.earliest_before),
            "earliest_after_unix_date": _unix_or_none(self.earliest_after),
            "outcomes": [o.as_dict() for o in self.outcomes],
            "notes": list(self.notes),
            "bad_dates": [b.as_dict() for b in self.bad_dates],
            "error": self.error,
            "exit_code": int(self.exit_code),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def _unix_or_none(value: int | str | None) -> int | None:
    """``earliest`` as read (int) or as the release script returned it (text; "" absent)."""
    if isinstance(value, int):
        return value
    return int(value) if value and value.isdigit() else None


def _iso_or_none(value: int | str | None) -> str | None:
    unix = _unix_or_none(value)
    return None if unix is None else iso(unix)
