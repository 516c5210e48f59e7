"""What a new operator met (issue 17, items 2, 3, 4 and 5): every bad date named
everywhere, ``status`` telling the truth, hints naming a command that works where the
job is deployed, and the small defects of the walk. On a real redis-server.

Each test's docstring says what it guards; each failed on 4e2b4f9."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest
import redis

from rotate_stats import RotateOptions, family, rotate
from rotate_stats.checks import StatusLimits, status
from rotate_stats.cli import main
from rotate_stats.database import SqliteStore, Store
from rotate_stats.dates import day_start, iso, last_stable, parse_iso
from rotate_stats.monitor import RunMonitor
from rotate_stats.redis_side import RedisSide
from rotate_stats.render import render_report, render_status
from rotate_stats.report import ExitCode
from tests.conftest import RedisServer
from tests.helpers import foreign_job, redis_dump, run_program
from tests.unit.test_metrics import parse_exposition, value

D = parse_iso("2024-06-10")
NOW = day_start(D + 30) + 12 * 3600  # last stable date: D + 28


def _status(client: redis.Redis, store: Store | None, **limits: object) -> dict[str, object]:
    st = status(RedisSide(client), store, now=NOW, limits=StatusLimits(**limits))  # type: ignore[arg-type]
    return st.as_dict()


def _checks(data: dict[str, object]) -> list[str]:
    return [p["check"] for p in data["problems"]]  # type: ignore[index, attr-defined]


def _two_bad_dates(client: redis.Redis) -> tuple[str, str]:
    """Jobs on D..D+3; bad values on D + 1 (a breakdown) and D + 2 (a count)."""
    for d in range(D, D + 4):
        foreign_job(client, d, "sync", "completed")
    first, second = family.extra_key(D + 1, "completed"), family.counts_key(D + 2)
    client.hset(first, "sync", "two")
    client.hset(second, "queued", "1.5")
    return first, second


# -- item 2: every bad date of a run, in every output --------------------------------------


def test_every_bad_date_of_a_batch_is_named_in_every_output(
    redis_client: redis.Redis, sqlite: Store, tmp_path: Path
) -> None:
    """Guards item 2: with two bad dates in one batch the second appeared nowhere (log,
    JSON, metrics, status). Now the report (text and JSON), the run's error, the metrics
    file and ``status`` name both, each with key, field, value and repair commands."""
    first, second = _two_bad_dates(redis_client)
    path = tmp_path / "m.prom"
    monitor = RunMonitor(str(path), None)
    report = rotate(redis_client, sqlite, now=NOW)
    monitor.observe(report, redis_client)
    monitor.finish(int(report.exit_code))
    assert report.exit_code is ExitCode.FAILURE and report.error is not None
    rows = {r.retrieved_for for r in sqlite.rows(None, None)}
    assert iso(D + 1) not in rows and iso(D + 2) not in rows and iso(D + 3) in rows
    for key, field, found in ((first, "sync", "two"), (second, "queued", "1.5")):
        assert f"{key} field {field!r}: found {found!r}" in report.error
        assert f"HSET {key} {field} <the right count>" in report.error
    data = json.loads(json.dumps(report.as_dict()))
    assert [(b["date"], b["key"], b["field"], b["value"]) for b in data["bad_dates"]] == [
        (iso(D + 1), first, "sync", "two"),
        (iso(D + 2), second, "queued", "1.5"),
    ]
    assert all(f"HDEL {b['key']} {b['field']}" in b["repair"] for b in data["bad_dates"])
    text = render_report(report)
    assert f"bad data {iso(D + 1)}: {first}" in text and f"bad data {iso(D + 2)}: {second}" in text
    samples = parse_exposition(path.read_text())[1]
    assert value(samples, "rotate_stats_bad_dates") == 2
    labels = [lab for name, lab, _ in samples if name == "rotate_stats_bad_date"]
    assert [(lab["date"], lab["key"], lab["field"], lab["value"]) for lab in labels] == [
        (iso(D + 1), first, "sync", "two"),
        (iso(D + 2), second, "queued", "1.5"),
    ]
    assert all("--date" in lab["repair"] for lab in labels)
    st = _status(redis_client, sqlite)
    assert _checks(st).count("bad-data") == 2
    assert [(b["date"], b["key"], b["field"]) for b in st["bad_dates"]] == [  # type: ignore[attr-defined]
        (iso(D + 1), first, "sync"),
        (iso(D + 2), second, "queued"),
    ]


def test_dry_run_shows_the_whole_plan_with_bad_dates_marked(
    redis_client: redis.Redis, sqlite: Store
) -> None:
    """Guards item 2: ``--dry-run`` stopped at the first bad date (the other one was
    reported, no plan printed). Now every date is planned, the bad ones marked and
    named, and nothing is touched."""
    _two_bad_dates(redis_client)
    before = redis_dump(redis_client)
    report = rotate(redis_client, sqlite, RotateOptions(dry_run=True), now=NOW)
    assert redis_dump(redis_client) == before and sqlite.rows(None, None) == []
    assert [o.unix_date for o in report.outcomes] == list(range(D, last_stable(NOW) + 1))
    marked = [o.unix_date for o in report.outcomes if o.detail.startswith("bad data")]
    assert marked == [D + 1, D + 2]
    assert [b.unix_date for b in report.bad_dates] == [D + 1, D + 2]
    assert report.exit_code is ExitCode.FAILURE
    text = render_report(report)
    assert text.count("bad data: would be left in Redis") == 2
    assert f"{iso(D + 3)}  planned" in text


# -- item 3: status tells the truth --------------------------------------------------------


def test_status_after_a_stuck_date_names_it_and_does_not_ask_about_the_nightly_run(
    redis_client: redis.Redis, sqlite: Store
) -> None:
    """Guards item 3: one date stuck on a bad value held ``earliest`` and status read the
    whole range behind it as "N stable dates still in Redis ... is the nightly run
    running?", never naming the value. Now the backlog is the dates with keys, status
    says what holds ``earliest`` (key and field) and asks nothing about the nightly run
    while the newest row is current."""
    for d in range(D, D + 5):
        foreign_job(redis_client, d, "sync", "completed")
    key = family.extra_key(D, "completed")
    redis_client.hset(key, "sync", "two")
    rotate(redis_client, sqlite, now=NOW)
    assert int(redis_client.get(family.EARLIEST_KEY) or 0) == D
    st = _status(redis_client, sqlite, backlog_days=0)
    assert st["backlog_dates"] == 1 and st["backlog"] == [iso(D)]
    assert f"{key} field 'sync'" in str(st["earliest_held_by"])
    assert "bad-data" in _checks(st)
    backlog = [p["detail"] for p in st["problems"] if p["check"] == "backlog"]  # type: ignore[attr-defined, index]
    assert backlog and "nightly run running" not in backlog[0]
    assert "held by bad data" in backlog[0]
    text = render_status(status(RedisSide(redis_client), sqlite, NOW), "db")
    assert f"held by bad data at {key} field 'sync'" in text


def test_status_late_write_is_not_a_missed_night(redis_client: redis.Redis, sqlite: Store) -> None:
    """Guards item 3: a late write for a rotated date lowers ``earliest`` and status read
    every date since as backlog ("is the nightly run running?"). One date with keys is
    no backlog problem."""
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, sqlite, now=NOW)
    foreign_job(redis_client, D + 3, "sync", "completed")  # late: lowers earliest to D + 3
    st = _status(redis_client, sqlite)
    assert st["backlog_dates"] == 1 and st["problems"] == [], st["problems"]


def test_status_reports_an_evicting_policy(redis_client: redis.Redis, sqlite: Store) -> None:
    """Guards item 3: status said healthy under ``allkeys-lru``, which makes every run
    refuse to start. Now it shows the policy and reports it, unless allowed."""
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        refused = _status(redis_client, sqlite)
        allowed = _status(redis_client, sqlite, allow_eviction=True)
    finally:
        redis_client.config_set("maxmemory-policy", policy)
    assert refused["maxmemory_policy"] == "allkeys-lru" and "eviction" in _checks(refused)
    assert "ROTATE_STATS_ALLOW_EVICTION=1" in str(refused["problems"])
    assert "eviction" not in _checks(allowed)


def test_status_uses_the_configured_fence(redis_client: redis.Redis, sqlite: Store) -> None:
    """Guards item 3: status judged durability by ``auto`` whatever
    ROTATE_STATS_REDIS_FENCE said, so its warning could not be acknowledged. With the
    fence set to ``none`` it describes that choice, without a WARNING; ``aof`` on a
    server that cannot give it is a problem (every run would stop)."""
    auto = _status(redis_client, sqlite)
    assert "WARNING" in str(auto["durability"])  # the test server has no replica nor AOF
    none = _status(redis_client, sqlite, fence="none")
    assert "ROTATE_STATS_REDIS_FENCE=none" in str(none["durability"])
    assert "WARNING" not in str(none["durability"]) and "acknowledged" in str(none["durability"])
    aof = _status(redis_client, sqlite, fence="aof")
    assert "fence" in _checks(aof)


# -- item 4: hints name the command that works where the job runs --------------------------


def test_hints_name_how_the_process_was_started(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Guards item 4: every hint said `python -m rotate_stats`, which a deployed host
    cannot run. Run as ``<python> -m rotate_stats`` the hints name that interpreter;
    with ROTATE_STATS_COMMAND (the cron wrapper exports it) they name that."""
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    assert run_program("migrate", env=env).returncode == 0
    stable = last_stable(time.time())
    foreign_job(redis_client, stable - 3, "sync", "completed")
    redis_client.set(family.EARLIEST_KEY, stable + 1)  # the key is an orphan now
    result = run_program("status", env=env)
    assert f"`{sys.executable} -m rotate_stats --from {iso(stable - 3)}" in result.stdout
    wrapper = "runuser -u rotate-stats -- /opt/rotate-stats/cron/run-rotate-stats"
    result = run_program(env={**env, "ROTATE_STATS_COMMAND": wrapper})
    assert result.returncode == 1
    assert f"`{wrapper} --from {iso(stable - 3)} --to {iso(stable - 3)}`" in result.stderr


def test_the_command_is_derived_from_the_program_name() -> None:
    """Guards item 4: the one place that builds the command from how the process was
    started (sys.argv[0]): the console script by its path, ``-m`` with its python."""
    from rotate_stats.invocation import derive

    main_py = "/opt/rotate-stats/.venv/lib/python3.11/site-packages/rotate_stats/__main__.py"
    python = "/opt/rotate-stats/.venv/bin/python3"
    assert derive(main_py, python) == f"{python} -m rotate_stats"
    script = "/opt/rotate-stats/.venv/bin/rotate-stats"
    assert derive(script, python) == script
    assert derive("/usr/bin/pytest", python) == "rotate-stats"


# -- item 5 ----------------------------------------------------------------------------------


def test_sigterm_metrics_count_what_was_done_and_the_pending_claims(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    sqlite_path: str,
    sqlite: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards item 5a: the metrics file of a run stopped by SIGTERM said 0 dates and left
    out the claims it left pending. SIGTERM is an exception in the walk (cli._stop);
    here it strikes at the second batch's commit, after the first was committed."""
    stable = last_stable(time.time())
    for d in (stable - 2, stable - 1, stable):
        foreign_job(redis_client, d, "sync", "completed")
    store_class, calls = type(sqlite), []
    real = store_class.commit

    def commit(self: Store, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # the second batch: claimed, not committed
            raise SystemExit(143)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_class, "commit", commit)
    path = tmp_path / "m.prom"
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": f"sqlite:///{sqlite_path}",
        "ROTATE_STATS_SCAN_ORPHANS": "0",
    }
    with pytest.raises(SystemExit):
        main(["--batch-size", "1", "--metrics-file", str(path)], environ=env)
    samples = parse_exposition(path.read_text())[1]
    assert value(samples, "rotate_stats_last_exit_code") == 143
    assert value(samples, "rotate_stats_dates", state="inserted") == 1
    assert value(samples, "rotate_stats_pending_claims") == 1


def test_date_before_the_first_row_without_keys_writes_nothing(
    redis_client: redis.Redis, sqlite: Store
) -> None:
    """Guards item 5b: ``--date`` on a date before the first row, without keys, wrote a
    zero row. Outside the first row .. last stable date it is said and nothing done;
    inside, a zero row stays the rule."""
    empty = rotate(redis_client, sqlite, RotateOptions(first=D - 20, last=D - 20), now=NOW)
    assert sqlite.rows(None, None) == [] and empty.exit_code is ExitCode.OK
    assert any("before any row" in n for n in empty.notes)
    foreign_job(redis_client, D, "sync", "completed")
    rotate(redis_client, sqlite, now=NOW)  # rows D .. last stable
    before = rotate(redis_client, sqlite, RotateOptions(first=D - 5, last=D - 5), now=NOW)
    assert before.outcomes == [] and any(f"first row {iso(D)}" in n for n in before.notes)
    assert min(r.retrieved_for for r in sqlite.rows(None, None)) == iso(D)
    foreign_job(redis_client, D - 3, "sync", "completed")  # keys: rotated
    ranged = rotate(redis_client, sqlite, RotateOptions(first=D - 5, last=D - 1), now=NOW)
    assert [(o.unix_date, o.state.value) for o in ranged.outcomes] == [
        (D - 3, "inserted"),
        (D - 2, "zero-row"),
        (D - 1, "zero-row"),
    ]


def test_run_and_status_give_the_same_narrow_orphan_hint(
    redis_client: redis.Redis, sqlite: Store
) -> None:
    """Guards item 5c: the run's orphan hint ran to the day before ``earliest`` and
    status's another way; one rule now, the dates that have keys."""
    foreign_job(redis_client, D + 10, "sync", "completed")
    rotate(redis_client, sqlite, now=NOW)
    for d in (D, D + 2):
        redis_client.hincrby(family.counts_key(d), "requested", 1)  # earliest not lowered
    report = rotate(redis_client, sqlite, now=NOW)
    hint = f"--from {iso(D)} --to {iso(D + 2)}`"
    assert report.error is not None and hint in report.error
    problems = _status(redis_client, sqlite)["problems"]
    assert [p["detail"] for p in problems if p["check"] == "orphaned-keys"][0].endswith(hint)  # type: ignore[attr-defined, index]


def test_dates_without_keys_log_at_debug(
    redis_client: redis.Redis, sqlite: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Guards item 5d: a line per zero-row or unchanged date at INFO drowned the progress
    bar; those log at DEBUG, dates with data stay at INFO."""
    foreign_job(redis_client, D, "sync", "completed")
    with caplog.at_level(logging.INFO, logger="rotate_stats"):
        rotate(redis_client, sqlite, now=NOW)
    dated = [r.getMessage() for r in caplog.records if r.getMessage().startswith("20")]
    assert dated == [f"{iso(D)} inserted requested=1"]


def test_range_longer_than_the_backlog_limit_is_a_usage_error(
    redis_server: RedisServer, sqlite_path: str, sqlite: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards item 5e: a range longer than the backlog limit exited 1 with an awkward
    message about ``earliest``; it is a bad flag: exit 2, naming the flag and the limit."""
    stable = last_stable(time.time())
    env = {
        "ROTATE_STATS_REDIS_URL": redis_server.url,
        "ROTATE_STATS_DATABASE_URL": f"sqlite:///{sqlite_path}",
        "ROTATE_STATS_MAX_BACKLOG_DAYS": "10",
    }
    code = main(["--from", iso(stable - 20), "--to", iso(stable)], environ=env)
    err = capsys.readouterr().err
    assert code == 2
    assert "--from/--to" in err and "ROTATE_STATS_MAX_BACKLOG_DAYS" in err and "10 dates" in err


def test_status_on_an_unmigrated_database_says_so_in_the_backlog(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Found in the new-operator walk-through: with a database URL given but not yet
    migrated, the backlog problem said "no database given"."""
    for d in range(D, D + 4):
        foreign_job(redis_client, d, "sync", "completed")
    store = SqliteStore(str(tmp_path / "fresh.sqlite3"))
    try:
        problems = str(_status(redis_client, store)["problems"])
    finally:
        store.close()
    assert "not migrated" in problems and "no database given" not in problems, problems
