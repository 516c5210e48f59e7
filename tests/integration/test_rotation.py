"""End-to-end rotation on a real redis-server: rows, keys, earliest, idempotence."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import Store
from rotate_stats.dates import day_start, iso, last_stable, parse_iso, today
from rotate_stats.errors import ConfigError
from rotate_stats.report import DateState
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import foreign_job, foreign_write, redis_dump

# Noon in Los Angeles on 2024-12-01: stable dates end on 2024-11-29.
NOW = day_start(parse_iso("2024-12-01")) + 12 * 3600
DATES_2024 = ["2024-03-05", "2024-03-06", "2024-03-10", "2024-03-12", "2024-11-03"]
OUTCOMES = [
    "completed",
    "completed",
    "timed_out",
    "ftq:locked",
    "llm:empathy:RateLimitError",
    "ftq:ratelimited:user_queued_jobs:3:5",
]
TYPES = ["greeting", "system_chat", "reflection_question", "sync", "summarize"]


def write_traffic(
    client: redis.Redis, isos: list[str]
) -> dict[str, Counter[tuple[str, str | None]]]:
    """Jobs for each date, written the way existing writers do; returns the expected tallies."""
    expected: dict[str, Counter[tuple[str, str | None]]] = {}
    for n, day in enumerate(isos):
        d = parse_iso(day)
        tally: Counter[tuple[str, str | None]] = Counter()
        for i in range(7 + 3 * n):
            job_type, outcome = TYPES[i % len(TYPES)], OUTCOMES[(i + n) % len(OUTCOMES)]
            foreign_job(client, d, job_type, outcome)
            tally["requested", None] += 1
            tally["requested", job_type] += 1
            if outcome.startswith("ftq:"):
                tally["failed_to_queue", None] += 1
                tally["failed_to_queue", f"{job_type}:{outcome[4:]}"] += 1
                continue
            for event in ("queued", "started"):
                tally[event, None] += 1
                tally[event, job_type] += 1
            event, key = (
                ("completed", job_type)
                if outcome == "completed"
                else ("failed", f"{job_type}:{outcome}")
            )
            tally[event, None] += 1
            tally[event, key] += 1
        expected[day] = tally
    return expected


def rows_by_date(store: Store) -> dict[str, object]:
    return {r.retrieved_for: r for r in store.rows(None, None)}


def raw_rows(store: Store) -> list[tuple[object, ...]]:
    """Rows exactly as stored, breakdown text included (to compare byte for byte)."""
    out = []
    for r in store.rows(None, None):
        out.append(
            (
                r.retrieved_for,
                r.retrieved_at,
                tuple(sorted(r.day.counts.items())),
                json.dumps(r.day.breakdowns, sort_keys=True),
            )
        )
    return out


def test_plain_run_rotates_every_date_exactly(redis_client: redis.Redis, store: Store) -> None:
    expected = write_traffic(redis_client, DATES_2024)
    report = rotate(redis_client, store, now=NOW)
    assert report.error is None
    first, last = parse_iso(DATES_2024[0]), last_stable(NOW)
    rows = store.rows(None, None)
    assert [r.retrieved_for for r in rows] == [iso(d) for d in range(first, last + 1)]
    for row in rows:
        tally = expected.get(row.retrieved_for, Counter())
        for event in family.EVENTS:
            assert row.day.count(event) == tally[event, None], (row.retrieved_for, event)
            want = {k: v for (e, k), v in tally.items() if e == event and k is not None}
            assert dict(row.day.breakdown(event)) == want
    states = Counter(o.state for o in report.outcomes)
    assert states[DateState.INSERTED] == len(DATES_2024)
    assert states[DateState.ZERO_ROW] == last - first + 1 - len(DATES_2024)
    leftover = sorted(k.decode() for k in redis_client.scan_iter())
    # the proof writes the fence key (with a TTL) even where no fence waits on it
    assert leftover == sorted([family.CLAIM_SEQUENCE_KEY, family.EARLIEST_KEY, family.FENCE_KEY])
    assert int(redis_client.get(family.CLAIM_SEQUENCE_KEY)) == len(DATES_2024)  # one per claim
    assert int(redis_client.get(family.EARLIEST_KEY)) == today(NOW) - 1


def test_breakdowns_are_stored_as_sorted_json(redis_client: redis.Redis, store: Store) -> None:
    d = parse_iso("2024-05-01")
    for job_type in ("sync", "greeting", "unknown", "summarize"):
        foreign_job(redis_client, d, job_type, "completed")
    rotate(redis_client, store, RotateOptions(first=d), now=NOW)
    foreign_job(redis_client, d, "reflection_question", "completed")
    foreign_job(redis_client, d, "greeting", "completed")
    rotate(redis_client, store, RotateOptions(first=d), now=NOW)  # merge path sorts too
    texts = [_raw_breakdown(store, "2024-05-01", e) for e in ("requested", "completed")]
    for text in texts:
        keys = [k for k, _ in json.loads(text, object_pairs_hook=list)]
        assert keys == sorted(keys) and len(keys) == 5
    assert json.loads(texts[0])["greeting"] == 2


def _raw_breakdown(store: Store, day: str, event: str) -> str:
    conn = getattr(store, "_conn", None)
    if hasattr(conn, "execute") and not hasattr(conn, "_fetch_response"):
        sql = f"SELECT {event}_breakdown FROM journal_chat_job_stats WHERE retrieved_for = ?"
        return str(conn.execute(sql, (day,)).fetchone()[0])
    results = store._request(  # type: ignore[attr-defined]
        "POST",
        "/db/query?level=strong",
        [[f"SELECT {event}_breakdown FROM journal_chat_job_stats WHERE retrieved_for = ?", day]],
    )
    return str(results[0]["values"][0][0])


def test_second_run_changes_nothing(redis_client: redis.Redis, store: Store) -> None:
    write_traffic(redis_client, DATES_2024)
    rotate(redis_client, store, now=NOW)
    rows, keys = raw_rows(store), redis_dump(redis_client)
    again = rotate(redis_client, store, now=NOW)
    assert again.outcomes == [] and again.error is None
    assert raw_rows(store) == rows
    assert redis_dump(redis_client) == keys


def test_date_without_keys_keeps_its_row(redis_client: redis.Redis, store: Store) -> None:
    write_traffic(redis_client, DATES_2024)
    rotate(redis_client, store, now=NOW)
    rows = raw_rows(store)
    d = parse_iso(DATES_2024[1])
    report = rotate(redis_client, store, RotateOptions(first=d), now=NOW + 3600)
    assert [o.state for o in report.outcomes] == [DateState.UNCHANGED]
    assert raw_rows(store) == rows


@pytest.mark.parametrize("days_back", [0, 1])
def test_today_and_yesterday_are_refused(
    redis_client: redis.Redis, store: Store, days_back: int
) -> None:
    d = today(NOW) - days_back
    foreign_job(redis_client, d, "sync", "completed")
    before = redis_dump(redis_client)
    with pytest.raises(ConfigError, match="today and yesterday"):
        rotate(redis_client, store, RotateOptions(first=d), now=NOW)
    assert redis_dump(redis_client) == before
    assert store.rows(None, None) == []


def test_late_foreign_write_is_added_exactly_once(redis_client: redis.Redis, store: Store) -> None:
    write_traffic(redis_client, DATES_2024)
    rotate(redis_client, store, now=NOW)
    day = DATES_2024[2]
    before = rows_by_date(store)[day]
    foreign_write(redis_client, parse_iso(day), "requested", "sync", 2)
    foreign_write(redis_client, parse_iso(day), "failed_to_queue", "sync:locked", 2)
    assert int(redis_client.get(family.EARLIEST_KEY)) == parse_iso(day)
    report = rotate(redis_client, store, now=NOW)
    merged = [o for o in report.outcomes if o.state is DateState.MERGED]
    assert [iso(o.unix_date) for o in merged] == [day]
    after = rows_by_date(store)[day]
    assert after.day.count("requested") == before.day.count("requested") + 2  # type: ignore[attr-defined]
    assert after.day.breakdown("failed_to_queue")["sync:locked"] == (  # type: ignore[attr-defined]
        before.day.breakdown("failed_to_queue").get("sync:locked", 0) + 2
    )  # type: ignore[attr-defined]
    rows = raw_rows(store)
    rotate(redis_client, store, now=NOW)
    assert raw_rows(store) == rows
    assert int(redis_client.get(family.EARLIEST_KEY)) == today(NOW) - 1
