"""Fast rotation tests on fakeredis (Lua) and SQLite, with the clock frozen by freezegun."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from freezegun import freeze_time

from rotate_stats import Recorder, family
from rotate_stats.database import SqliteStore, migrate
from rotate_stats.dates import iso, parse_iso
from rotate_stats.errors import ConfigError
from rotate_stats.report import DateState
from rotate_stats.walk import RotateOptions, rotate


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "s.sqlite3"))
    migrate(s)
    yield s
    s.close()


# 2024-03-11 00:30 in Los Angeles (07:30 UTC, PDT): today is 03-11, so 03-09 is the last
# stable date, and 03-10 (the 23-hour DST day) is "yesterday".
@freeze_time("2024-03-11 07:30:00")
def test_rotation_stops_at_today_minus_two_in_los_angeles(
    client: fakeredis.FakeRedis, store: SqliteStore
) -> None:
    recorder = Recorder(client)
    for day in ("2024-03-08", "2024-03-09", "2024-03-10"):
        assert recorder.record(parse_iso(day), "requested", "sync")
        assert recorder.record(parse_iso(day), "failed_to_queue", "sync:locked")
    report = rotate(client, store)
    assert [iso(o.unix_date) for o in report.outcomes] == ["2024-03-08", "2024-03-09"]
    assert all(o.state is DateState.INSERTED for o in report.outcomes)
    assert report.findings == []
    assert int(client.get(family.EARLIEST_KEY)) == parse_iso("2024-03-10")
    assert client.hget(family.counts_key(parse_iso("2024-03-10")), "requested") == b"1"
    with pytest.raises(ConfigError, match="2024-03-10"):
        rotate(client, store, RotateOptions(first=parse_iso("2024-03-10")))


@freeze_time("2024-03-11 06:59:59")  # one second earlier it is still 03-10 in LA
def test_an_hour_earlier_the_last_stable_date_is_one_less(
    client: fakeredis.FakeRedis, store: SqliteStore
) -> None:
    recorder = Recorder(client)
    recorder.record(parse_iso("2024-03-08"), "requested", "sync")
    recorder.record(parse_iso("2024-03-09"), "requested", "sync")
    report = rotate(client, store)
    assert [iso(o.unix_date) for o in report.outcomes] == ["2024-03-08"]
