"""The bad-input catalogue (issue 4, item 4): every class of bad input an operator can meet.

Each row plants one bad input, runs ``python -m rotate_stats`` the way cron does and asserts
all of: (a) the exit code README "Exit codes" documents (1 runtime/bad data, 2 usage,
3 violations, 75 lock); (b) a message naming the culprit (key and field, flag, variable or
host) and what was expected; (c) that no Redis key and no database row changed (every key
with its value, every table with its rows, the schema included).

Rows that touch the database run on SQLite and on the rqlite emulator; pure usage errors
run once, on SQLite. ``docs/RELIABILITY.md`` lists the rows with their test ids.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.database import migrate
from rotate_stats.dates import iso, last_stable, today
from rotate_stats.rqlite_store import RqliteStore
from tests.cli.test_cli import Database, Run
from tests.conftest import BACKENDS, backend_marks
from tests.helpers import foreign_job, free_port, redis_dump
from tests.rqlite_emulator import start_emulator

D = last_stable(time.time()) - 10
"""The date that carries the bad input: stable, and ``earliest`` (first date of the walk).
Near today, so a walk that goes on past it stays short."""
KEPT = iso(D - 1)
"""A date whose row is stored before every run on a migrated database, to prove it is kept."""
SECRET = "Pa55-n0t-for-logs"
"""A password planted in URLs; it must never be printed."""

INSERT = (
    f"INSERT INTO {family.TABLE} ({', '.join(family.COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in family.COLUMNS)})"
)
EARLIEST = family.EARLIEST_KEY
COUNTS = family.counts_key(D)


def row(date: str, requested_breakdown: str = '{"sync":1}') -> tuple[object, ...]:
    """A stored row of one completed sync job (valid unless the breakdown is bad)."""
    sync = '{"sync":1}'
    return (date, 1718000000.0, 1, requested_breakdown, 0, "{}", 1, sync, 1, sync, 1, sync, 0, "{}")


# -- the harness ----------------------------------------------------------------------------

Query = Callable[[str], list[tuple[object, ...]]]


def query_of(store: object) -> Query:
    """A read of the test's database, whichever backend it is."""
    if isinstance(store, RqliteStore):
        return lambda sql: [tuple(r) for r in store._query(sql, (), "strong")]
    return lambda sql: [tuple(r) for r in store._query(sql)]  # type: ignore[attr-defined]


def db_state(query: Query) -> dict[str, object]:
    """The schema and every table's rows: what "no row changed" compares."""
    schema = sorted(query("SELECT type, name, sql FROM sqlite_master"), key=repr)
    state: dict[str, object] = {"schema": schema}
    for kind, name, _ in schema:
        if kind == "table" and not str(name).startswith("sqlite_"):
            state[str(name)] = sorted(query(f'SELECT * FROM "{name}"'), key=repr)
    return state


@dataclass
class Ctx:
    """What a row's ``plant`` works with."""

    redis: redis.Redis
    database: Database
    tmp_path: Path
    cleanup: contextlib.ExitStack


@dataclass
class Expect:
    """How the program is run for a row, and what it must answer."""

    code: int
    names: tuple[str, ...]
    """Every one must be in the message: the culprit and what was expected."""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stream: str = "stderr"
    """Where the message is: ``stderr``, or ``stdout`` (the report)."""
    secret: str | None = None
    """Must appear in neither stream."""
    use_database: bool = True
    """Pass the test database's URL (``env`` may still override it)."""
    query: Query | None = None
    """Read this database for (c) instead of the test database."""
    walk_goes_on: bool = False
    """Bad data on D: D stays as it was, the walk rotates the later (empty) dates."""


@dataclass(frozen=True)
class Case:
    id: str
    plant: Callable[[Ctx], Expect]
    migrated: bool = True


DB_CASES: list[Case] = []
"""Rows whose run reaches the database: on every backend."""
USAGE_CASES: list[Case] = []
"""Pure usage errors (and rows with a database of their own): once."""


def case(
    table: list[Case], case_id: str, *, migrated: bool = True
) -> Callable[[Callable[[Ctx], Expect]], Callable[[Ctx], Expect]]:
    def register(plant: Callable[[Ctx], Expect]) -> Callable[[Ctx], Expect]:
        table.append(Case(case_id, plant, migrated))
        return plant

    return register


def exercise(
    c: Case, run: Run, redis_client: redis.Redis, database: Database, tmp_path: Path
) -> None:
    """Plant the row's bad input over a realistic baseline, run, assert (a), (b) and (c)."""
    with contextlib.ExitStack() as cleanup:
        if c.migrated:
            migrate(database.store)
            database.execute(INSERT, *row(KEPT))
        foreign_job(redis_client, D, "sync", "completed")  # also sets earliest to D
        expect = c.plant(Ctx(redis_client, database, tmp_path, cleanup))
        query = expect.query or query_of(database.store)
        keys_before, db_before = redis_dump(redis_client), db_state(query)

        result = run(
            *expect.args, env=expect.env, database=database if expect.use_database else None
        )
        shown = (
            f"exit {result.returncode}\n--stdout--\n{result.stdout}\n--stderr--\n{result.stderr}"
        )
        assert result.returncode == expect.code, shown
        message = result.stderr if expect.stream == "stderr" else result.stdout
        missing = [name for name in expect.names if name not in message]
        assert not missing, f"the message does not name {missing}\n{shown}"
        if expect.secret is not None:
            assert expect.secret not in result.stdout + result.stderr, shown
        assert redis_dump(redis_client) == keys_before, "a Redis key changed"
        after = db_state(query)
        if expect.walk_goes_on:  # zero rows for the empty dates after D, nothing else
            later = [r for r in after[family.TABLE] if str(r[1]) > iso(D)]  # type: ignore[attr-defined]
            assert later and all(r[3] == 0 for r in later), later[:3]
            after[family.TABLE] = [r for r in after[family.TABLE] if r not in later]  # type: ignore[attr-defined]
        assert after == db_before, "a database row changed"


# -- bad data in Redis (exit 1; the date's keys and rows stay as they were) -----------------


def bad_hash_value(key: str, name: str, value: str, expected: str) -> Callable[[Ctx], Expect]:
    def plant(ctx: Ctx) -> Expect:
        ctx.redis.hset(key, name, value)
        names = (key, f"field {name!r}", repr(value), f"expected {expected}")
        return Expect(1, names, walk_goes_on=True)

    return plant


for _id, _key, _name, _value, _expected in [
    ("non-integer-count", COUNTS, "requested", "abc", "a decimal integer"),
    ("float-count", COUNTS, "requested", "1.5", "a decimal integer"),
    ("count-over-64-bits", COUNTS, "requested", "9223372036854775808", "an integer that fits"),
    ("count-with-leading-zeros", COUNTS, "queued", "007", "a decimal integer without leading"),
    ("non-integer-breakdown-value", family.extra_key(D, "started"), "sync", "x", "a decimal"),
    ("unknown-field-in-counts", COUNTS, "requsted", "1", "a field named after an event"),
]:
    case(DB_CASES, _id)(bad_hash_value(_key, _name, _value, _expected))


@case(DB_CASES, "negative-count-strict")
def _negative_strict(ctx: Ctx) -> Expect:
    ctx.redis.hset(COUNTS, "requested", -1)
    ctx.redis.hset(family.extra_key(D, "requested"), "sync", -1)
    names = (iso(D), "stopped", "left in Redis", "1-non-negative", "requested is negative")
    return Expect(3, names, args=("--strict",), stream="stdout")


@case(DB_CASES, "counts-hash-is-a-list")
def _counts_list(ctx: Ctx) -> Expect:
    ctx.redis.delete(COUNTS)
    ctx.redis.rpush(COUNTS, "requested", "1")
    return Expect(1, (COUNTS, "'list'", "expected a hash"), walk_goes_on=True)


@case(DB_CASES, "breakdown-hash-is-a-set")
def _breakdown_set(ctx: Ctx) -> Expect:
    key = family.extra_key(D, "requested")
    ctx.redis.delete(key)
    ctx.redis.sadd(key, "sync")
    return Expect(1, (key, "'set'", "expected a hash"), walk_goes_on=True)


@case(DB_CASES, "breakdown-hash-is-a-string")
def _breakdown_string(ctx: Ctx) -> Expect:
    key = family.extra_key(D, "completed")
    ctx.redis.delete(key)
    ctx.redis.set(key, "sync=1")
    return Expect(1, (key, "'string'", "expected a hash"), walk_goes_on=True)


@case(DB_CASES, "nul-in-breakdown-key")
def _nul(ctx: Ctx) -> Expect:
    key = family.extra_key(D, "failed")
    ctx.redis.hset(COUNTS, "failed", 1)
    ctx.redis.hset(key, "sync:time\x00out", 1)
    return Expect(1, (key, "'sync:time\\x00out'", "without NUL characters"), walk_goes_on=True)


@case(DB_CASES, "claim-hash-without-claim-id")
def _claim_without_id(ctx: Ctx) -> Expect:
    claim = family.claim_keys(D)[0]
    ctx.redis.hset(claim, "requested", 1)
    return Expect(
        1, (claim, "without claim id", f"unless {family.claim_id_key(D)} exists"), walk_goes_on=True
    )


@case(DB_CASES, "claim-id-is-a-hash")
def _claim_id_hash(ctx: Ctx) -> Expect:
    key = family.claim_id_key(D)
    ctx.redis.hset(key, "id", "x")
    return Expect(1, (key, "'hash'", "a string holding a claim id"), walk_goes_on=True)


# -- `earliest` ----------------------------------------------------------------------------


@case(DB_CASES, "earliest-is-a-hash")
def _earliest_hash(ctx: Ctx) -> Expect:
    ctx.redis.delete(EARLIEST)
    ctx.redis.hset(EARLIEST, "date", D)
    return Expect(1, (EARLIEST, "a hash", "expected a string holding a unix date"))


def garbage_earliest(value: str) -> Callable[[Ctx], Expect]:
    def plant(ctx: Ctx) -> Expect:
        ctx.redis.set(EARLIEST, value)
        return Expect(1, (EARLIEST, f"found {value!r}", "expected a unix date"))

    return plant


for _id, _value in [
    ("garbage-earliest-word", "yesterday"),
    ("garbage-earliest-float", "1.5"),
    ("garbage-earliest-empty", ""),
]:
    case(DB_CASES, _id)(garbage_earliest(_value))


@case(DB_CASES, "earliest-in-the-future")
def _earliest_future(ctx: Ctx) -> Expect:
    future = today(time.time()) + 5
    ctx.redis.set(EARLIEST, future)
    return Expect(1, (EARLIEST, repr(future), "no later than tomorrow"))


@case(DB_CASES, "earliest-far-in-the-past")
def _earliest_zero(ctx: Ctx) -> Expect:
    ctx.redis.set(EARLIEST, 0)
    names = (EARLIEST, "1970-01-01", "at most 3660 dates", "ROTATE_STATS_MAX_BACKLOG_DAYS")
    return Expect(1, names)


@case(DB_CASES, "backlog-over-max-backlog-days")
def _backlog(ctx: Ctx) -> Expect:
    days = last_stable(time.time()) - D + 1  # the walk from D is one date too long
    names = (EARLIEST, iso(D), f"at most {days - 1} dates", "ROTATE_STATS_MAX_BACKLOG_DAYS")
    return Expect(1, names, env={"ROTATE_STATS_MAX_BACKLOG_DAYS": str(days - 1)})


# -- keys no run would visit (exit 1; nothing changed for them) ----------------------------


@case(DB_CASES, "keys-without-earliest")
def _no_earliest(ctx: Ctx) -> Expect:
    foreign_job(ctx.redis, D + 2, "greeting", "completed")
    ctx.redis.delete(EARLIEST)
    command = f"rotate-stats --from {iso(D)} --to {iso(D + 2)}"  # main() in-process: the default
    return Expect(1, (iso(D), iso(D + 2), f"{EARLIEST} is absent", command))


@case(DB_CASES, "keys-below-earliest")
def _below_earliest(ctx: Ctx) -> Expect:
    now = time.time()
    foreign_job(ctx.redis, today(now) - 1, "sync", "completed")  # yesterday: not stable yet
    ctx.redis.set(EARLIEST, today(now) - 1)  # a writer that did not lower it for D
    # the narrow range: the dates that have keys (issue 17, item 5c)
    command = f"rotate-stats --from {iso(D)} --to {iso(D)}`"
    return Expect(1, (iso(D), f"{EARLIEST} is {iso(today(now) - 1)}", command))


# -- the database ----------------------------------------------------------------------------


@case(DB_CASES, "corrupt-row-breakdown-json")
def _corrupt_row(ctx: Ctx) -> Expect:
    # the row of D cannot take the late write planted by the baseline (one sync job)
    ctx.database.execute(INSERT, *row(iso(D), requested_breakdown='{"sync":1'))
    names = (
        f"{family.TABLE} row {iso(D)}",
        "requested_breakdown",
        "is not JSON",
        "64-bit integers",
    )
    return Expect(1, names, walk_goes_on=True)


@case(DB_CASES, "unmigrated-database", migrated=False)
def _unmigrated(ctx: Ctx) -> Expect:
    return Expect(1, ("not migrated", "0001_journal_chat_job_stats", "rotate-stats migrate"))


@case(DB_CASES, "lock-held-by-another-run")
def _lock_held(ctx: Ctx) -> Expect:
    ctx.redis.set(family.LOCK_KEY, "cron-run-1", px=60_000)
    return Expect(75, (family.LOCK_KEY, "'cron-run-1'", "try again later"))


@case(DB_CASES, "unreachable-redis")
def _redis_down(ctx: Ctx) -> Expect:
    port = free_port()  # nothing listens there
    url = f"redis://:{SECRET}@127.0.0.1:{port}/0"
    names = (f"127.0.0.1:{port}", "redis://:***@")
    return Expect(1, names, env={"ROTATE_STATS_REDIS_URL": url}, secret=SECRET)


# -- flags (usage errors: exit 2, once) ------------------------------------------------------


def flag_error(args: tuple[str, ...], *names: str) -> Callable[[Ctx], Expect]:
    return lambda ctx: Expect(2, names, args=args)


for _bad, _expected in [
    ("2024-13-01", "not a valid calendar date"),
    ("2024-2-3", "YYYY-MM-DD"),
    ("yesterday", "YYYY-MM-DD"),
    ("2024-02-30", "not a valid calendar date"),
]:
    case(USAGE_CASES, f"bad-date-{_bad}")(flag_error(("--date", _bad), "--date", _bad, _expected))

for _id, _args, _names in [
    (
        "from-after-to",
        ("--from", "2024-06-12", "--to", "2024-06-10"),
        ("--to", "2024-06-10", "on or after --from 2024-06-12"),
    ),
    (
        "date-with-from",
        ("--date", "2024-06-10", "--from", "2024-06-01"),
        ("--date", "--from", "not both"),
    ),
    ("to-without-from", ("--to", "2024-06-10"), ("--to", "--from as well")),
    ("batch-size-flag-zero", ("--batch-size", "0"), ("--batch-size", "'0'", "positive integer")),
    ("batch-size-flag-over-1000", ("--batch-size", "5000"), ("--batch-size", "5000", "1 to 1000")),
    ("unknown-flag", ("--dates", "2024-06-10"), ("--dates", "unrecognized")),
]:
    case(USAGE_CASES, _id)(flag_error(_args, *_names))


def unstable(which: str) -> Callable[[Ctx], Expect]:
    def plant(ctx: Ctx) -> Expect:
        now = time.time()
        day = {"today": today(now), "yesterday": today(now) - 1}[which.split("-")[-1]]
        foreign_job(ctx.redis, day, "sync", "completed")  # keys that must stay live
        if which.startswith("to-"):
            args: tuple[str, ...] = ("--from", iso(D), "--to", iso(day))
            flag = "--to"
        else:
            args, flag = ("--date", iso(day)), "--date"
        names = (flag, iso(day), f"on or before {iso(last_stable(now))}", "today and yesterday")
        return Expect(2, names, args=args)

    return plant


for _which in ("today", "yesterday", "to-yesterday"):
    case(USAGE_CASES, f"unstable-date-{_which}")(unstable(_which))


# -- URLs and variables (usage errors: exit 2, once) ----------------------------------------


def bad_url(variable: str, url: str, *names: str) -> Callable[[Ctx], Expect]:
    secret = SECRET if SECRET in url else None
    return lambda ctx: Expect(2, names, env={variable: url}, secret=secret)


for _id, _var, _url, _names in [
    (
        "redis-url-http",
        "ROTATE_STATS_REDIS_URL",
        f"http://ops:{SECRET}@127.0.0.1:6379/0",
        ("ROTATE_STATS_REDIS_URL", "http://ops:***@127.0.0.1", "redis://, rediss:// or unix://"),
    ),
    (
        "database-url-postgres",
        "ROTATE_STATS_DATABASE_URL",
        f"postgres://ops:{SECRET}@db.internal:5432/stats",
        (
            "ROTATE_STATS_DATABASE_URL",
            "postgres://ops:***@db.internal",
            "sqlite:///path.db or rqlite",
        ),
    ),
    (
        "database-url-sqlite-two-slashes",
        "ROTATE_STATS_DATABASE_URL",
        "sqlite://x.db",
        ("ROTATE_STATS_DATABASE_URL", "sqlite://x.db", "three slashes"),
    ),
    (
        "database-url-rqlite-no-port",
        "ROTATE_STATS_DATABASE_URL",
        f"rqlite://ops:{SECRET}@dbhost",
        ("ROTATE_STATS_DATABASE_URL", "rqlite://ops:***@dbhost", "bad host:port 'dbhost'"),
    ),
]:
    case(USAGE_CASES, _id)(bad_url(_var, _url, *_names))


def bad_variable(variable: str, value: str, *expected: str) -> Callable[[Ctx], Expect]:
    return lambda ctx: Expect(2, (variable, value, *expected), env={variable: value})


for _id, _var, _value, _expected in [
    ("unknown-variable", "ROTATE_STATS_BATCHSIZE", "3", ("a known variable",)),
    ("batch-size-zero", "ROTATE_STATS_BATCH_SIZE", "0", ("from 1 to 1000",)),
    ("batch-size-not-a-number", "ROTATE_STATS_BATCH_SIZE", "abc", ("a number",)),
    ("max-backlog-days-zero", "ROTATE_STATS_MAX_BACKLOG_DAYS", "0", ("a positive integer",)),
    ("lock-ttl-zero", "ROTATE_STATS_LOCK_TTL", "0", ("seconds from 1 to 86400",)),
    ("database-timeout-zero", "ROTATE_STATS_DATABASE_TIMEOUT", "0", ("0 < t <= 3600",)),
    ("retry-for-negative", "ROTATE_STATS_DATABASE_RETRY_FOR", "-1", ("seconds from 0 to 86400",)),
    ("clock-skew-negative", "ROTATE_STATS_MAX_CLOCK_SKEW", "-5", ("seconds from 0 to 86400",)),
    ("fence-unknown", "ROTATE_STATS_REDIS_FENCE", "replicas:0", ("replicas:N (N from 1",)),
    ("strict-not-a-boolean", "ROTATE_STATS_STRICT", "maybe", ("1/0",)),
    ("log-level-unknown", "ROTATE_STATS_LOG_LEVEL", "LOUD", ("DEBUG, INFO, WARNING",)),
]:
    case(USAGE_CASES, _id)(bad_variable(_var, _value, *_expected))


@case(USAGE_CASES, "missing-database-url")
def _no_database_url(ctx: Ctx) -> Expect:
    names = ("database URL", "--database-url or ROTATE_STATS_DATABASE_URL")
    return Expect(2, names, use_database=False)


# -- rqlite hosts (exit 1, once: each row brings its own rqlite) ---------------------------


@case(USAGE_CASES, "unreachable-rqlite")
def _rqlite_down(ctx: Ctx) -> Expect:
    port = free_port()  # nothing listens there
    url = f"rqlite://ops:{SECRET}@127.0.0.1:{port}"
    env = {"ROTATE_STATS_DATABASE_URL": url, "ROTATE_STATS_DATABASE_RETRY_FOR": "1"}
    names = (f"127.0.0.1:{port}", "within 1s", "Connection refused")
    return Expect(1, names, env=env, secret=SECRET)


@case(USAGE_CASES, "wrong-rqlite-credentials")
def _rqlite_wrong_password(ctx: Ctx) -> Expect:
    auth = ctx.tmp_path / "auth.json"
    auth.write_text(json.dumps([{"username": "u", "password": "right", "perms": ["all"]}]))
    node = start_emulator(ctx.tmp_path / "secured", auth_file=auth)
    ctx.cleanup.callback(node.stop)
    store = RqliteStore([(node.host, node.port)], user="u", password="right")
    ctx.cleanup.callback(store.close)
    migrate(store)
    store._transaction([(INSERT, row(KEPT))])
    url = f"rqlite://u:{SECRET}@{node.host}:{node.port}"
    return Expect(
        1,
        (f"{node.host}:{node.port}", "HTTP 401", "wrong password for user 'u'"),
        env={"ROTATE_STATS_DATABASE_URL": url},
        secret=SECRET,
        query=query_of(store),
    )


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "backend"),
    [
        pytest.param(c, b, id=f"{c.id}-{b}", marks=backend_marks(b))
        for c in DB_CASES
        for b in BACKENDS
    ],
)
def test_bad_data(
    c: Case,
    backend: str,
    run: Run,
    redis_client: redis.Redis,
    database: Database,
    tmp_path: Path,
) -> None:
    exercise(c, run, redis_client, database, tmp_path)


@pytest.mark.parametrize(
    ("c", "backend"), [pytest.param(c, "sqlite", id=c.id) for c in USAGE_CASES]
)
def test_bad_usage(
    c: Case,
    backend: str,
    run: Run,
    redis_client: redis.Redis,
    database: Database,
    tmp_path: Path,
) -> None:
    exercise(c, run, redis_client, database, tmp_path)


@pytest.mark.parametrize("backend", [pytest.param(b, marks=backend_marks(b)) for b in BACKENDS])
def test_negative_count_default_mode_rotates_and_reports(
    backend: str, run: Run, redis_client: redis.Redis, database: Database
) -> None:
    """Invariant 1 without --strict: the date is rotated as it is, the finding reported."""
    migrate(database.store)
    foreign_job(redis_client, D, "sync", "completed")
    redis_client.hset(COUNTS, "requested", -1)
    redis_client.hset(family.extra_key(D, "requested"), "sync", -1)
    result = run("--date", iso(D), database=database)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"{iso(D)} 1-non-negative event=requested" in result.stdout
    stored = {r[1]: (r[3], r[4]) for r in database.rows()}
    assert stored == {iso(D): (-1, '{"sync":-1}')}
    assert not [k for k in redis_client.scan_iter() if family.date_of_key(k.decode()) == D]


def test_catalogue_is_long_enough_and_documented() -> None:
    """Issue 4 asks for at least 22 classes; docs/RELIABILITY.md lists every test id."""
    ids = [c.id for c in DB_CASES + USAGE_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 22
    table = (Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md").read_text()
    wanted = [f"test_bad_data[{i}-*]" for i in (c.id for c in DB_CASES)]
    wanted += [f"test_bad_usage[{c.id}]" for c in USAGE_CASES]
    wanted.append("test_negative_count_default_mode_rotates_and_reports[*]")
    missing = [w for w in wanted if f"`{w}`" not in table]
    assert not missing, f"docs/RELIABILITY.md lacks {missing}"
