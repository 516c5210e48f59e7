"""Keys no run will visit, strange keys and absurd dates (issue 8, items 10 and 11)."""

from __future__ import annotations

import pytest
import redis

from rotate_stats import family
from rotate_stats.checks import status
from rotate_stats.database import SqliteStore
from rotate_stats.dates import iso, last_stable
from rotate_stats.errors import ConfigError, DataError
from rotate_stats.redis_side import RedisSide
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import SET_IF_LOWER, foreign_job, redis_dump
from tests.integration.test_faults import NOW

STABLE = last_stable(NOW)


@pytest.mark.parametrize(
    "stray",
    [
        f"{family.LIVE_PREFIX}:{STABLE - 40}:extra:cancelled",
        f"{family.LIVE_PREFIX}:99999999999",
        f"{family.LIVE_PREFIX}:{'9' * 5000}:extra:requested",
        f"{family.LIVE_PREFIX}:-5",
        f"{family.OWN_PREFIX}:claim:{STABLE - 40}:junk",
    ],
    ids=["unknown-suffix", "date-past-9999", "5000-digit-date", "negative-date", "claim-junk"],
)
def test_a_stray_key_is_reported_as_unknown_not_as_an_orphan(
    redis_client: redis.Redis, sqlite: SqliteStore, stray: str
) -> None:
    redis_client.hset(stray, "x", 1)
    foreign_job(redis_client, STABLE - 3, "sync", "completed")
    report = rotate(redis_client, sqlite, now=NOW)
    assert report.error is None and report.exit_code == 0, report.error
    assert any("not stats keys this job knows" in n and stray[:60] in n for n in report.notes)
    assert redis_client.hget(stray, "x") == b"1"  # left alone
    st = status(RedisSide(redis_client), sqlite, now=NOW)
    assert stray in st.unknown_keys and st.orphaned == {}
    assert stray in st.as_dict()["unknown_keys"]  # type: ignore[operator]


def test_an_orphan_range_longer_than_the_backlog_limit_gets_commands_that_work(
    redis_client: redis.Redis, sqlite: SqliteStore
) -> None:
    first = STABLE - 60
    for d in range(first, first + 30):
        redis_client.hincrby(family.counts_key(d), "requested", 1)
        redis_client.hincrby(family.extra_key(d, "requested"), "sync", 1)
    redis_client.set(family.EARLIEST_KEY, STABLE - 5)
    options = RotateOptions(max_backlog_days=10)
    report = rotate(redis_client, sqlite, options, now=NOW)
    assert report.error is not None and report.exit_code == 1
    command = f"--from {iso(first)} --to {iso(first + 9)}"
    assert command in report.error and "ranges of at most 10 dates" in report.error
    # the suggested command is accepted and rotates its part
    done = rotate(redis_client, sqlite, RotateOptions(first=first, last=first + 9), now=NOW)
    assert done.error is None and len(sqlite.rows(iso(first), iso(first + 9))) == 10


def test_a_writer_between_increment_and_earliest_is_not_an_orphan(
    redis_client: redis.Redis, sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_client.set(family.EARLIEST_KEY, STABLE + 1)  # everything rotated
    late = STABLE - 2
    redis_client.hincrby(family.counts_key(late), "requested", 1)  # the writer's HINCRBY...
    real_scan = RedisSide.scan_keys

    def scan_then_writer_finishes(self: RedisSide) -> tuple[dict[int, list[str]], list[str]]:
        found = real_scan(self)
        self.client.eval(SET_IF_LOWER, 1, family.EARLIEST_KEY, late)  # ...then its earliest
        return found

    monkeypatch.setattr(RedisSide, "scan_keys", scan_then_writer_finishes)
    report = rotate(redis_client, sqlite, now=NOW)
    assert report.error is None, report.error


@pytest.mark.parametrize("raw", ["-99999999", "99999999", "9" * 5000, "-1"])
def test_an_absurd_earliest_is_a_named_error_everywhere(
    redis_client: redis.Redis, sqlite: SqliteStore, raw: str
) -> None:
    foreign_job(redis_client, STABLE - 3, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, raw)
    before = redis_dump(redis_client)
    for options in (RotateOptions(), RotateOptions(dry_run=True)):
        with pytest.raises(DataError) as info:
            rotate(redis_client, sqlite, options, now=NOW)
        assert family.EARLIEST_KEY in str(info.value) and "1970-01-01" in str(info.value)
    st = status(RedisSide(redis_client), sqlite, now=NOW)
    assert st.earliest is None and st.earliest_error and family.EARLIEST_KEY in st.earliest_error
    st.as_dict()
    assert redis_dump(redis_client) == before and sqlite.rows(None, None) == []


def test_a_date_before_1970_is_refused(redis_client: redis.Redis, sqlite: SqliteStore) -> None:
    with pytest.raises(ConfigError, match="on or after 1970-01-01"):
        rotate(redis_client, sqlite, RotateOptions(first=-3, last=2), now=NOW)
