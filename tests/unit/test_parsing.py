"""Validation of Redis hash replies: parse_count, parse_hash, day_from_hashes."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.errors import DataError
from rotate_stats.redis_side import day_from_hashes, parse_count, parse_hash

SETTINGS = settings(database=None, deadline=None, max_examples=300)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
EVENTS = ["requested", "failed_to_queue", "queued", "started", "completed", "failed"]
KEY = "stats:journal_chat_jobs:daily:19727"


# -- parse_count ----------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(min_value=INT64_MIN + 1, max_value=INT64_MAX))
def test_parse_count_accepts_canonical_int64_text_and_bytes(n: int) -> None:
    assert parse_count(KEY, "requested", str(n)) == n
    assert parse_count(KEY, "requested", str(n).encode()) == n


@pytest.mark.parametrize("n", [0, 1, -1, 10, INT64_MAX, INT64_MIN + 1])
def test_parse_count_edge_values(n: int) -> None:
    assert parse_count(KEY, "queued", str(n)) == n
    assert parse_count(KEY, "queued", str(n).encode("ascii")) == n


def test_parse_count_accepts_int64_min() -> None:
    # -9223372036854775808 is a signed 64-bit integer, and Redis HINCRBY can reach it.
    assert parse_count(KEY, "failed", str(INT64_MIN)) == INT64_MIN


@pytest.mark.parametrize(
    "raw",
    [
        "1.0",
        "",
        " 1",
        "1 ",
        "1\n",
        "01",
        "-01",
        "00",
        "+1",
        "1e3",
        "abc",
        "0x10",
        "1_000",
        "--1",
        "-",
        "١٢",  # Arabic-Indic digits: int() would accept them
        str(2**63),
        str(-(2**63) - 1),
        str(10**30),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_parse_count_rejects(raw: str, as_bytes: bool) -> None:
    value: str | bytes = raw.encode() if as_bytes else raw
    with pytest.raises(DataError) as info:
        parse_count(KEY, "started", value)
    assert info.value.key == KEY
    assert info.value.field == "started"
    assert info.value.value == raw
    assert KEY in str(info.value)
    assert "started" in str(info.value)


@SETTINGS
@given(st.integers(min_value=2**63, max_value=2**200))
def test_parse_count_rejects_out_of_range(n: int) -> None:
    with pytest.raises(DataError):
        parse_count(KEY, "requested", str(n))
    with pytest.raises(DataError):
        parse_count(KEY, "requested", str(-n - 1))


@SETTINGS
@given(st.text(max_size=12) | st.from_regex(r"-?[0-9]{1,3}", fullmatch=True))
@example("-0")  # not canonical: Redis itself refuses "-0" as an integer
@example("0")
def test_parse_count_accepts_exactly_canonical_integers(text: str) -> None:
    try:
        n = int(text)
        canonical = str(n) == text and INT64_MIN <= n <= INT64_MAX
    except ValueError:
        canonical = False
    if canonical:
        assert parse_count(KEY, "requested", text) == int(text)
    else:
        with pytest.raises(DataError):
            parse_count(KEY, "requested", text)


def test_parse_count_non_utf8_value_is_data_error() -> None:
    with pytest.raises(DataError) as info:
        parse_count(KEY, "queued", b"\xff\xfe")
    assert info.value.key == KEY
    assert info.value.field == "queued"


# Field names as Redis may hold them, minus NUL, which is refused (test below).
FIELD_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)


def test_parse_hash_refuses_nul_in_a_field_name() -> None:
    with pytest.raises(DataError) as info:
        parse_hash("k", [b"sync:a\x00b", b"1"])
    assert info.value.key == "k" and info.value.field == "sync:a\x00b"
    assert "NUL" in str(info.value)


# -- parse_hash -----------------------------------------------------------------------------------


@SETTINGS
@given(st.dictionaries(FIELD_NAMES, st.integers(INT64_MIN + 1, INT64_MAX), max_size=8))
def test_parse_hash_dict_and_flat_reply(values: dict[str, int]) -> None:
    as_dict = {k.encode(): str(v).encode() for k, v in values.items()}
    flat: list[bytes] = []
    for k, v in values.items():
        flat += [k.encode(), str(v).encode()]
    assert parse_hash(KEY, as_dict) == values
    assert parse_hash(KEY, flat) == values
    assert parse_hash(KEY, {k: str(v) for k, v in values.items()}) == values


def test_parse_hash_names_the_bad_field() -> None:
    with pytest.raises(DataError) as info:
        parse_hash(KEY, {b"requested": b"3", b"queued": b"3.5"})
    assert (info.value.key, info.value.field, info.value.value) == (KEY, "queued", "3.5")


def test_parse_hash_non_utf8_field_name() -> None:
    with pytest.raises(DataError) as info:
        parse_hash(KEY, {b"\xc3\x28": b"1"})
    assert info.value.key == KEY


# -- day_from_hashes ------------------------------------------------------------------------------


def empty_hashes() -> list[dict[bytes, bytes]]:
    return [{} for _ in range(family.KEYS_PER_DATE)]


@SETTINGS
@given(
    st.integers(0, 60000),
    st.dictionaries(st.sampled_from(EVENTS), st.integers(0, 10**9)),
    st.dictionaries(
        st.sampled_from(EVENTS),
        st.dictionaries(FIELD_NAMES, st.integers(0, 10**9), max_size=4),
    ),
    st.booleans(),
)
def test_day_from_hashes_reads_counts_and_breakdowns(
    d: int, counts: dict[str, int], breakdowns: dict[str, dict[str, int]], claim_side: bool
) -> None:
    keys = family.claim_keys(d) if claim_side else family.live_keys(d)
    hashes: list[dict[bytes, bytes]] = [{e.encode(): str(n).encode() for e, n in counts.items()}]
    for event in EVENTS:
        bd = breakdowns.get(event, {})
        hashes.append({k.encode(): str(v).encode() for k, v in bd.items()})
    day = day_from_hashes(keys, hashes)
    for event in EVENTS:
        assert day.count(event) == counts.get(event, 0)
        assert dict(day.breakdown(event)) == breakdowns.get(event, {})


def test_day_from_hashes_breakdowns_follow_family_order() -> None:
    keys = family.live_keys(3)
    hashes = empty_hashes()
    hashes[EVENTS.index("failed") + 1] = {b"sync:timed_out": b"2"}
    hashes[EVENTS.index("requested") + 1] = {b"greeting": b"5"}
    day = day_from_hashes(keys, hashes)
    assert dict(day.breakdown("failed")) == {"sync:timed_out": 2}
    assert dict(day.breakdown("requested")) == {"greeting": 5}
    assert dict(day.breakdown("queued")) == {}


@pytest.mark.parametrize("field", ["requsted", "Requested", "total", "extra", "earliest"])
def test_day_from_hashes_rejects_unknown_counts_field(field: str) -> None:
    keys = family.live_keys(19727)
    hashes = empty_hashes()
    hashes[0] = {b"requested": b"1", field.encode(): b"1"}
    with pytest.raises(DataError) as info:
        day_from_hashes(keys, hashes)
    assert info.value.key == keys[0]
    assert info.value.field == field


def test_day_from_hashes_non_utf8_field_name_in_counts() -> None:
    keys = family.live_keys(19727)
    hashes = empty_hashes()
    hashes[0] = {b"\xff": b"1"}
    with pytest.raises(DataError) as info:
        day_from_hashes(keys, hashes)
    assert info.value.key == keys[0]


@pytest.mark.parametrize("index", range(1, 7))
def test_day_from_hashes_non_utf8_field_name_in_breakdown(index: int) -> None:
    keys = family.live_keys(19727)
    hashes = empty_hashes()
    hashes[index] = {b"greeting\xff": b"1"}
    with pytest.raises(DataError) as info:
        day_from_hashes(keys, hashes)
    assert info.value.key == keys[index]


@pytest.mark.parametrize("index", range(1, 7))
def test_day_from_hashes_bad_breakdown_value_names_its_key(index: int) -> None:
    keys = family.live_keys(19727)
    hashes = empty_hashes()
    hashes[index] = {b"greeting": b"one"}
    with pytest.raises(DataError) as info:
        day_from_hashes(keys, hashes)
    assert (info.value.key, info.value.field, info.value.value) == (keys[index], "greeting", "one")


_VALUES = st.one_of(
    st.integers(min_value=INT64_MIN - 2, max_value=INT64_MAX + 2).map(str),
    st.sampled_from(["007", "-0", "+1", " 1", "1 ", "1_000", "1.0", "", "٣", "0x1", "1e3"]),
    st.text(alphabet="-+0123456789 _", max_size=22),
)


@SETTINGS
@given(_VALUES, st.booleans())
def test_parse_hash_accepts_exactly_what_parse_count_accepts(text: str, as_bytes: bool) -> None:
    """parse_hash's fast path (int() and a canonical-form check) agrees with parse_count."""
    raw: str | bytes = text.encode() if as_bytes else text
    try:
        expected: int | str = parse_count(KEY, "sync", raw)
    except DataError as exc:
        expected = str(exc)
    try:
        got: int | str = parse_hash(KEY, [b"sync", raw])["sync"]
    except DataError as exc:
        got = str(exc)
    assert got == expected
