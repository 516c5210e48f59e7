"""Invariant checks of DESIGN §5 (rotate_stats.invariants), driven by generated days.

Consistent days are *built* from per-type flows (requested = failed_to_queue +
queued, started = queued, completed + failed = started) with breakdowns that
sum to the counts; a single, targeted mutation must then produce the finding
that names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotate_stats.invariants import DayCounts, Finding, Invariant, check_day

SETTINGS = settings(database=None, deadline=None, max_examples=200)

EVENTS = ["requested", "failed_to_queue", "queued", "started", "completed", "failed"]
REASONED = {"failed_to_queue", "failed"}
TYPES = ["greeting", "system_chat", "reflection_question", "sync", "summarize", "unknown"]
FTQ_REASONS = [
    "locked",
    "ratelimited:user_queued_jobs:3:5",
    "ratelimited:total_queued_jobs:10:10",
    "user_not_found",
    "encryption_failed",
    "journal_entry_not_found",
    "journal_entry_item_not_found",
    "decryption_failed",
    "bad_state",
]
FAILED_REASONS = ["timed_out", "no_completion", "write_failed:x", "llm:empathy:RateLimitError"]
ORDER = list(Invariant)

small = st.integers(min_value=0, max_value=50)
unix_dates = st.integers(min_value=0, max_value=60000)


@dataclass
class Built:
    """A consistent day plus the per-type totals it was built from."""

    day: DayCounts
    per_type: dict[str, dict[str, int]]  # job type -> event -> total


@st.composite
def consistent_days(draw: st.DrawFn) -> Built:
    types = draw(st.lists(st.sampled_from(TYPES), unique=True, max_size=len(TYPES)))
    keep_zeros = draw(st.booleans())
    breakdowns: dict[str, dict[str, int]] = {e: {} for e in EVENTS}
    per_type: dict[str, dict[str, int]] = {}

    def put(event: str, key: str, value: int) -> None:
        if value or keep_zeros:
            breakdowns[event][key] = value

    for t in types:
        ftq = draw(st.dictionaries(st.sampled_from(FTQ_REASONS), small, max_size=3))
        failed = draw(st.dictionaries(st.sampled_from(FAILED_REASONS), small, max_size=3))
        completed = draw(small)
        started = completed + sum(failed.values())
        queued = started
        requested = sum(ftq.values()) + queued
        for reason, n in ftq.items():
            put("failed_to_queue", f"{t}:{reason}", n)
        for reason, n in failed.items():
            put("failed", f"{t}:{reason}", n)
        put("requested", t, requested)
        put("queued", t, queued)
        put("started", t, started)
        put("completed", t, completed)
        per_type[t] = {
            "requested": requested,
            "failed_to_queue": sum(ftq.values()),
            "queued": queued,
            "started": started,
            "completed": completed,
            "failed": sum(failed.values()),
        }
    counts = {e: sum(breakdowns[e].values()) for e in EVENTS}
    if draw(st.booleans()):  # missing events count as zero
        counts = {e: n for e, n in counts.items() if n}
        breakdowns = {e: bd for e, bd in breakdowns.items() if bd}
    return Built(DayCounts(counts, breakdowns), per_type)


def flow_findings(totals: dict[str, int]) -> set[tuple[Invariant, str, int, int]]:
    """Independent oracle for invariants 3-5: (invariant, event, expected, actual)."""
    out = set()
    req, ftq, queued = totals["requested"], totals["failed_to_queue"], totals["queued"]
    started, completed, failed = totals["started"], totals["completed"], totals["failed"]
    if ftq + queued != req:
        out.add((Invariant.QUEUE_SPLIT, "requested", req, ftq + queued))
    if queued != started:
        out.add((Invariant.QUEUED_STARTED, "started", queued, started))
    if completed + failed != started:
        out.add((Invariant.START_SPLIT, "started", started, completed + failed))
    return out


def key_of(f: Finding) -> tuple[Invariant, str | None, str | None, int | None, int | None]:
    return (f.invariant, f.event, f.job_type, f.expected, f.actual)


def with_count(day: DayCounts, event: str, value: int) -> DayCounts:
    counts = {e: day.count(e) for e in EVENTS}
    counts[event] = value
    return DayCounts(counts, {e: dict(day.breakdown(e)) for e in EVENTS})


def with_breakdown(day: DayCounts, event: str, key: str, value: int) -> DayCounts:
    breakdowns = {e: dict(day.breakdown(e)) for e in EVENTS}
    breakdowns[event][key] = value
    return DayCounts({e: day.count(e) for e in EVENTS}, breakdowns)


def type_of(event: str, key: str) -> str:
    return key.split(":", 1)[0] if event in REASONED else key


# -- consistent days --------------------------------------------------------------------------


@SETTINGS
@given(unix_dates, consistent_days())
def test_consistent_day_has_no_findings(d: int, built: Built) -> None:
    assert check_day(d, built.day) == []


def test_empty_day_has_no_findings() -> None:
    assert check_day(0, DayCounts()) == []
    assert DayCounts().is_empty()


def test_hand_built_day_has_no_findings() -> None:
    day = DayCounts(
        {
            "requested": 10,
            "failed_to_queue": 3,
            "queued": 7,
            "started": 7,
            "completed": 5,
            "failed": 2,
        },
        {
            "requested": {"greeting": 6, "sync": 4},
            "failed_to_queue": {"greeting:locked": 1, "sync:ratelimited:user_queued_jobs:3:5": 2},
            "queued": {"greeting": 5, "sync": 2},
            "started": {"greeting": 5, "sync": 2},
            "completed": {"greeting": 4, "sync": 1},
            "failed": {"greeting:llm:empathy:RateLimitError": 1, "sync:write_failed:x": 1},
        },
    )
    assert check_day(19727, day) == []
    assert not day.is_empty()


# -- single mutations -------------------------------------------------------------------------


@SETTINGS
@given(unix_dates, consistent_days(), st.sampled_from(EVENTS), st.integers(1, 5))
def test_count_off_by_delta_is_reported_exactly(
    d: int, built: Built, event: str, delta: int
) -> None:
    day = built.day
    before = {e: day.count(e) for e in EVENTS}
    after = dict(before)
    after[event] += delta
    findings = check_day(d, with_count(day, event, after[event]))

    expected = {(Invariant.BREAKDOWN_SUM, event, None, after[event], before[event])}
    expected |= {(inv, ev, None, exp, act) for inv, ev, exp, act in flow_findings(after)}
    assert {key_of(f) for f in findings} == expected
    assert len(findings) == len(expected)
    assert all(f.unix_date == d for f in findings)


@SETTINGS
@given(unix_dates, consistent_days(), st.data())
def test_breakdown_value_off_by_delta_is_reported_exactly(
    d: int, built: Built, data: st.DataObject
) -> None:
    day = built.day
    present = [(e, k) for e in EVENTS for k in day.breakdown(e)]
    if present and data.draw(st.booleans()):
        event, key = data.draw(st.sampled_from(present))
    else:  # a key the day does not have yet
        event = data.draw(st.sampled_from(EVENTS))
        t = data.draw(st.sampled_from(TYPES))
        reason = "locked" if event == "failed_to_queue" else "timed_out"
        key = f"{t}:{reason}" if event in REASONED else t
    delta = data.draw(st.integers(1, 5))
    job_type = type_of(event, key)
    old = day.breakdown(event).get(key, 0)
    findings = check_day(d, with_breakdown(day, event, key, old + delta))

    totals = dict(built.per_type.get(job_type, dict.fromkeys(EVENTS, 0)))
    totals[event] += delta
    expected = {(Invariant.BREAKDOWN_SUM, event, None, day.count(event), day.count(event) + delta)}
    expected |= {
        (Invariant.PER_TYPE, ev, job_type, exp, act) for _, ev, exp, act in flow_findings(totals)
    }
    assert {key_of(f) for f in findings} == expected
    assert len(findings) == len(expected)
    for f in findings:
        if f.invariant is Invariant.PER_TYPE:
            assert job_type in f.detail


@SETTINGS
@given(unix_dates, consistent_days(), st.sampled_from(EVENTS), st.integers(1, 100))
def test_negative_count_is_reported(d: int, built: Built, event: str, n: int) -> None:
    findings = check_day(d, with_count(built.day, event, -n))
    assert (Invariant.NON_NEGATIVE, event, None, 0, -n) in {key_of(f) for f in findings}
    negatives = [f for f in findings if f.invariant is Invariant.NON_NEGATIVE]
    assert len(negatives) == 1


@SETTINGS
@given(unix_dates, consistent_days(), st.data())
def test_negative_breakdown_value_is_reported(d: int, built: Built, data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(EVENTS))
    t = data.draw(st.sampled_from(TYPES))
    key = f"{t}:{'locked' if event == 'failed_to_queue' else 'timed_out'}"
    key = key if event in REASONED else t
    n = data.draw(st.integers(1, 100))
    findings = check_day(d, with_breakdown(built.day, event, key, -n))
    assert (Invariant.NON_NEGATIVE, event, t, 0, -n) in {key_of(f) for f in findings}
    assert len([f for f in findings if f.invariant is Invariant.NON_NEGATIVE]) == 1


@SETTINGS
@given(unix_dates, consistent_days(), st.sampled_from(EVENTS), st.sampled_from(["chat", "x-y"]))
def test_unknown_type_with_zero_value_is_only_a_grammar_finding(
    d: int, built: Built, event: str, bad_type: str
) -> None:
    key = f"{bad_type}:timed_out" if event in REASONED else bad_type
    findings = check_day(d, with_breakdown(built.day, event, key, 0))
    assert [key_of(f) for f in findings] == [(Invariant.GRAMMAR, event, bad_type, None, None)]
    assert repr(key) in findings[0].detail


def test_grammar_finding_for_unknown_failed_to_queue_reason() -> None:
    day = DayCounts(
        {"requested": 1, "failed_to_queue": 1},
        {"requested": {"sync": 1}, "failed_to_queue": {"sync:exploded": 1}},
    )
    findings = check_day(5, day)
    assert [key_of(f) for f in findings] == [
        (Invariant.GRAMMAR, "failed_to_queue", "sync", None, None)
    ]


@SETTINGS
@given(
    unix_dates,
    st.dictionaries(st.sampled_from(EVENTS), st.integers(-5, 5)),
    st.dictionaries(
        st.sampled_from(EVENTS),
        st.dictionaries(
            st.sampled_from(TYPES + ["greeting:locked", "sync:timed_out", "chat"]),
            st.integers(-5, 5),
            max_size=4,
        ),
    ),
)
def test_findings_come_in_invariant_order(
    d: int, counts: dict[str, int], breakdowns: dict[str, dict[str, int]]
) -> None:
    findings = check_day(d, DayCounts(counts, breakdowns))
    ranks = [ORDER.index(f.invariant) for f in findings]
    assert ranks == sorted(ranks)
    for f in findings:
        if f.invariant is Invariant.GRAMMAR:
            assert f.expected is None and f.actual is None
        else:
            assert f.expected is not None and f.actual is not None
            assert f.expected != f.actual


def test_finding_as_dict() -> None:
    finding = Finding(19727, Invariant.QUEUE_SPLIT, "requested", None, 3, 2, "detail")
    assert finding.as_dict() == {
        "date": "2024-01-05",
        "invariant": "3-failed_to_queue+queued=requested",
        "event": "requested",
        "job_type": None,
        "expected": 3,
        "actual": 2,
        "detail": "detail",
    }


# -- DayCounts ----------------------------------------------------------------------------------

breakdown_keys = st.sampled_from(TYPES + ["greeting:locked", "sync:a:b", "chat", "x"])
any_days = st.builds(
    DayCounts,
    st.dictionaries(st.sampled_from(EVENTS), st.integers(-(10**6), 10**6)),
    st.dictionaries(
        st.sampled_from(EVENTS),
        st.dictionaries(breakdown_keys, st.integers(-(10**6), 10**6), max_size=5),
    ),
)


@SETTINGS
@given(any_days, any_days)
def test_plus_conserves_every_count_and_breakdown_value(a: DayCounts, b: DayCounts) -> None:
    total = a.plus(b)
    for event in EVENTS:
        assert total.count(event) == a.count(event) + b.count(event)
        keys = set(a.breakdown(event)) | set(b.breakdown(event))
        assert set(total.breakdown(event)) == keys
        for key in keys:
            assert total.breakdown(event)[key] == (
                a.breakdown(event).get(key, 0) + b.breakdown(event).get(key, 0)
            )
    assert sum(total.count(e) for e in EVENTS) == sum(a.count(e) + b.count(e) for e in EVENTS)
    assert sum(sum(total.breakdown(e).values()) for e in EVENTS) == sum(
        sum(a.breakdown(e).values()) + sum(b.breakdown(e).values()) for e in EVENTS
    )


@SETTINGS
@given(any_days, any_days)
def test_plus_is_commutative_and_has_identity(a: DayCounts, b: DayCounts) -> None:
    def normal(day: DayCounts) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        return (
            {e: day.count(e) for e in EVENTS},
            {e: dict(day.breakdown(e)) for e in EVENTS},
        )

    assert normal(a.plus(b)) == normal(b.plus(a))
    assert normal(a.plus(DayCounts())) == normal(a)
    assert normal(DayCounts().plus(a)) == normal(a)


@SETTINGS
@given(any_days, any_days)
def test_plus_does_not_mutate_operands(a: DayCounts, b: DayCounts) -> None:
    snapshot = ({**a.counts}, {e: dict(bd) for e, bd in a.breakdowns.items()})
    a.plus(b)
    assert ({**a.counts}, {e: dict(bd) for e, bd in a.breakdowns.items()}) == snapshot


@SETTINGS
@given(unix_dates, consistent_days(), consistent_days())
def test_sum_of_consistent_days_is_consistent(d: int, a: Built, b: Built) -> None:
    assert check_day(d, a.day.plus(b.day)) == []


def test_per_type_splits_on_first_colon() -> None:
    day = DayCounts(
        {},
        {
            "failed": {
                "greeting:llm:empathy:RateLimitError": 2,
                "greeting:timed_out": 1,
                "sync:write_failed:a:b": 4,
            },
            "failed_to_queue": {"summarize:ratelimited:user_queued_jobs:3:5": 3},
            "requested": {"greeting": 7, "greeting:odd": 1},
        },
    )
    assert day.per_type("failed") == {"greeting": 3, "sync": 4}
    assert day.per_type("failed_to_queue") == {"summarize": 3}
    # typed events are keyed by the whole key, colons and all
    assert day.per_type("requested") == {"greeting": 7, "greeting:odd": 1}
    assert day.per_type("completed") == {}


@SETTINGS
@given(any_days)
def test_per_type_conserves_the_breakdown_total(day: DayCounts) -> None:
    for event in EVENTS:
        assert sum(day.per_type(event).values()) == sum(day.breakdown(event).values())


@pytest.mark.parametrize(
    ("day", "empty"),
    [
        (DayCounts(), True),
        (DayCounts({"requested": 0}), True),
        (DayCounts({"requested": 1}), False),
        (DayCounts({}, {"failed": {"sync:x": 2}}), False),
    ],
)
def test_is_empty(day: DayCounts, empty: bool) -> None:
    assert day.is_empty() is empty


def test_findings_are_aggregated_per_date_invariant_and_event() -> None:
    from rotate_stats.report import FINDINGS_SHOWN, DateOutcome, DateState

    day = DayCounts(
        {"requested": 10, "queued": 10},
        {"requested": {f"nosuchtype{i}": 1 for i in range(10)}, "queued": {"sync": 10}},
    )
    found = check_day(19_000, day)
    grammar = [f for f in found if f.invariant is Invariant.GRAMMAR]
    assert len(grammar) == 10
    outcome = DateOutcome(19_000, DateState.INSERTED, day, tuple(found))
    shown = [f for f in outcome.findings if f.invariant is Invariant.GRAMMAR]
    assert len(shown) == FINDINGS_SHOWN + 1
    assert shown[-1].detail == "... and 7 more 7-grammar finding(s) for requested"
    assert outcome.day.breakdowns == {}  # the report keeps counts only
