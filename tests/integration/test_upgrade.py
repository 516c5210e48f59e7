"""An existing deployment upgrades in place: from the Redis and database state an earlier
version left behind, the current one finishes every date exactly once.

The states (``tests/fixtures/upgrade/<commit>``, written by that commit's own code with
``generate.py``): two dates rotated, one of them with a late write since; a date
committed whose release never ran; a date claimed and never committed; two dates of
live keys; the lock of a run that died, still held. ``4e2b4f9`` is the last version
before exactly-once round three (its ledger has no family, sequence or watermarks:
migration 0003 adds them); ``5dc96e4`` is the version that closed that round.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import redis

from rotate_stats import SqliteStore, family, migrate
from rotate_stats.database import pending_migrations
from rotate_stats.errors import LockHeld, NotMigrated
from rotate_stats.report import DateState
from rotate_stats.walk import RotateOptions, rotate
from tests.helpers import redis_dump, stored_tally, tally_redis

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade"
STATES = sorted(p.name for p in FIXTURES.iterdir() if (p / "redis.json").exists())
NOW = 1_700_000_000.0  # generate.py's clock
D0 = 19000


def load(client: redis.Redis, directory: Path) -> None:
    """The keys of ``redis.json``, with their TTLs."""
    for key, entry in json.loads((directory / "redis.json").read_text()).items():
        if entry["type"] == "hash":
            client.hset(key, mapping=entry["value"])
        else:
            client.set(key, base64.b64decode(entry["value"]))
        if entry["pttl"] > 0:
            client.pexpire(key, entry["pttl"])


def written(directory: Path) -> Counter[tuple[int, str, str | None]]:
    out: Counter[tuple[int, str, str | None]] = Counter()
    for key, value in json.loads((directory / "written.json").read_text()).items():
        d, event, breakdown = key.split("|", 2)
        out[int(d), event, breakdown or None] += value
    return out


def test_there_are_states_to_upgrade_from() -> None:
    assert {"4e2b4f9", "5dc96e4"} <= set(STATES)


@pytest.mark.parametrize("state", STATES)
def test_an_earlier_versions_state_is_finished_exactly_once(
    state: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    directory = FIXTURES / state
    load(redis_client, directory)
    shutil.copy(directory / "stats.db", tmp_path / "stats.db")
    store = SqliteStore(str(tmp_path / "stats.db"))
    try:
        if pending_migrations(store):  # an older schema: runs refuse until migrate
            with pytest.raises(NotMigrated):
                rotate(redis_client, store, RotateOptions(), now=NOW)
        migrate(store)
        assert pending_migrations(store) == []
        before = redis_dump(redis_client)
        with pytest.raises(LockHeld):  # the dead run's lock still holds: nothing done
            rotate(redis_client, store, RotateOptions(), now=NOW)
        assert redis_dump(redis_client) == before
        redis_client.delete(family.LOCK_KEY)  # it expires (an hour); the next run goes on
        report = rotate(redis_client, store, RotateOptions(), now=NOW)
        assert report.error is None, report.error
        states = {o.unix_date: o.state for o in report.outcomes}
        assert states[D0] is DateState.MERGED  # the late write, added once
        assert states[D0 + 2] is DateState.ALREADY_APPLIED  # committed, never released
        assert states[D0 + 3] is DateState.INSERTED  # claimed, never committed
        assert +(stored_tally(store) + Counter(tally_redis(redis_client))) == +written(directory)
        assert tally_redis(redis_client) == {}
        again = rotate(redis_client, store, RotateOptions(), now=NOW)  # the next night
        assert again.error is None
        assert all(o.state is DateState.UNCHANGED for o in again.outcomes)
        assert +stored_tally(store) == +written(directory)
    finally:
        store.close()
