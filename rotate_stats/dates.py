"""Unix dates of calendar days in America/Los_Angeles, and which of them are stable.

A unix date is the number of whole days between 1970-01-01 and a calendar
date. Stats dates are calendar dates in Los Angeles, so a "day" is 23 or 25
hours long around DST changes. Writers drop events for requests more than one
unix day old, so date ``d`` can no longer change once ``d + 1`` has fully
passed in Los Angeles: the last stable date is ``today_LA - 2``.

pytz's table for America/Los_Angeles ends in 2037 (after its last transition
it would report standard time all year). Past that point the current US rule
(Energy Policy Act of 2005: daylight time from the second Sunday of March to
the first Sunday of November, switching at 02:00 local) is applied here, so
dates are right through 2100.

Pure: pytz only, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re

import pytz

TIMEZONE = pytz.timezone("America/Los_Angeles")
EPOCH = dt.date(1970, 1, 1)
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def unix_date_of(day: dt.date) -> int:
    """The unix date of a calendar date."""
    return (day - EPOCH).days


def date_of(unix_date: int) -> dt.date:
    """The calendar date of a unix date."""
    return EPOCH + dt.timedelta(days=unix_date)


def iso(unix_date: int) -> str:
    """``YYYY-MM-DD`` of a unix date (the ``retrieved_for`` column)."""
    return date_of(unix_date).isoformat()


def parse_iso(text: str) -> int:
    """The unix date of a strict ``YYYY-MM-DD`` string; ValueError names what is wrong."""
    if not _ISO.fullmatch(text):
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD")
    try:
        return unix_date_of(dt.date.fromisoformat(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid calendar date ({exc})") from None


_STANDARD = dt.timedelta(hours=-8)
_DAYLIGHT = dt.timedelta(hours=-7)
_RULE_FROM = dt.datetime(2038, 1, 1, tzinfo=pytz.utc)
"""From here on the US rule applies; pytz's last transition is 2037-11-01."""


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def _dst_dates(year: int) -> tuple[dt.date, dt.date]:
    """(start, end) calendar dates of daylight time in a year under the US rule."""
    return _nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)


def _utc_offset(moment: dt.datetime) -> dt.timedelta:
    """Los Angeles offset from UTC at an aware moment."""
    if moment < _RULE_FROM:
        offset = moment.astimezone(TIMEZONE).utcoffset()
        assert offset is not None
        return offset
    start, end = _dst_dates(moment.year)
    # 02:00 PST = 10:00 UTC starts daylight time; 02:00 PDT = 09:00 UTC ends it
    begins = dt.datetime.combine(start, dt.time(10), tzinfo=pytz.utc)
    ends = dt.datetime.combine(end, dt.time(9), tzinfo=pytz.utc)
    return _DAYLIGHT if begins <= moment < ends else _STANDARD


def unix_date_at(timestamp: float) -> int:
    """The Los Angeles unix date at a moment given in seconds since the epoch."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=pytz.utc)
    return unix_date_of((moment + _utc_offset(moment)).date())


def today(now: float) -> int:
    """Today's unix date in Los Angeles."""
    return unix_date_at(now)


def last_stable(now: float) -> int:
    """The newest unix date that can no longer change: today in Los Angeles minus two."""
    return today(now) - 2


def is_stable(unix_date: int, now: float) -> bool:
    """Whether a date may be rotated at ``now`` (today and yesterday never are)."""
    return unix_date <= last_stable(now)


def day_start(unix_date: int) -> float:
    """Seconds since the epoch at local midnight starting the date in Los Angeles."""
    day = date_of(unix_date)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=pytz.utc)
    if midnight - _DAYLIGHT < _RULE_FROM:
        return TIMEZONE.localize(dt.datetime.combine(day, dt.time())).timestamp()
    start, end = _dst_dates(day.year)
    # midnight precedes the 02:00 switch: daylight on (start, end], standard otherwise
    offset = _DAYLIGHT if start < day <= end else _STANDARD
    return (midnight - offset).timestamp()


def day_length(unix_date: int) -> float:
    """Length of the date in Los Angeles in seconds: 82800, 86400 or 90000."""
    return day_start(unix_date + 1) - day_start(unix_date)
