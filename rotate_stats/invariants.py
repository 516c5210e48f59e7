"""Pure invariant checks of one date's counts (DESIGN §5): data in, findings out.

A finding is a statement about the data, never a reason to lose it: the caller
decides whether to rotate anyway (default) or stop before the date (strict).
No I/O imports.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import family
from .dates import iso


class Invariant(enum.StrEnum):
    """The invariants of DESIGN §5, numbered as there."""

    NON_NEGATIVE = "1-non-negative"
    BREAKDOWN_SUM = "2-breakdown-sum"
    QUEUE_SPLIT = "3-failed_to_queue+queued=requested"
    QUEUED_STARTED = "4-queued=started"
    START_SPLIT = "5-completed+failed=started"
    PER_TYPE = "6-per-type"
    GRAMMAR = "7-grammar"


@dataclass(frozen=True)
class Finding:
    """One violated invariant on one date.

    ``event`` and ``job_type`` locate it where they apply; ``expected`` and
    ``actual`` are the two numbers that should have been equal (None for
    grammar findings, where ``detail`` says what is wrong).
    """

    unix_date: int
    invariant: Invariant
    event: str | None
    job_type: str | None
    expected: int | None
    actual: int | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, with the date as ISO."""
        return {
            "date": iso(self.unix_date),
            "invariant": self.invariant.value,
            "event": self.event,
            "job_type": self.job_type,
            "expected": self.expected,
            "actual": self.actual,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DayCounts:
    """The counts of one date: event -> count and event -> breakdown -> count.

    Missing events count as 0 with an empty breakdown.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    breakdowns: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def count(self, event: str) -> int:
        return self.counts.get(event, 0)

    def breakdown(self, event: str) -> Mapping[str, int]:
        return self.breakdowns.get(event, {})

    def is_empty(self) -> bool:
        """True when no event and no breakdown has anything recorded."""
        return not any(self.counts.values()) and not any(
            any(bd.values()) or bd for bd in self.breakdowns.values()
        )

    def per_type(self, event: str) -> dict[str, int]:
        """The event's breakdown summed per job type (the prefix before ``:`` for reasons)."""
        totals: dict[str, int] = {}
        for key, value in self.breakdown(event).items():
            job_type = family.breakdown_type(event, key)
            totals[job_type] = totals.get(job_type, 0) + value
        return totals

    def plus(self, other: DayCounts) -> DayCounts:
        """Counts and breakdowns of both added together."""
        counts = {e: self.count(e) + other.count(e) for e in family.EVENTS}
        breakdowns: dict[str, dict[str, int]] = {}
        for event in family.EVENTS:
            merged = dict(self.breakdown(event))
            for key, value in other.breakdown(event).items():
                merged[key] = merged.get(key, 0) + value
            breakdowns[event] = merged
        return DayCounts(counts, breakdowns)


def check_day(unix_date: int, day: DayCounts) -> list[Finding]:
    """Every violation of DESIGN §5 in one date's counts, in invariant order."""
    findings: list[Finding] = []

    def add(
        inv: Invariant,
        event: str | None,
        job_type: str | None,
        expected: int | None,
        actual: int | None,
        detail: str,
    ) -> None:
        findings.append(Finding(unix_date, inv, event, job_type, expected, actual, detail))

    for event in family.EVENTS:
        if day.count(event) < 0:
            add(Invariant.NON_NEGATIVE, event, None, 0, day.count(event), f"{event} is negative")
        for key, value in sorted(day.breakdown(event).items()):
            if value < 0:
                job_type = family.breakdown_type(event, key)
                add(Invariant.NON_NEGATIVE, event, job_type, 0, value, f"{event}[{key!r}] < 0")

    for event in family.EVENTS:
        total = sum(day.breakdown(event).values())
        if total != day.count(event):
            detail = f"{event} breakdown sums to {total}, count is {day.count(event)}"
            add(Invariant.BREAKDOWN_SUM, event, None, day.count(event), total, detail)

    for inv, event, expected, actual, detail in _flow_checks(day.count):
        add(inv, event, None, expected, actual, detail)

    per_type = {event: day.per_type(event) for event in family.EVENTS}
    types = sorted({t for totals in per_type.values() for t in totals})
    for job_type in types:

        def typed(event: str, job_type: str = job_type) -> int:
            return per_type[event].get(job_type, 0)

        for _inv, event, expected, actual, detail in _flow_checks(typed):
            add(Invariant.PER_TYPE, event, job_type, expected, actual, f"{job_type}: {detail}")

    for event in family.EVENTS:
        for key in sorted(day.breakdown(event)):
            problem = family.grammar_problem(event, key)
            if problem is not None:
                job_type = family.breakdown_type(event, key)
                add(Invariant.GRAMMAR, event, job_type, None, None, f"{event}[{key!r}]: {problem}")
    return findings


def _flow_checks(count: Callable[[str], int]) -> list[tuple[Invariant, str, int, int, str]]:
    """Invariants 3-5 over a count function: (invariant, event, expected, actual, detail)."""
    req, ftq, queued = count("requested"), count("failed_to_queue"), count("queued")
    started, completed, failed = count("started"), count("completed"), count("failed")
    out: list[tuple[Invariant, str, int, int, str]] = []
    if ftq + queued != req:
        detail = f"failed_to_queue ({ftq}) + queued ({queued}) != requested ({req})"
        out.append((Invariant.QUEUE_SPLIT, "requested", req, ftq + queued, detail))
    if queued != started:
        detail = f"queued ({queued}) != started ({started})"
        out.append((Invariant.QUEUED_STARTED, "started", queued, started, detail))
    if completed + failed != started:
        detail = f"completed ({completed}) + failed ({failed}) != started ({started})"
        out.append((Invariant.START_SPLIT, "started", started, completed + failed, detail))
    return out
