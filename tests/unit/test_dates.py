"""Date math of rotate_stats.dates, checked against the stdlib zoneinfo database.

The expected values are computed independently of pytz (zoneinfo, plain
datetime arithmetic, or hand-derived facts about Los Angeles DST rules).
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest
from freezegun import freeze_time
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rotate_stats import dates

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
UTC = dt.UTC
SETTINGS = settings(database=None, deadline=None, max_examples=300)

FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(2100, 12, 31)
# pytz-independent reference range where both tz databases carry explicit transitions.
LAST_EXPLICIT_DAY = dt.date(2037, 12, 31)

calendar_days = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)
# Timestamps whose LA date lies in 1970-01-01 .. 2100-12-31 (LA is UTC-8 at 1970-01-01 00:00 UTC).
TS_MIN = 8 * 3600
TS_MAX = int(dt.datetime(2101, 1, 1, 7, 0, tzinfo=UTC).timestamp())
TS_2038 = int(dt.datetime(2038, 1, 1, 8, 0, tzinfo=UTC).timestamp())


def ref_unix_date_at(timestamp: float) -> int:
    """Independent computation: LA calendar date of a timestamp, as days since 1970-01-01."""
    local = dt.datetime.fromtimestamp(timestamp, tz=UTC).astimezone(LA)
    return (local.date() - FIRST_DAY).days


def ref_day_start(day: dt.date) -> float:
    """Independent computation: epoch seconds of local midnight in LA."""
    return dt.datetime.combine(day, dt.time(), tzinfo=LA).timestamp()


def ref_day_length(day: dt.date) -> float:
    return ref_day_start(day + dt.timedelta(days=1)) - ref_day_start(day)


def dst_switch_days(year: int) -> tuple[dt.date, dt.date]:
    """(spring-forward day, fall-back day) of a year, found by scanning zoneinfo offsets."""
    spring = fall = None
    day = dt.date(year, 1, 1)
    while day.year == year:
        before = dt.datetime.combine(day, dt.time(0, 0), tzinfo=LA).utcoffset()
        after = dt.datetime.combine(day, dt.time(23, 0), tzinfo=LA).utcoffset()
        assert before is not None and after is not None
        if after > before:
            spring = day
        elif after < before:
            fall = day
        day += dt.timedelta(days=1)
    assert spring is not None and fall is not None, year
    return spring, fall


# -- unix dates and ISO strings ---------------------------------------------------------------


@SETTINGS
@given(calendar_days)
def test_unix_date_of_and_date_of_round_trip(day: dt.date) -> None:
    n = dates.unix_date_of(day)
    assert n == (day - FIRST_DAY).days
    assert dates.date_of(n) == day


@SETTINGS
@given(st.integers(min_value=0, max_value=(LAST_DAY - FIRST_DAY).days))
def test_date_of_then_unix_date_of_is_identity(n: int) -> None:
    assert dates.unix_date_of(dates.date_of(n)) == n


def test_unix_date_of_known_values() -> None:
    assert dates.unix_date_of(dt.date(1970, 1, 1)) == 0
    assert dates.unix_date_of(dt.date(1970, 1, 2)) == 1
    assert dates.unix_date_of(dt.date(1969, 12, 31)) == -1
    # 2000-01-01 00:00 UTC is 946684800 s = 10957 days after the epoch.
    assert dates.unix_date_of(dt.date(2000, 1, 1)) == 946684800 // 86400


@SETTINGS
@given(calendar_days)
def test_iso_and_parse_iso_round_trip(day: dt.date) -> None:
    n = dates.unix_date_of(day)
    text = dates.iso(n)
    assert text == f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    assert dates.parse_iso(text) == n


@pytest.mark.parametrize(
    "text",
    [
        "2024-1-05",
        "2024-01-5",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "20240105",
        " 2024-01-05",
        "2024-01-05 ",
        "2024-01-05\n",
        "2024-01-05T00:00",
        "2024/01/05",
        "24-01-05",
        "",
        "abcd-ef-gh",
        "２０２４-01-05",
    ],
)
def test_parse_iso_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError) as info:
        dates.parse_iso(text)
    assert repr(text) in str(info.value) or text in str(info.value)


def test_parse_iso_accepts_leap_day() -> None:
    assert dates.parse_iso("2024-02-29") == dates.unix_date_of(dt.date(2024, 2, 29))
    assert dates.parse_iso("2000-02-29") == dates.unix_date_of(dt.date(2000, 2, 29))


# -- LA dates of timestamps -------------------------------------------------------------------


@SETTINGS
@given(st.integers(min_value=TS_MIN, max_value=TS_2038 - 1))
@example(int(dt.datetime(2024, 3, 10, 7, 59, 59, tzinfo=UTC).timestamp()))
@example(int(dt.datetime(2024, 3, 10, 8, 0, 0, tzinfo=UTC).timestamp()))
@example(int(dt.datetime(2024, 11, 3, 6, 59, 59, tzinfo=UTC).timestamp()))
@example(int(dt.datetime(2024, 11, 3, 7, 0, 0, tzinfo=UTC).timestamp()))
@example(int(dt.datetime(2024, 11, 4, 7, 59, 59, tzinfo=UTC).timestamp()))
@example(int(dt.datetime(2024, 11, 4, 8, 0, 0, tzinfo=UTC).timestamp()))
def test_unix_date_at_matches_zoneinfo_until_2037(timestamp: int) -> None:
    assert dates.unix_date_at(timestamp) == ref_unix_date_at(timestamp)


@SETTINGS
@given(st.integers(min_value=TS_2038, max_value=TS_MAX))
@example(int(dt.datetime(2040, 7, 1, 7, 30, tzinfo=UTC).timestamp()))
def test_unix_date_at_matches_zoneinfo_2038_to_2100(timestamp: int) -> None:
    # Los Angeles keeps observing DST after 2037; the LA date must follow it.
    assert dates.unix_date_at(timestamp) == ref_unix_date_at(timestamp)


@SETTINGS
@given(st.floats(min_value=TS_MIN, max_value=TS_2038 - 1, allow_nan=False))
def test_unix_date_at_fractional_timestamps(timestamp: float) -> None:
    assert dates.unix_date_at(timestamp) == ref_unix_date_at(timestamp)


def test_unix_date_at_does_not_depend_on_process_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    moments = [
        dt.datetime(2024, 3, 10, 7, 59, 59, tzinfo=UTC).timestamp(),
        dt.datetime(2024, 3, 10, 8, 0, 0, tzinfo=UTC).timestamp(),
        dt.datetime(2024, 7, 1, 6, 59, 59, tzinfo=UTC).timestamp(),
        dt.datetime(2024, 7, 1, 7, 0, 0, tzinfo=UTC).timestamp(),
    ]
    expected = [ref_unix_date_at(m) for m in moments]
    try:
        for tz in ("Asia/Tokyo", "UTC", "Pacific/Kiritimati", "America/New_York"):
            monkeypatch.setenv("TZ", tz)
            time.tzset()
            assert [dates.unix_date_at(m) for m in moments] == expected, tz
    finally:
        monkeypatch.undo()
        time.tzset()


# -- day starts and lengths -------------------------------------------------------------------


def test_day_length_on_dst_days_2024() -> None:
    # 2024: spring forward on Sunday 2024-03-10, fall back on Sunday 2024-11-03.
    spring = dates.unix_date_of(dt.date(2024, 3, 10))
    fall = dates.unix_date_of(dt.date(2024, 11, 3))
    assert dates.day_length(spring) == 82800
    assert dates.day_length(fall) == 90000
    assert dates.day_length(spring - 1) == 86400
    assert dates.day_length(spring + 1) == 86400
    assert dates.day_length(fall - 1) == 86400
    assert dates.day_length(fall + 1) == 86400


def test_day_start_known_values_2024() -> None:
    # Midnight PST is 08:00 UTC, midnight PDT is 07:00 UTC.
    cases = {
        dt.date(2024, 3, 10): dt.datetime(2024, 3, 10, 8, 0, tzinfo=UTC),
        dt.date(2024, 3, 11): dt.datetime(2024, 3, 11, 7, 0, tzinfo=UTC),
        dt.date(2024, 11, 3): dt.datetime(2024, 11, 3, 7, 0, tzinfo=UTC),
        dt.date(2024, 11, 4): dt.datetime(2024, 11, 4, 8, 0, tzinfo=UTC),
    }
    for day, start in cases.items():
        assert dates.day_start(dates.unix_date_of(day)) == start.timestamp(), day


@pytest.mark.parametrize("year", [1970, 1974, 1987, 2006, 2007, 2024, 2037])
def test_day_length_on_every_day_of_year_until_2037(year: int) -> None:
    spring, fall = dst_switch_days(year)
    day = dt.date(year, 1, 1)
    while day.year == year:
        expected = 82800 if day == spring else 90000 if day == fall else 86400
        assert ref_day_length(day) == expected  # sanity of the reference
        assert dates.day_length(dates.unix_date_of(day)) == expected, day
        day += dt.timedelta(days=1)


def test_day_length_on_dst_days_after_2037() -> None:
    # Los Angeles keeps switching to DST every year (tz database rule); so must the dates.
    found = {}
    expected = {}
    for year in (2038, 2050, 2100):
        spring, fall = dst_switch_days(year)
        found[spring] = dates.day_length(dates.unix_date_of(spring))
        found[fall] = dates.day_length(dates.unix_date_of(fall))
        expected[spring], expected[fall] = 82800, 90000
    assert found == expected


@SETTINGS
@given(st.dates(min_value=FIRST_DAY, max_value=LAST_EXPLICIT_DAY))
def test_day_start_and_length_match_zoneinfo_until_2037(day: dt.date) -> None:
    n = dates.unix_date_of(day)
    assert dates.day_start(n) == ref_day_start(day)
    assert dates.day_length(n) == ref_day_length(day)
    assert dates.day_length(n) in (82800, 86400, 90000)


@SETTINGS
@given(st.dates(min_value=dt.date(2038, 1, 1), max_value=LAST_DAY))
def test_day_start_matches_zoneinfo_2038_to_2100(day: dt.date) -> None:
    assert dates.day_start(dates.unix_date_of(day)) == ref_day_start(day)


@SETTINGS
@given(st.dates(min_value=dt.date(1970, 1, 2), max_value=LAST_DAY))
def test_day_start_maps_back_to_its_date(day: dt.date) -> None:
    n = dates.unix_date_of(day)
    start = dates.day_start(n)
    assert dates.unix_date_at(start) == n
    assert dates.unix_date_at(start - 1) == n - 1
    assert dates.unix_date_at(start + dates.day_length(n) - 1) == n
    assert dates.unix_date_at(start + dates.day_length(n)) == n + 1


# -- stability --------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(min_value=TS_MIN + 3 * 86400, max_value=TS_2038 - 1))
def test_last_stable_is_today_minus_two(timestamp: int) -> None:
    today = ref_unix_date_at(timestamp)
    assert dates.today(timestamp) == today
    assert dates.last_stable(timestamp) == today - 2
    assert dates.is_stable(today - 2, timestamp)
    assert dates.is_stable(today - 100, timestamp)
    assert not dates.is_stable(today - 1, timestamp)
    assert not dates.is_stable(today, timestamp)
    assert not dates.is_stable(today + 1, timestamp)


@pytest.mark.parametrize(
    ("frozen_utc", "la_date"),
    [
        # PST: LA midnight is 08:00 UTC.
        ("2024-03-10 07:59:59", dt.date(2024, 3, 9)),
        ("2024-03-10 08:00:00", dt.date(2024, 3, 10)),
        # Spring forward at 10:00 UTC (02:00 PST -> 03:00 PDT), same LA date.
        ("2024-03-10 09:59:59", dt.date(2024, 3, 10)),
        ("2024-03-10 10:00:00", dt.date(2024, 3, 10)),
        # PDT: the next LA midnight is 07:00 UTC.
        ("2024-03-11 06:59:59", dt.date(2024, 3, 10)),
        ("2024-03-11 07:00:00", dt.date(2024, 3, 11)),
        ("2024-11-03 06:59:59", dt.date(2024, 11, 2)),
        ("2024-11-03 07:00:00", dt.date(2024, 11, 3)),
        # Fall back at 09:00 UTC (02:00 PDT -> 01:00 PST), same LA date.
        ("2024-11-03 08:59:59", dt.date(2024, 11, 3)),
        ("2024-11-03 09:00:00", dt.date(2024, 11, 3)),
        ("2024-11-04 07:59:59", dt.date(2024, 11, 3)),
        ("2024-11-04 08:00:00", dt.date(2024, 11, 4)),
        ("2024-12-31 07:59:59", dt.date(2024, 12, 30)),
        ("2025-01-01 07:59:59", dt.date(2024, 12, 31)),
        ("2025-01-01 08:00:00", dt.date(2025, 1, 1)),
    ],
)
def test_today_and_stability_around_midnight_and_dst(frozen_utc: str, la_date: dt.date) -> None:
    with freeze_time(frozen_utc):
        now = time.time()
        assert now == dt.datetime.fromisoformat(frozen_utc).replace(tzinfo=UTC).timestamp()
        today = dates.unix_date_of(la_date)
        assert dates.today(now) == today
        assert dates.last_stable(now) == today - 2
        assert dates.iso(dates.last_stable(now)) == (la_date - dt.timedelta(days=2)).isoformat()
        assert dates.is_stable(today - 2, now)
        assert not dates.is_stable(today - 1, now)
        assert not dates.is_stable(today, now)


@pytest.mark.parametrize(
    "day", [dt.date(2024, 3, 10), dt.date(2024, 3, 11), dt.date(2024, 11, 3), dt.date(2024, 11, 4)]
)
def test_date_becomes_stable_exactly_when_two_days_later_starts(day: dt.date) -> None:
    n = dates.unix_date_of(day)
    # d is stable once d + 1 has fully passed, i.e. from LA midnight starting d + 2.
    boundary = ref_day_start(day + dt.timedelta(days=2))
    with freeze_time(dt.datetime.fromtimestamp(boundary - 1, tz=UTC)):
        assert not dates.is_stable(n, time.time())
        assert dates.is_stable(n - 1, time.time())
    with freeze_time(dt.datetime.fromtimestamp(boundary, tz=UTC)):
        assert dates.is_stable(n, time.time())
        assert not dates.is_stable(n + 1, time.time())
