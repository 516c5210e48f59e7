"""``python -m rotate_stats demo``: the real job on embedded defaults, with demo data.

An in-process Redis (fakeredis, with Lua) receives seeded, realistic traffic
(``days`` stable days, plus yesterday and today through the Recorder) and a few
planted anomalies; the real rotation moves it into a SQLite file; then a late
write from a foreign writer is merged by a second run.

Decisions (issue 10 #12):

* Redis: fakeredis when installed (``pip install 'rotate-stats[demo]'``), else a
  private ``redis-server`` from PATH on a Unix socket in a temporary directory
  (removed afterwards), else a clear error saying so. Never a Redis URL the user
  gives: the demo writes made-up data, so ``--redis-url`` is refused.
* Database: one fixed file, ``$XDG_CACHE_HOME/rotate-stats/demo.sqlite3``
  (``~/.cache/...``), replaced by every run, so runs leave nothing behind but
  that file, which the demo names for inspection. ``--database-url sqlite:///x.db``
  writes to a *new* file instead (an existing one is refused: made-up data must
  not mix with real rows); rqlite URLs are refused.
* ``--days`` from 1 to 3660 (the job's default ``ROTATE_STATS_MAX_BACKLOG_DAYS``);
  a long demo shows progress on a terminal.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from . import family
from .database import SqliteStore, migrate
from .dates import iso, today
from .errors import ConfigError, RotateStatsError, mask_url
from .family import EVENTS
from .recorder import Recorder
from .report import DateState, RotationReport
from .settings import parse_database_url
from .walk import RotateOptions, rotate

MIN_DAYS = 1
MAX_DAYS = 3660
"""The job's default ``ROTATE_STATS_MAX_BACKLOG_DAYS``: a longer demo would be refused by
the rotation itself."""
DAY_LINES = 20
"""Per-day lines shown for a long demo: the first and last half, and days with findings."""

ProgressCallback = Callable[[int, int], None]


class DemoUnavailable(RotateStatsError):
    """Neither fakeredis nor a redis-server binary is available for the demo (exit 1)."""


JOB_TYPES = (
    ("system_chat", 50),
    ("greeting", 20),
    ("reflection_question", 15),
    ("summarize", 10),
    ("sync", 5),
)
QUEUE_FAILURES = (
    "locked",
    "ratelimited:user_queued_jobs:{at}:5",
    "ratelimited:total_queued_jobs:{at}:1000",
    "user_not_found",
    "journal_entry_not_found",
    "bad_state",
)
JOB_FAILURES = ("timed_out", "no_completion", "write_failed:summary", "llm:empathy:RateLimitError")


@dataclass(frozen=True)
class DemoResult:
    """The two runs, where the database file is, and which Redis was used."""

    first: RotationReport
    second: RotationReport
    database_path: str
    jobs: int
    redis: str = "fakeredis"

    def as_dict(self) -> dict[str, object]:
        return {
            "jobs": self.jobs,
            "database": self.database_path,
            "redis": self.redis,
            "first_run": self.first.as_dict(),
            "second_run": self.second.as_dict(),
            "exit_code_of_a_real_run": int(self.first.exit_code),
        }


def fake_redis() -> redis.Redis:
    """An in-process Redis with Lua scripting (fakeredis[lua]); ImportError without it."""
    import fakeredis

    client: redis.Redis = fakeredis.FakeRedis()
    return client


@contextlib.contextmanager
def demo_redis() -> Iterator[tuple[redis.Redis, str]]:
    """(client, what it is): fakeredis, else a private redis-server, else DemoUnavailable."""
    try:
        client = fake_redis()
    except ImportError:
        binary = shutil.which("redis-server")
        if binary is None:
            raise DemoUnavailable(
                "the demo needs a Redis of its own: install fakeredis with "
                "`pip install 'rotate-stats[demo]'` (or ./scripts/demo, which does), "
                "or put redis-server on PATH"
            ) from None
        with private_redis_server(binary) as client:
            yield client, f"a private {binary} (fakeredis is not installed)"
        return
    try:
        yield client, "fakeredis (in-process)"
    finally:
        client.close()


@contextlib.contextmanager
def private_redis_server(binary: str) -> Iterator[redis.Redis]:
    """A redis-server on a Unix socket in a temporary directory, no persistence;
    stopped and its directory removed on exit."""
    directory = tempfile.mkdtemp(prefix="rotate-stats-demo-redis-")
    socket = os.path.join(directory, "redis.sock")
    if len(socket.encode()) > 100:  # a Unix socket path holds 107 bytes at most
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix="rotate-stats-demo-redis-", dir="/tmp")
        socket = os.path.join(directory, "redis.sock")
    args = [binary, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"]
    args += ["--save", "", "--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=socket)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise DemoUnavailable(f"{binary} did not start for the demo") from None
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def check_days(days: int) -> None:
    """ConfigError unless ``days`` is within MIN_DAYS..MAX_DAYS."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ConfigError(
            "--days",
            days,
            f"from {MIN_DAYS} to {MAX_DAYS} (the longest backlog one run accepts, "
            "ROTATE_STATS_MAX_BACKLOG_DAYS)",
        )


def default_database() -> str:
    """The demo's own database file, replaced by every run (see the module docstring)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "rotate-stats", "demo.sqlite3")


def demo_database(url: str | None) -> str:
    """The SQLite path the demo writes: its own file (cleared now), or a new file that
    ``--database-url`` names. ConfigError for an rqlite URL or an existing file."""
    if url is None:
        path = default_database()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
        except OSError as exc:
            raise ConfigError(
                "demo database",
                path,
                f"a writable place ({exc.strerror}); choose one with "
                "--database-url sqlite:///path.db",
            ) from None
        return path
    parsed = parse_database_url(url)
    if parsed.kind != "sqlite":
        raise ConfigError(
            "--database-url",
            mask_url(url),
            "a sqlite:/// URL: the demo writes made-up data, never into rqlite",
        )
    if os.path.exists(parsed.path) and os.path.getsize(parsed.path) > 0:
        raise ConfigError(
            "--database-url",
            url,
            "a new SQLite file: the demo writes made-up data and does not mix it with "
            "existing rows (delete the file or choose another path)",
        )
    return parsed.path


def simulate_day(rng: random.Random) -> list[tuple[str, str]]:
    """One day's jobs as (event, breakdown key) increments, in the order they happen."""
    names = [t for t, _ in JOB_TYPES]
    weights = [w for _, w in JOB_TYPES]
    events: list[tuple[str, str]] = []
    for _ in range(rng.randint(40, 120)):
        job_type = rng.choices(names, weights)[0]
        events.append(("requested", job_type))
        if rng.random() < 0.08:
            reason = rng.choice(QUEUE_FAILURES).format(at=rng.randint(1, 5))
            events.append(("failed_to_queue", f"{job_type}:{reason}"))
            continue
        events += [("queued", job_type), ("started", job_type)]
        if rng.random() < 0.06:
            events.append(("failed", f"{job_type}:{rng.choice(JOB_FAILURES)}"))
        else:
            events.append(("completed", job_type))
    return events


def write_history(client: redis.Redis, unix_date: int, events: list[tuple[str, str]]) -> None:
    """A past day's increments, summed and written in one pipeline (as if writers had
    HINCRBYed them one by one; much faster than a script call per event in fakeredis)."""
    totals = Counter(events)
    pipe = client.pipeline(transaction=False)
    for (event, key), amount in totals.items():
        pipe.hincrby(family.counts_key(unix_date), event, amount)
        pipe.hincrby(family.extra_key(unix_date, event), key, amount)
    pipe.execute()


def run_demo(
    days: int = 21,
    seed: int = 2024,
    database: str | None = None,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """Write ``days`` stable days (plus yesterday and today) of traffic, then rotate twice.

    ``database``: the SQLite path (default: ``demo_database(None)``). ``progress`` is
    called as ``(done, total)`` while writing the traffic and again while rotating.
    """
    check_days(days)
    path = demo_database(None) if database is None else database
    with demo_redis() as (client, which):
        return _run(client, which, days, seed, path, progress)


def _run(
    client: redis.Redis,
    which: str,
    days: int,
    seed: int,
    path: str,
    progress: ProgressCallback | None,
) -> DemoResult:
    recorder = Recorder(client)
    rng = random.Random(seed)
    now = time.time()
    current = today(now)
    jobs = 0
    first_day = current - days - 1
    total = (days + 2) + days  # one bar: dates written, then dates rotated
    client.set(family.EARLIEST_KEY, first_day)
    for d in range(first_day, current + 1):
        events = simulate_day(rng)
        jobs += sum(1 for event, _ in events if event == "requested")
        if d < current - 1:
            write_history(client, d, events)
        else:  # yesterday and today go through the Recorder, as the app writes them
            for event, key in events:
                recorder.record(d, event, key)
        if progress is not None and (d - first_day) % 31 == 30:
            progress(d - first_day + 1, total)
    if progress is not None:
        progress(days + 2, total)
    # planted anomalies: a raw task type from an old writer, and a start with no queue
    # (both within the stable days however few there are)
    raw_type, no_queue, late = current - 2 - days // 4, current - 2 - days // 2, current - 2
    for event in ("requested", "queued", "started", "completed"):
        recorder.record(raw_type, event, "chat")
    client.hincrby(family.counts_key(no_queue), "started", 1)
    client.hincrby(family.extra_key(no_queue, "started"), "sync", 1)

    store = SqliteStore(path)
    try:
        migrate(store)
        walked = None if progress is None else _offset(progress, days + 2, total)
        first = rotate(client, store, RotateOptions(progress=walked), now=now)
        # a foreign writer's late event for a rotated date: HINCRBY + set-if-lower
        client.hincrby(family.counts_key(late), "requested", 1)
        client.hincrby(family.extra_key(late, "requested"), "sync", 1)
        client.hincrby(family.counts_key(late), "failed_to_queue", 1)
        client.hincrby(family.extra_key(late, "failed_to_queue"), "sync:locked", 1)
        client.set(family.EARLIEST_KEY, late)
        second = rotate(client, store, now=now)
    finally:
        store.close()
    return DemoResult(first, second, path, jobs, which)


def _offset(progress: ProgressCallback, before: int, total: int) -> ProgressCallback:
    def report(done: int, _: int) -> None:
        progress(before + done, total)

    return report


def _finding_line(f: dict[str, Any]) -> str:
    where = " ".join(f"{k}={f[k]}" for k in ("event", "job_type") if f[k] is not None)
    return f"{f['date']} {f['invariant']} {where}: {f['detail']}"


def render_demo(result: DemoResult) -> str:
    """The demo's per-day summary (long demos: the first and last days, and every day
    with findings), the findings, the merged late write, and where the database is."""
    header = f"{'date':<10}  {'state':<9} " + " ".join(f"{e:>15}" for e in EVENTS) + "  findings"
    outcomes = result.first.outcomes
    lines = [
        f"demo: {result.jobs} journal chat jobs recorded over {len(outcomes) + 2} days "
        f"into {result.redis}",
        "",
        "first run (per day):",
        header,
    ]
    half = DAY_LINES // 2
    hidden = 0
    for i, o in enumerate(outcomes):
        if half <= i < len(outcomes) - half and not o.findings:
            hidden += 1
            continue
        if hidden:
            lines.append(f"  ... {hidden} more day(s), all in the database")
            hidden = 0
        counts = " ".join(f"{o.day.count(e):>15}" for e in EVENTS)
        lines.append(f"{iso(o.unix_date)}  {o.state.value:<9} {counts}  {len(o.findings)}")
    lines.append("")
    lines.append("findings (planted anomalies; rotated anyway, as the default is):")
    lines += ["  " + _finding_line(f.as_dict()) for f in result.first.findings]
    lines.append("")
    lines.append("a foreign writer then sent a late event for a rotated date; second run:")
    for o in result.second.outcomes:
        if o.state is DateState.UNCHANGED:
            continue
        counts = " ".join(f"{e}=+{o.day.count(e)}" for e in EVENTS if o.day.count(e))
        lines.append(f"  {iso(o.unix_date)}  {o.state.value}  {counts}")
    lines.append("")
    lines.append(
        f"exit code a real run would return: {int(result.first.exit_code)} "
        f"({result.first.exit_code.name.lower()}); the demo itself exits 0"
    )
    kept = (
        "the next demo replaces it"
        if result.database_path == default_database()
        else "kept; a next demo needs a new file"
    )
    lines.append(f"database: {result.database_path}  (sqlite3 it: journal_chat_job_stats; {kept})")
    return "\n".join(lines)
