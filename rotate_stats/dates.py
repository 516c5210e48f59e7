"""Unix dates of calendar days in America/Los_Angeles, and which of them are stable.

A unix date is the number of whole days between 1970-01-01 and a calendar
date. Stats dates are calendar dates in Los Angeles, so a "day" is 23 or 25
hours long around DST changes. Writers drop events for requests more than one
unix day old, so date ``d`` can no longer change once ``d + 1`` has fully
passed in Los Angeles: the last stable date is ``today_LA - 2``.

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


def unix_date_at(timestamp: float) -> int:
    """The Los Angeles unix date at a moment given in seconds since the epoch."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=pytz.utc).astimezone(TIMEZONE)
    return unix_date_of(moment.date())


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
    midnight = TIMEZONE.localize(dt.datetime.combine(date_of(unix_date), dt.time()))
    return midnight.timestamp()


def day_length(unix_date: int) -> float:
    """Length of the date in Los Angeles in seconds: 82800, 86400 or 90000."""
    return day_start(unix_date + 1) - day_start(unix_date)
