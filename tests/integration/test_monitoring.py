"""Failures that look like success, bad dates with their repair commands, and ``status``
as an alerting check (issue 10, items 8 and 9), on a real redis-server."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time

import pytest
import redis

from rotate_stats import family
from rotate_stats.checks import StatusLimits, status
from rotate_stats.database import Store
from rotate_stats.dates import day_start, iso, last_stable, parse_iso
from rotate_stats.health import redis_cli, redis_where
from rotate_stats.redis_side import RedisSide
from rotate_stats.render import render_status
from rotate_stats.report import ExitCode
from rotate_stats.walk import RotateOptions, rotate
from tests.conftest import IN_CI, RedisServer
from tests.helpers import foreign_job, redis_dump

D = parse_iso("2024-06-10")
NOW = day_start(D + 30) + 12 * 3600  # last stable date: D + 28


@pytest.fixture
def db(sqlite: Store) -> Store:
    """SQLite: for tests where the database is a bystander (the store-facing ones use
    ``store``, every backend)."""
    return sqlite


def _db(redis_server: RedisServer, n: int) -> redis.Redis:
    return redis.Redis(port=redis_server.port, db=n)


# -- item 8: earliest absent, but the table stopped growing ---------------------------------


def test_absent_earliest_with_stale_rows_fails_naming_redis_and_database(
    redis_server: RedisServer, redis_client: redis.Redis, store: Store
) -> None:
    """Rotated once into the right database, then pointed at the wrong one: exit 1
    naming the Redis URL, the database number and the newest row, not "nothing to rotate"."""
    foreign_job(redis_client, D, "sync", "completed")
    assert rotate(redis_client, store, now=day_start(D + 3)).exit_code is ExitCode.OK
    wrong = _db(redis_server, 5)
    try:
        report = rotate(wrong, store, now=NOW)
    finally:
        wrong.close()
    assert report.exit_code is ExitCode.FAILURE
    assert report.error is not None
    assert f"redis://localhost:{redis_server.port}/5" in report.error
    assert "(database 5)" in report.error
    assert f"rows up to {iso(D + 1)}" in report.error  # the zero row of D + 1 is the newest
    assert "wrong Redis database, or writers stopped?" in report.error


def test_absent_earliest_with_recent_rows_is_fine(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, db, now=NOW)  # rows up to the last stable date
    redis_client.delete(family.EARLIEST_KEY)
    report = rotate(redis_client, db, now=NOW + 86400)  # one day later: lag 1
    assert report.exit_code is ExitCode.OK, report.error


def test_absent_earliest_on_an_empty_table_is_a_new_installation(
    redis_client: redis.Redis, db: Store
) -> None:
    report = rotate(redis_client, db, now=NOW)
    assert report.exit_code is ExitCode.OK
    assert any("absent: nothing to rotate" in n for n in report.notes)


def test_stale_after_days_is_configurable(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, db, now=day_start(D + 3))  # rows up to D + 1
    redis_client.delete(family.EARLIEST_KEY)
    lag = last_stable(NOW) - (D + 1)
    ok = rotate(redis_client, db, RotateOptions(stale_after_days=lag), now=NOW)
    assert ok.exit_code is ExitCode.OK
    late = rotate(redis_client, db, RotateOptions(stale_after_days=lag - 1), now=NOW)
    assert late.exit_code is ExitCode.FAILURE


def test_redis_where_never_shows_a_password() -> None:
    client = redis.Redis.from_url("rediss://alice:hunter2@redis.example:6380/7")
    try:
        url, db = redis_where(client)
        command = redis_cli(client)
    finally:
        client.close()
    assert (url, db) == ("rediss://alice:***@redis.example:6380/7", 7)
    assert "hunter2" not in command
    assert command == "redis-cli -h redis.example -p 6380 --tls --user alice --askpass -n 7"


# -- item 9: a bad date is reported with the commands that repair it -------------------------


def _run_cli_command(command: str, *extra: str) -> str:
    """Run the redis-cli command line a message gave (with more arguments)."""
    out = subprocess.run(
        [*shlex.split(command), *extra], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.strip()


def test_bad_value_names_the_commands_that_inspect_and_repair_it(
    redis_server: RedisServer, redis_client: redis.Redis, db: Store
) -> None:
    """The walk goes on past the bad date, earliest stays there, and the error's
    commands - run literally - show the value, repair it, and the next run rotates it."""
    for d in (D, D + 1, D + 2):
        foreign_job(redis_client, d, "sync", "completed")
    redis_client.hset(family.extra_key(D + 1, "completed"), "sync", "two")
    report = rotate(redis_client, db, RotateOptions(batch_size=2), now=NOW)
    assert report.exit_code is ExitCode.FAILURE
    assert report.error is not None
    assert int(redis_client.get(family.EARLIEST_KEY)) == D + 1
    assert iso(D + 2) in {r.retrieved_for for r in db.rows(None, None)}
    key = family.extra_key(D + 1, "completed")
    cli = f"redis-cli -h localhost -p {redis_server.port} -n 0"
    inspect = f"inspect: {cli} HGET {key} sync"
    assert inspect in report.error
    assert f"repair: {cli} HSET {key} sync <the right count>" in report.error
    assert f"{cli} HDEL {key} sync" in report.error
    assert f"then: rotate-stats --date {iso(D + 1)}" in report.error
    if IN_CI or shutil.which("redis-cli"):  # the commands themselves, run literally
        assert _run_cli_command(inspect.removeprefix("inspect: ")) == "two"
        _run_cli_command(f"{cli} HSET {key} sync", "1")
    else:
        redis_client.hset(key, "sync", "1")
    again = rotate(redis_client, db, now=NOW)
    assert again.exit_code is ExitCode.OK, again.error
    assert (
        next(r for r in db.rows(None, None) if r.retrieved_for == iso(D + 1)).day.count("completed")
        == 1
    )


def test_key_of_the_wrong_type_names_type_and_rename(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    key = family.extra_key(D, "queued")
    redis_client.delete(key)
    redis_client.rpush(key, "x")
    before = {k: v for k, v in redis_dump(redis_client).items() if b":%d" % D in k}
    report = rotate(redis_client, db, now=NOW)
    assert report.exit_code is ExitCode.FAILURE and report.error is not None
    assert f"TYPE {key}" in report.error and f"RENAME {key} bad:{key}" in report.error
    assert after_keys(redis_client, D) == before


def after_keys(client: redis.Redis, d: int) -> dict[bytes, object]:
    return {k: v for k, v in redis_dump(client).items() if b":%d" % d in k}


def test_unprintable_field_name_gets_an_hscan(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.hset(family.extra_key(D, "failed"), "sync:a\x00b", "1")
    report = rotate(redis_client, db, now=NOW)
    assert report.error is not None
    assert f"HSCAN {family.extra_key(D, 'failed')} 0" in report.error


# -- item 8: status as an alerting check ------------------------------------------------------


def _status(client: redis.Redis, store: Store | None, **limits: float) -> dict[str, object]:
    st = status(RedisSide(client), store, now=NOW, limits=StatusLimits(**limits))  # type: ignore[arg-type]
    data = st.as_dict()
    assert data["exit_code"] == int(st.exit_code)
    return data


def _problems(data: dict[str, object]) -> set[str]:
    return {p["check"] for p in data["problems"]}  # type: ignore[index, attr-defined]


def test_status_healthy_after_a_run(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, db, now=NOW)
    data = _status(redis_client, db)
    assert data["problems"] == [] and data["exit_code"] == 0 and data["healthy"] is True
    assert data["newest_row"] == iso(last_stable(NOW))


def test_status_broken_earliest(redis_client: redis.Redis, db: Store) -> None:
    redis_client.set(family.EARLIEST_KEY, "yesterday")
    data = _status(redis_client, db)
    assert "earliest" in _problems(data) and data["exit_code"] == 1


def test_status_orphaned_keys(redis_client: redis.Redis, db: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, db, now=NOW)
    redis_client.hincrby(family.counts_key(D - 5), "requested", 1)  # earliest not lowered
    data = _status(redis_client, db)
    assert _problems(data) == {"orphaned-keys"}
    assert iso(D - 5) in str(data["problems"])


def test_status_backlog_threshold(redis_client: redis.Redis, db: Store) -> None:
    for d in range(last_stable(NOW) - 2, last_stable(NOW) + 1):  # backlog of 3 dates
        foreign_job(redis_client, d, "sync", "completed")
    assert "backlog" in _problems(_status(redis_client, None))
    assert "backlog" not in _problems(_status(redis_client, None, backlog_days=3))


def test_status_stale_newest_row(redis_client: redis.Redis, store: Store) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, store, now=day_start(D + 3))  # rows up to D + 1
    redis_client.set(family.EARLIEST_KEY, last_stable(NOW) + 1)  # no backlog
    data = _status(redis_client, store)
    assert _problems(data) == {"stale-newest-row"}
    lag = last_stable(NOW) - (D + 1)
    assert _problems(_status(redis_client, store, stale_after_days=lag)) == set()


def test_status_shows_stuck_claims(
    redis_client: redis.Redis, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that failed leaves its claims in Redis with no lock held: stuck."""
    foreign_job(redis_client, D, "sync", "completed")

    def fail(*_: object, **__: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as m:
        m.setattr(type(db), "commit", fail)
        with pytest.raises(RuntimeError):
            rotate(redis_client, db, now=NOW)
    assert redis_client.get(family.LOCK_KEY) is None
    data = _status(redis_client, db, stuck_claim_after=0)
    assert "stuck-claims" in _problems(data)
    claims = data["claims"]
    assert isinstance(claims, list) and [c["date"] for c in claims] == [iso(D)]
    assert claims[0]["stuck"] is True and claims[0]["idle_seconds"] >= 0
    # younger than the threshold: shown, not a problem
    fresh = _status(redis_client, db, stuck_claim_after=3600)
    assert "stuck-claims" not in _problems(fresh) and len(fresh["claims"]) == 1  # type: ignore[arg-type]
    text = render_status(
        status(RedisSide(redis_client), db, NOW, StatusLimits(stuck_claim_after=0)), "db"
    )
    (claims_line,) = [line for line in text.splitlines() if line.startswith("claims:")]
    assert f" {iso(D)} (idle " in claims_line and ", stuck)" in claims_line
    assert text.startswith("status: 1 problem\n")  # the claim (one date with keys: no backlog)
    assert "PROBLEM stuck-claims: 1 claim(s)" in text
    # the next run picks it up: healthy again
    assert rotate(redis_client, db, now=NOW).exit_code is ExitCode.OK
    assert _status(redis_client, db, stuck_claim_after=0)["claims"] == []


def test_status_claims_under_a_held_lock_are_not_stuck(
    redis_client: redis.Redis, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign_job(redis_client, D, "sync", "completed")
    RedisSide(redis_client).cut([D], "run")
    redis_client.set(family.LOCK_KEY, "run", px=60_000)
    data = _status(redis_client, db, stuck_claim_after=0)
    assert "stuck-claims" not in _problems(data) and len(data["claims"]) == 1  # type: ignore[arg-type]
    redis_client.delete(family.LOCK_KEY)
    assert "stuck-claims" in _problems(_status(redis_client, db, stuck_claim_after=0))


@pytest.mark.parametrize(
    ("px", "stale"),
    [(None, True), (3_600_000, True), (200_000, False)],
    ids=["no-expiry", "ttl-beyond-lock-ttl", "a-run-in-progress"],
)
def test_status_stale_lock(
    redis_client: redis.Redis, db: Store, px: int | None, stale: bool
) -> None:
    redis_client.set(family.LOCK_KEY, "some-run", px=px)
    data = _status(redis_client, db, lock_ttl=300)
    assert ("stale-lock" in _problems(data)) is stale
    assert data["lock_holder"] == "some-run"


def test_status_not_migrated_is_a_problem(redis_client: redis.Redis, bare_store: Store) -> None:
    data = _status(redis_client, bare_store)
    assert "not-migrated" in _problems(data)


def test_status_reads_idle_times_without_resetting_them(
    redis_client: redis.Redis, db: Store
) -> None:
    """A claim's age is its id key's idle time: status must read it without touching
    the key (Redis counts idle time in whole seconds), or checking every minute would
    keep every stuck claim young."""
    foreign_job(redis_client, D, "sync", "completed")
    RedisSide(redis_client).cut([D], "crashed-run")
    redis_client.set(family.LOCK_KEY, "some-run", px=60_000)
    time.sleep(2.2)
    first = _status(redis_client, db)
    redis_client.delete(family.LOCK_KEY)
    second = _status(redis_client, db, stuck_claim_after=2)
    assert first["lock_idle_seconds"] >= 2  # type: ignore[operator]
    assert [c["idle_seconds"] >= 2 for c in second["claims"]] == [True]  # type: ignore[attr-defined, index]
    assert "stuck-claims" in _problems(second)


def test_status_lock_idle_is_unknown_under_lfu(redis_client: redis.Redis, db: Store) -> None:
    redis_client.set(family.LOCK_KEY, "some-run", px=60_000)
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "volatile-lfu")
    try:
        data = _status(redis_client, db, lock_ttl=300)
    finally:
        redis_client.config_set("maxmemory-policy", policy)
    assert data["lock_idle_seconds"] is None and data["problems"] == []
