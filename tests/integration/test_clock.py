"""The job's clock against Redis TIME on a real redis-server (issue 8, item 9)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import redis
from freezegun import freeze_time

from rotate_stats.database import SqliteStore
from rotate_stats.dates import last_stable
from rotate_stats.errors import ClockSkew
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import foreign_job, redis_dump


def ahead(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time() + seconds, dt.UTC)


def test_a_job_clock_a_day_ahead_refuses_to_run(
    redis_client: redis.Redis, sqlite: SqliteStore
) -> None:
    yesterday = last_stable(time.time()) + 1  # not stable yet by the true clock
    foreign_job(redis_client, yesterday, "sync", "completed")
    before = redis_dump(redis_client)
    with freeze_time(ahead(86400), tick=True):
        with pytest.raises(ClockSkew) as info:
            rotate(redis_client, sqlite)
    message = str(info.value)
    assert "Redis TIME" in message and "+86400s" in message.replace("+86399s", "+86400s")
    assert "ROTATE_STATS_MAX_CLOCK_SKEW=300s" in message
    assert redis_dump(redis_client) == before and sqlite.rows(None, None) == []


def test_a_small_difference_is_fine_and_the_check_can_be_turned_off(
    redis_client: redis.Redis, sqlite: SqliteStore
) -> None:
    foreign_job(redis_client, last_stable(time.time()) - 1, "sync", "completed")
    with freeze_time(ahead(60), tick=True):
        assert rotate(redis_client, sqlite, RotateOptions(scan_orphans=False)).error is None
    with freeze_time(ahead(86400), tick=True):
        report = rotate(redis_client, sqlite, RotateOptions(max_clock_skew=0, scan_orphans=False))
    assert report.error is None
