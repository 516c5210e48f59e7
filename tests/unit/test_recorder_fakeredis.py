"""The writer API (rotate_stats.recorder.Recorder) on an in-process fakeredis with Lua."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotate_stats import family
from rotate_stats.recorder import Recorder

SETTINGS = settings(database=None, deadline=None, max_examples=60)

EVENTS = ["requested", "failed_to_queue", "queued", "started", "completed", "failed"]
EARLIEST = "stats:journal_chat_jobs:daily:earliest"
COUNTS = "stats:journal_chat_jobs:daily:{d}"
EXTRA = "stats:journal_chat_jobs:daily:{d}:extra:{e}"


def new_client() -> fakeredis.FakeRedis:
    # A server of its own: FakeRedis() instances would otherwise share state.
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def client() -> Iterator[fakeredis.FakeRedis]:
    c = new_client()
    yield c
    c.close()


def read_hash(client: fakeredis.FakeRedis, key: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(key).items()}


def earliest(client: fakeredis.FakeRedis) -> int | None:
    raw = client.get(EARLIEST)
    return None if raw is None else int(raw)


# -- earliest ------------------------------------------


def test_first_record_sets_earliest(client: fakeredis.FakeRedis) -> None:
    assert earliest(client) is None
    assert Recorder(client).record(19727, "requested", "greeting") is True
    assert earliest(client) == 19727
    assert client.get(EARLIEST) == b"19727"


def test_later_records_do_not_raise_earliest(client: fakeredis.FakeRedis) -> None:
    rec = Recorder(client)
    assert rec.record(100, "requested", "sync")
    assert rec.record(150, "requested", "sync")
    assert rec.record(101, "queued", "sync")
    assert earliest(client) == 100


def test_existing_earliest_is_kept_and_enforced(client: fakeredis.FakeRedis) -> None:
    client.set(EARLIEST, "100")
    rec = Recorder(client)
    assert rec.record(150, "requested", "greeting") is True
    assert earliest(client) == 100  # not raised
    assert rec.record(100, "requested", "greeting") is True  # the earliest date itself is open
    assert earliest(client) == 100
    assert rec.record(99, "requested", "greeting") is False  # already rotated
    assert earliest(client) == 100  # not lowered
    assert read_hash(client, COUNTS.format(d=150)) == {"requested": 1}
    assert read_hash(client, COUNTS.format(d=100)) == {"requested": 1}


def test_refusal_is_counted_and_writes_nothing(client: fakeredis.FakeRedis) -> None:
    client.set(EARLIEST, "200")
    rec = Recorder(client)
    assert rec.record(199, "failed", "sync:timed_out", amount=3) is False
    assert rec.record(199, "failed", "sync:no_completion") is False
    assert rec.record(150, "requested", "greeting", amount=2) is False
    assert read_hash(client, family.REFUSED_KEY) == {"199:failed": 4, "150:requested": 2}
    assert family.REFUSED_KEY == "rotate_stats:journal_chat_jobs:refused"
    assert not client.exists(COUNTS.format(d=199), EXTRA.format(d=199, e="failed"))
    assert not client.exists(COUNTS.format(d=150), EXTRA.format(d=150, e="requested"))
    assert sorted(client.keys()) == sorted([EARLIEST.encode(), family.REFUSED_KEY.encode()])


# -- counts ------------------------------------------


def test_record_increments_count_and_breakdown(client: fakeredis.FakeRedis) -> None:
    rec = Recorder(client)
    rec.record(19727, "failed_to_queue", "greeting:ratelimited:user_queued_jobs:3:5")
    rec.record(19727, "failed_to_queue", "greeting:locked", amount=4)
    rec.record(19727, "failed_to_queue", "greeting:locked")
    rec.record(19727, "failed", "sync:llm:empathy:RateLimitError", amount=2)
    assert read_hash(client, COUNTS.format(d=19727)) == {"failed_to_queue": 6, "failed": 2}
    assert read_hash(client, EXTRA.format(d=19727, e="failed_to_queue")) == {
        "greeting:ratelimited:user_queued_jobs:3:5": 1,
        "greeting:locked": 5,
    }
    assert read_hash(client, EXTRA.format(d=19727, e="failed")) == {
        "sync:llm:empathy:RateLimitError": 2
    }


def test_record_keeps_unknown_breakdown_keys_verbatim(client: fakeredis.FakeRedis) -> None:
    rec = Recorder(client)
    assert rec.record(5, "requested", "reflection-question")
    assert read_hash(client, EXTRA.format(d=5, e="requested")) == {"reflection-question": 1}


Op = tuple[int, str, str, int]

ops = st.lists(
    st.tuples(
        st.integers(min_value=19700, max_value=19710),
        st.sampled_from(EVENTS),
        st.sampled_from(["greeting", "sync", "unknown", "sync:timed_out", "greeting:locked"]),
        st.integers(min_value=1, max_value=1000),
    ),
    max_size=40,
)


@SETTINGS
@given(st.one_of(st.none(), st.integers(19700, 19710)), ops)
def test_random_records_match_the_tallies(start: int | None, sequence: list[Op]) -> None:
    client = new_client()
    try:
        if start is not None:
            client.set(EARLIEST, str(start))
        rec = Recorder(client)
        model_earliest = start
        counts: dict[int, Counter[str]] = {}
        extras: dict[tuple[int, str], Counter[str]] = {}
        refused: Counter[str] = Counter()
        for d, event, bkey, amount in sequence:
            accepted = model_earliest is None or d >= model_earliest
            assert rec.record(d, event, bkey, amount=amount) is accepted
            if accepted:
                counts.setdefault(d, Counter())[event] += amount
                extras.setdefault((d, event), Counter())[bkey] += amount
                if model_earliest is None:
                    model_earliest = d
            else:
                refused[f"{d}:{event}"] += amount

        assert earliest(client) == model_earliest
        for d, tally in counts.items():
            assert read_hash(client, COUNTS.format(d=d)) == dict(tally)
        for (d, event), tally in extras.items():
            assert read_hash(client, EXTRA.format(d=d, e=event)) == dict(tally)
        assert read_hash(client, family.REFUSED_KEY) == dict(refused)

        expected_keys = {COUNTS.format(d=d) for d in counts}
        expected_keys |= {EXTRA.format(d=d, e=e) for d, e in extras}
        if model_earliest is not None:
            expected_keys.add(EARLIEST)
        if refused:
            expected_keys.add(family.REFUSED_KEY)
        assert {k.decode() for k in client.keys()} == expected_keys

        # conservation: every accepted increment is in both the count and its breakdown
        for d, tally in counts.items():
            for event, n in tally.items():
                assert sum(read_hash(client, EXTRA.format(d=d, e=event)).values()) == n
    finally:
        client.close()


# -- argument checks ------------------------------------------


@pytest.mark.parametrize("event", ["request", "Requested", "", "extra", "earliest"])
def test_unknown_event_is_value_error(client: fakeredis.FakeRedis, event: str) -> None:
    with pytest.raises(ValueError, match="event"):
        Recorder(client).record(10, event, "greeting")
    assert client.keys() == []


@pytest.mark.parametrize("amount", [0, -1, True, False, 1.0, 2.5, "1", None])
def test_bad_amount_is_value_error(client: fakeredis.FakeRedis, amount: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        Recorder(client).record(10, "requested", "greeting", amount=amount)  # type: ignore[arg-type]
    assert client.keys() == []


@pytest.mark.parametrize("unix_date", [True, 10.0, "10", None])
def test_bad_date_is_value_error(client: fakeredis.FakeRedis, unix_date: object) -> None:
    with pytest.raises(ValueError):
        Recorder(client).record(unix_date, "requested", "greeting")  # type: ignore[arg-type]
    assert client.keys() == []


def test_empty_breakdown_is_value_error(client: fakeredis.FakeRedis) -> None:
    with pytest.raises(ValueError):
        Recorder(client).record(10, "requested", "")
    assert client.keys() == []
