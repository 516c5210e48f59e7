"""Key names and breakdown grammar of rotate_stats.family (DESIGN §3, seed 002)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotate_stats import family

SETTINGS = settings(database=None, deadline=None, max_examples=200)

EVENTS = ["requested", "failed_to_queue", "queued", "started", "completed", "failed"]
TYPES = ["greeting", "system_chat", "reflection_question", "sync", "summarize"]
FTQ_REASONS = [
    "locked",
    "ratelimited:user_queued_jobs:3:5",
    "ratelimited:total_queued_jobs:100:100",
    "ratelimited:user_queued_jobs:0:1",
    "user_not_found",
    "encryption_failed",
    "journal_entry_not_found",
    "journal_entry_item_not_found",
    "decryption_failed",
    "bad_state",
]
FAILED_REASONS = [
    "timed_out",
    "no_completion",
    "write_failed:x",
    "llm:empathy:RateLimitError",
    "anything at all: even spaces",
]
TYPED_EVENTS = ["requested", "queued", "started", "completed"]

unix_dates = st.integers(min_value=-(10**6), max_value=10**7)


def test_events_in_seed_order() -> None:
    assert list(family.EVENTS) == EVENTS


# -- key names --------------------------------------------------------------------------------


def test_key_names_are_the_seed_names() -> None:
    assert family.counts_key(19727) == "stats:journal_chat_jobs:daily:19727"
    assert (
        family.extra_key(19727, "failed_to_queue")
        == "stats:journal_chat_jobs:daily:19727:extra:failed_to_queue"
    )
    assert family.EARLIEST_KEY == "stats:journal_chat_jobs:daily:earliest"


@SETTINGS
@given(unix_dates)
def test_live_keys_of_a_date(d: int) -> None:
    expected = [f"stats:journal_chat_jobs:daily:{d}"] + [
        f"stats:journal_chat_jobs:daily:{d}:extra:{event}" for event in EVENTS
    ]
    assert family.counts_key(d) == expected[0]
    assert [family.extra_key(d, e) for e in EVENTS] == expected[1:]
    assert family.live_keys(d) == expected
    assert len(family.live_keys(d)) == family.KEYS_PER_DATE


@SETTINGS
@given(unix_dates)
def test_claim_keys_are_outside_the_live_namespace(d: int) -> None:
    claims = family.claim_keys(d) + [family.claim_id_key(d)]
    assert len(family.claim_keys(d)) == len(family.live_keys(d))
    live_prefix = "stats:journal_chat_jobs:daily"
    for key in claims:
        assert not key.startswith(live_prefix), key
        assert not key.startswith(family.LIVE_PREFIX), key
    # no claim key collides with any live key or with another claim key
    assert len(set(claims)) == len(claims)
    assert not set(claims) & set(family.live_keys(d))
    # the claim of one date is not the claim of another
    assert not set(claims) & set(family.claim_keys(d + 1) + [family.claim_id_key(d + 1)])
    # the claim twin of each breakdown key still names its event
    for event, key in zip(EVENTS, family.claim_keys(d)[1:], strict=True):
        assert key.endswith(f":extra:{event}")
        assert f":{d}:" in key


def test_own_keys_are_outside_the_live_namespace() -> None:
    for key in (family.LOCK_KEY, family.REFUSED_KEY):
        assert not key.startswith("stats:journal_chat_jobs:daily")


@SETTINGS
@given(st.integers(min_value=0, max_value=family.MAX_UNIX_DATE))
def test_date_of_key_inverts_every_dated_key(d: int) -> None:
    keys = [
        family.counts_key(d),
        *(family.extra_key(d, e) for e in EVENTS),
        *family.live_keys(d),
        *family.claim_keys(d),
        family.claim_id_key(d),
    ]
    for key in keys:
        assert family.date_of_key(key) == d, key


@given(st.integers().filter(lambda d: not 0 <= d <= family.MAX_UNIX_DATE))
def test_keys_of_dates_outside_1970_9999_are_unknown(d: int) -> None:
    for key in [family.counts_key(d), *family.claim_keys(d), family.claim_id_key(d)]:
        parsed = family.parse_dated_key(key)
        assert family.date_of_key(key) is None and parsed is not None and not parsed[1], key


@given(st.integers(min_value=0, max_value=family.MAX_UNIX_DATE), st.text(min_size=1))
def test_unknown_suffixes_are_unknown(d: int, suffix: str) -> None:
    key = f"{family.counts_key(d)}:{suffix}"
    if suffix in {f"extra:{e}" for e in EVENTS}:
        assert family.parse_dated_key(key) == (d, True)
    else:
        assert family.parse_dated_key(key) == (d, False) and family.date_of_key(key) is None


@pytest.mark.parametrize(
    "key",
    [
        "stats:journal_chat_jobs:daily:earliest",
        "rotate_stats:journal_chat_jobs:lock",
        "rotate_stats:journal_chat_jobs:refused",
        "stats:journal_chat_jobs:daily:",
        "stats:journal_chat_jobs:daily:12x",
        "stats:journal_chat_jobs:daily",
        "stats:other:daily:123",
        "rotate_stats:journal_chat_jobs:123",
        "xstats:journal_chat_jobs:daily:123",
    ],
)
def test_date_of_key_none_for_undated_keys(key: str) -> None:
    assert family.date_of_key(key) is None


def test_date_of_key_is_none_for_family_constants() -> None:
    assert family.date_of_key(family.EARLIEST_KEY) is None
    assert family.date_of_key(family.LOCK_KEY) is None
    assert family.date_of_key(family.REFUSED_KEY) is None


def test_patterns_cover_their_keys() -> None:
    import fnmatch

    d = 20000
    for key in family.live_keys(d) + [family.EARLIEST_KEY]:
        assert fnmatch.fnmatchcase(key, family.LIVE_PATTERN)
        assert not fnmatch.fnmatchcase(key, family.CLAIM_PATTERN)
    for key in family.claim_keys(d) + [family.claim_id_key(d)]:
        assert fnmatch.fnmatchcase(key, family.CLAIM_PATTERN)
        assert not fnmatch.fnmatchcase(key, family.LIVE_PATTERN)


# -- grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "job_type"), list(itertools.product(TYPED_EVENTS, TYPES)))
def test_grammar_accepts_documented_types(event: str, job_type: str) -> None:
    assert family.grammar_problem(event, job_type) is None


@pytest.mark.parametrize(("job_type", "reason"), list(itertools.product(TYPES, FTQ_REASONS)))
def test_grammar_accepts_every_documented_failed_to_queue_reason(
    job_type: str, reason: str
) -> None:
    assert family.grammar_problem("failed_to_queue", f"{job_type}:{reason}") is None


@pytest.mark.parametrize(("job_type", "reason"), list(itertools.product(TYPES, FAILED_REASONS)))
def test_grammar_accepts_free_form_failed_reasons_with_colons(job_type: str, reason: str) -> None:
    assert family.grammar_problem("failed", f"{job_type}:{reason}") is None


def test_grammar_documented_failed_examples() -> None:
    assert family.grammar_problem("failed", "greeting:llm:empathy:RateLimitError") is None
    assert family.grammar_problem("failed", "sync:write_failed:x") is None


@pytest.mark.parametrize("event", EVENTS)
def test_grammar_accepts_unknown_type(event: str) -> None:
    key = "unknown" if event in TYPED_EVENTS else "unknown:locked"
    assert family.grammar_problem(event, key) is None


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("job_type", ["chat", "reflection-question", "Greeting", "", "greeting "])
def test_grammar_rejects_unknown_types(event: str, job_type: str) -> None:
    key = job_type if event in TYPED_EVENTS else f"{job_type}:locked"
    problem = family.grammar_problem(event, key)
    assert problem is not None
    assert "type" in problem


@pytest.mark.parametrize("event", ["failed_to_queue", "failed"])
@pytest.mark.parametrize("key", ["greeting", "greeting:", "sync"])
def test_grammar_rejects_missing_reason(event: str, key: str) -> None:
    assert family.grammar_problem(event, key) is not None


@pytest.mark.parametrize("event", TYPED_EVENTS)
def test_grammar_rejects_reason_on_typed_events(event: str) -> None:
    assert family.grammar_problem(event, "greeting:locked") is not None


@pytest.mark.parametrize(
    "reason",
    [
        "ratelimited:queued_jobs:3:5",
        "ratelimited:USER_QUEUED_JOBS:3:5",
        "ratelimited:user_queued_jobs:3",
        "ratelimited:user_queued_jobs:3:5:7",
        "ratelimited:user_queued_jobs:x:5",
        "ratelimited:user_queued_jobs::5",
        "ratelimited:user_queued_jobs:3:-5",
        "ratelimited",
        "rate_limited",
        "timed_out",
        "Locked",
        "locked ",
        "locked:extra",
    ],
)
def test_grammar_rejects_bad_failed_to_queue_reasons(reason: str) -> None:
    assert family.grammar_problem("failed_to_queue", f"greeting:{reason}") is not None


def test_grammar_names_the_bad_ratelimit_resource() -> None:
    problem = family.grammar_problem("failed_to_queue", "sync:ratelimited:bogus_jobs:1:2")
    assert problem is not None
    assert "bogus_jobs" in problem


@SETTINGS
@given(
    st.sampled_from(TYPES),
    st.sampled_from(["user_queued_jobs", "total_queued_jobs"]),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_grammar_accepts_any_ratelimit_numbers(
    job_type: str, resource: str, at: int, limit: int
) -> None:
    key = f"{job_type}:ratelimited:{resource}:{at}:{limit}"
    assert family.grammar_problem("failed_to_queue", key) is None


# -- breakdown types ----------------------------------------------------------------------------


@SETTINGS
@given(st.sampled_from(TYPES + ["unknown", "chat"]), st.text(min_size=1))
def test_breakdown_type_splits_reasons_on_first_colon(job_type: str, reason: str) -> None:
    key = f"{job_type}:{reason}"
    assert family.breakdown_type("failed", key) == job_type
    assert family.breakdown_type("failed_to_queue", key) == job_type
    for event in TYPED_EVENTS:
        assert family.breakdown_type(event, key) == key


def test_sorted_types() -> None:
    pairs = [
        ("requested", {"sync": 1, "greeting": 2}),
        ("failed", {"summarize:timed_out": 1, "greeting:llm:x:y": 1}),
        ("failed_to_queue", {}),
    ]
    assert family.sorted_types(pairs) == ["greeting", "summarize", "sync"]
