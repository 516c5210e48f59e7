"""Issue 9's benchmark: rotate_stats, the per-date shape and the floor on identical backlogs.

    .venv/bin/python -m benchmarks.perf --profile quick   # a few minutes, SQLite, RTT 0 and 1 ms
    .venv/bin/python -m benchmarks.perf --profile full    # the issue's whole Method (long)
    .venv/bin/python -m benchmarks.perf --sizes 3650x100 --rtts 0,1 --backends sqlite,emulator

One run starts its own ``redis-server`` (no RDB, no AOF) on a free port and,
for each case (backend, dates x breakdown width, RTT), seeds the same backlog
(``backlog.py``) before each of:

* **rotate_stats** - the real job, ``python -m rotate_stats rotate`` as a child
  process (default settings, ``ROTATE_STATS_BATCH_SIZE`` per ``--batch-sizes``),
  on a freshly migrated database. Its time is reported *net of start-up*: minus
  the median of five runs with nothing to do (same backend and RTT).
* **per-date** and **floor** - ``shapes.py`` as a child process, timed inside
  (after start-up and connecting).

Each child talks to Redis - and to rqlite, for rqlite backends - through
``latency_proxy.py`` adding the RTT and counting round trips; at RTT 0 it
connects directly (the proxy's own hop costs about 0.3 ms per round trip here,
which would swamp loopback), so round trips are counted in the proxied runs
(they do not depend on the RTT; the job's scripts are preloaded into Redis, as a
daily run finds them). While the child runs: SLOWLOG (every command),
a PING every 1 ms on its own direct connection, ``INFO cpu`` of the server
(``probes.py``); peak RSS is the child's ``ru_maxrss`` (started by a small
launcher, ``launcher.py``, since Linux counts the forking process's own
high-water mark in it: about 12 MB is the floor). Each run checks its
result: every date has its row with the expected ``requested`` total and,
except for the floor, the live keys are gone.

Backends: ``sqlite`` (a file in the temp dir, which is on the real disk unless
``--tmp-dir`` says otherwise), ``emulator`` (``tests/rqlite_emulator/rqlited``, a
process of its own) and ``rqlited`` (the binary ``ROTATE_STATS_TEST_RQLITED``
names). Per-date and floor use the same backend.

Start-up: ``python -m rotate_stats --help`` (median of 5 after a warm-up), the
nothing-to-do runs, and ``python -X importtime -m rotate_stats --help`` (top 10
by cumulative time, median of 3 runs).

Output: markdown tables on stdout (ratios are the headline: the machines are
shared and noisy) and every raw figure as JSON in ``--out`` (plus the tables
next to it, ``.md``). ``--rev`` benchmarks the job's code at a git revision
(extracted to the temp dir) instead of the working tree. Every server, proxy
and temp dir is removed at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import io
import json
import os
import platform
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from benchmarks.backlog import DayTemplate, day_template, seed
from benchmarks.latency_proxy import Counts, LatencyProxy
from benchmarks.launcher import ChildResult, Launcher
from benchmarks.probes import (
    RedisFigures,
    RedisProbe,
    calibrate,
    preload_scripts,
    script_bodies,
)
from benchmarks.servers import REPO, RedisServer, RqliteNode
from rotate_stats import family
from rotate_stats.dates import iso, last_stable

SHAPES = Path(__file__).with_name("shapes.py")
RQLITED_VARIABLE = "ROTATE_STATS_TEST_RQLITED"
METHODS = ("rotate_stats", "per-date", "floor")
BACKENDS = ("sqlite", "emulator", "rqlited")


@dataclass(frozen=True)
class Case:
    """What one group of runs shares: one backlog on one backend at one RTT."""

    backend: str
    dates: int
    width: int
    rtt_ms: float
    batch_sizes: tuple[int, ...] = (31,)
    methods: tuple[str, ...] = METHODS

    @property
    def size(self) -> str:
        return f"{self.dates}x{self.width}"


def grid(
    sizes: Sequence[tuple[int, int]],
    rtts: Sequence[float],
    backends: Sequence[str],
    batch_sizes: Sequence[int],
    methods: Sequence[str] = METHODS,
) -> list[Case]:
    return [
        Case(b, d, w, r, tuple(batch_sizes), tuple(methods))
        for b in backends
        for d, w in sizes
        for r in rtts
    ]


def profile_cases(name: str, rqlited: str | None) -> list[Case]:
    if name == "quick":
        sizes = [(365, 5), (365, 100), (31, 10_000), (3, 100_000)]
        return grid(sizes, [0, 1], ["sqlite"], [31])
    backends = ["sqlite", "emulator"] + (["rqlited"] if rqlited else [])
    sizes = [(365, 5), (365, 100), (3650, 5), (3650, 100), (31, 10_000), (3, 100_000)]
    cases = grid(sizes, [0, 1, 10], backends, [31])
    # the stall table of the issue: batch sizes and widths, rotate_stats alone
    only_job = ("rotate_stats",)
    cases += [
        Case("sqlite", 365, 1000, 0, (31, 1000), only_job),
        Case("sqlite", 31, 10_000, 0, (1,), only_job),
        Case("sqlite", 3, 100_000, 0, (1,), only_job),
        Case("sqlite", 3650, 100, 0, (1000,), only_job),
        Case("sqlite", 31, 100_000, 0, (31,), METHODS),
    ]
    return cases


@dataclass
class Run:
    """One measured child: what ran, what it cost, what the proxy and Redis saw."""

    backend: str
    dates: int
    width: int
    fields_per_date: int
    rtt_ms: float
    method: str
    batch_size: int | None
    returncode: int
    problem: str
    wall_s: float
    seconds: float | None
    """The headline time: rotate_stats net of start-up; per-date and floor timed inside."""
    startup_s: float | None
    peak_rss_mb: float
    round_trips: int | None
    connections: int | None
    bytes_up: int | None
    bytes_down: int | None
    db_round_trips: int | None
    db_bytes_up: int | None
    redis: RedisFigures
    repeats: list[float | None] = field(default_factory=list)
    """``seconds`` of every repetition; the figures above are those of the median one."""


@dataclass
class Database:
    """A fresh, migrated database: ``port`` is the rqlite node's (None for SQLite)."""

    kind: str
    url: str
    port: int | None
    path: Path | None = None
    node: RqliteNode | None = None

    def url_via(self, port: int | None) -> str:
        if self.node is None or port is None:
            return self.url
        return self.node.url(port)

    def totals(self, first: str, last: str) -> tuple[int, int]:
        """(rows, sum of requested) between two ISO dates."""
        sql = (
            f"SELECT count(*), coalesce(sum(requested), 0) FROM {family.TABLE} "
            "WHERE retrieved_for BETWEEN ? AND ?"
        )
        if self.path is not None:
            with contextlib.closing(sqlite3.connect(self.path)) as local:
                rows, total = local.execute(sql, (first, last)).fetchone()
            return int(rows), int(total)
        assert self.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            body = json.dumps([[sql, first, last]])
            conn.request("POST", "/db/query?level=strong", body, {"Content-Type": "text/json"})
            reply = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        rows, total = reply["results"][0]["values"][0]
        return int(rows), int(total)

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()


@dataclass
class Link:
    """How children reach Redis and the database: through a proxy, or directly at RTT 0."""

    redis_port: int
    db_port: int | None
    proxy: LatencyProxy | None

    def counts(self) -> list[Counts] | None:
        return None if self.proxy is None else self.proxy.counts()

    def reset(self) -> None:
        if self.proxy is not None:
            self.proxy.reset()


@dataclass
class Bench:
    """Everything a run shares: the server, the code under test, caches."""

    tmp: Path
    code_dir: Path
    launcher: Launcher
    redis: RedisServer
    rqlited: str | None
    timeout: float
    cpu_per_ping: float
    names: dict[str, str]
    base_env: dict[str, str]
    templates: dict[int, DayTemplate] = field(default_factory=dict)
    startups: dict[tuple[str, float], dict[str, Any]] = field(default_factory=dict)
    sqlite_template: Path | None = None
    counter: int = 0

    # -- helpers ----------------------------------------------------------------------------

    def next_name(self, what: str) -> Path:
        self.counter += 1
        return self.tmp / "runs" / f"{self.counter:04d}-{what}"

    def job_env(self, redis_url: str, db_url: str, batch: int | None = None) -> dict[str, str]:
        env = dict(self.base_env)
        env["ROTATE_STATS_REDIS_URL"] = redis_url
        env["ROTATE_STATS_DATABASE_URL"] = db_url
        if batch is not None:
            env["ROTATE_STATS_BATCH_SIZE"] = str(batch)
        return env

    def job(
        self, env: dict[str, str], what: str, *args: str, python: Sequence[str] = ()
    ) -> ChildResult:
        """``python [python...] -m rotate_stats args...`` from the code under test."""
        argv = [sys.executable, *python, "-m", "rotate_stats", *args]
        return self.run(argv, env, what)

    def run(self, argv: Sequence[str], env: dict[str, str], what: str) -> ChildResult:
        return self.launcher.run(argv, env, self.code_dir, self.next_name(what), self.timeout)

    def template(self, width: int) -> DayTemplate:
        if width not in self.templates:
            self.templates[width] = day_template(width)
        return self.templates[width]

    @contextlib.contextmanager
    def database(self, kind: str) -> Iterator[Database]:
        """A fresh database with the schema migrated (by the code under test)."""
        name = self.next_name(f"db-{kind}")
        if kind == "sqlite":
            if self.sqlite_template is None:
                path = self.tmp / "migrated.sqlite3"
                self._migrate(f"sqlite:///{path}")
                self.sqlite_template = path
            copy = name.with_suffix(".sqlite3")
            shutil.copyfile(self.sqlite_template, copy)
            db = Database(kind, f"sqlite:///{copy}", None, path=copy)
            try:
                yield db
            finally:
                copy.unlink(missing_ok=True)
            return
        if kind == "rqlited" and self.rqlited is None:
            raise SystemExit(f"backend rqlited needs {RQLITED_VARIABLE} to name a binary")
        node = RqliteNode(kind, name, self.rqlited)
        try:
            db = Database(kind, node.url(), node.port, node=node)
            self._migrate(db.url)
            yield db
        finally:
            node.stop()
            shutil.rmtree(name, ignore_errors=True)

    def _migrate(self, url: str) -> None:
        result = self.job(self.job_env(self.redis.url, url), "migrate", "migrate")
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed: {result.stderr[-2000:]}")

    @contextlib.contextmanager
    def link(self, rtt_ms: float, db: Database, proxy_at_zero: bool) -> Iterator[Link]:
        if rtt_ms == 0 and not proxy_at_zero:
            yield Link(self.redis.port, db.port, None)
            return
        upstreams = [self.redis.port] + ([db.port] if db.port is not None else [])
        with LatencyProxy(upstreams, rtt_ms) as proxy:
            db_port = proxy.ports[1] if db.port is not None else None
            yield Link(proxy.ports[0], db_port, proxy)

    # -- measuring --------------------------------------------------------------------------

    def startup(self, backend: str, rtt_ms: float, proxy_at_zero: bool) -> dict[str, Any]:
        """Median of five runs with nothing to do (empty Redis, migrated database)."""
        key = (backend, rtt_ms)
        if key not in self.startups:
            self.redis.client.flushall()
            with self.database(backend) as db, self.link(rtt_ms, db, proxy_at_zero) as link:
                env = self.job_env(redis_url(link.redis_port), db.url_via(link.db_port))
                walls, rss, trips = [], [], None
                for _ in range(5):
                    link.reset()
                    result = self.job(env, "nothing", "rotate")
                    if result.returncode != 0:
                        raise RuntimeError(f"nothing-to-do run failed: {result.stderr[-2000:]}")
                    walls.append(result.wall_s)
                    rss.append(result.peak_rss_mb)
                    counts = link.counts()
                    trips = None if counts is None else counts[0].round_trips
            self.startups[key] = {
                "backend": backend,
                "rtt_ms": rtt_ms,
                "wall_s": walls,
                "median_s": statistics.median(walls),
                "peak_rss_mb": max(rss),
                "round_trips": trips,
            }
            say(f"  nothing to do ({backend}, {rtt_ms:g} ms): {statistics.median(walls):.3f} s")
        return self.startups[key]

    def measure(self, case: Case, method: str, batch: int | None, proxy_at_zero: bool) -> Run:
        template = self.template(case.width)
        last = last_stable(time.time())
        dates = list(range(last - case.dates + 1, last + 1))
        startup = None
        if method == "rotate_stats":
            startup = self.startup(case.backend, case.rtt_ms, proxy_at_zero)["median_s"]
        seed(self.redis.client, template, dates)
        with (
            self.database(case.backend) as db,
            self.link(case.rtt_ms, db, proxy_at_zero) as link,
        ):
            r_url, d_url = redis_url(link.redis_port), db.url_via(link.db_port)
            if method == "rotate_stats":
                argv = [sys.executable, "-m", "rotate_stats", "rotate"]
                env = self.job_env(r_url, d_url, batch)
            else:
                argv = [sys.executable, str(SHAPES), method, "--redis-url", r_url]
                argv += ["--database", d_url, "--first", str(dates[0]), "--last", str(dates[-1])]
                argv += ["--prefix", family.LIVE_PREFIX, "--events", ",".join(family.EVENTS)]
                env = dict(self.base_env)
            link.reset()
            probe = RedisProbe(self.redis.port, self.cpu_per_ping, self.names)
            try:
                result = self.run(argv, env, method)
            finally:
                figures = probe.finish()
            counts = link.counts()
            problem = self._check(result, db, dates, template, method)
        if method == "rotate_stats":
            assert startup is not None
            seconds = result.wall_s - startup
        else:
            seconds = None if problem else float(json.loads(result.stdout)["seconds"])
        up = counts[0] if counts else None
        down = counts[1] if counts and len(counts) > 1 else None
        return Run(
            backend=case.backend,
            dates=case.dates,
            width=case.width,
            fields_per_date=template.fields,
            rtt_ms=case.rtt_ms,
            method=method,
            batch_size=batch,
            returncode=result.returncode,
            problem=problem,
            wall_s=result.wall_s,
            seconds=seconds,
            startup_s=startup,
            peak_rss_mb=result.peak_rss_mb,
            round_trips=None if up is None else up.round_trips,
            connections=None if up is None else up.connections,
            bytes_up=None if up is None else up.bytes_up,
            bytes_down=None if up is None else up.bytes_down,
            db_round_trips=None if down is None else down.round_trips,
            db_bytes_up=None if down is None else down.bytes_up,
            redis=figures,
        )

    def cprofile(self, case: Case, batch: int, top: int = 15) -> dict[str, Any]:
        """One more rotate_stats run of the case under cProfile (not timed): where it goes."""
        template = self.template(case.width)
        last = last_stable(time.time())
        dates = list(range(last - case.dates + 1, last + 1))
        seed(self.redis.client, template, dates)
        output = self.next_name("cprofile").with_suffix(".pstats")
        with self.database(case.backend) as db, self.link(case.rtt_ms, db, False) as link:
            env = self.job_env(redis_url(link.redis_port), db.url_via(link.db_port), batch)
            profiler = ["-m", "cProfile", "-o", str(output)]
            result = self.job(env, "cprofiled", "rotate", python=profiler)
        if result.returncode != 0:
            return {"problem": result.stderr[-2000:]}
        stats = pstats.Stats(str(output))
        entries = stats.stats  # type: ignore[attr-defined]
        rows = []
        for (filename, line, function), (_, calls, own, cumulative, _) in entries.items():
            path = Path(filename)
            where = "/".join(path.parts[-2:]) if path.parts else filename
            rows.append(
                {
                    "function": f"{where}:{line}({function})",
                    "calls": calls,
                    "self_s": own,
                    "cumulative_s": cumulative,
                }
            )
        return {
            "case": asdict(case),
            "batch_size": batch,
            "wall_s": result.wall_s,
            "total_s": stats.total_tt,  # type: ignore[attr-defined]
            "by_self": sorted(rows, key=lambda r: -r["self_s"])[:top],
            "by_cumulative": sorted(rows, key=lambda r: -r["cumulative_s"])[:top],
        }

    def _check(
        self,
        result: ChildResult,
        db: Database,
        dates: list[int],
        template: DayTemplate,
        method: str,
    ) -> str:
        """Why the run did not do the work ("" when it did)."""
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or [""])[-1]
            return f"exit {result.returncode}: {tail[-300:]}"
        rows, requested = db.totals(iso(dates[0]), iso(dates[-1]))
        expected = len(dates) * template.counts["requested"]
        if rows != len(dates) or requested != expected:
            return f"{rows} rows, requested {requested}; expected {len(dates)} rows, {expected}"
        if method != "floor":
            left = self.redis.client.exists(
                *family.live_keys(dates[0]), *family.live_keys(dates[-1])
            )
            if left:
                return f"{left} live keys of the first/last date left in Redis"
        return ""


def median_run(runs: list[Run]) -> Run:
    """The run with the median time (a failed one if any failed), knowing every time."""
    failed = [r for r in runs if r.problem]
    ordered = sorted(runs, key=lambda r: r.seconds or 0.0)
    chosen = failed[0] if failed else ordered[(len(ordered) - 1) // 2]
    chosen.repeats = [r.seconds for r in runs]
    return chosen


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- start-up -----------------------------------------------------------------------------------


def help_times(bench: Bench, count: int = 5) -> list[float]:
    env = bench.job_env(bench.redis.url, "sqlite:///unused.sqlite3")
    bench.job(env, "help-warmup", "--help")  # compiles the .pyc files of a fresh checkout
    return [bench.job(env, "help", "--help").wall_s for _ in range(count)]


def importtime(bench: Bench, top: int = 10, runs: int = 3) -> list[dict[str, Any]]:
    """The ``top`` imports by cumulative time of ``python -X importtime -m rotate_stats --help``
    (per module, the median of ``runs`` runs: one run on a busy machine is noise)."""
    env = bench.job_env(bench.redis.url, "sqlite:///unused.sqlite3")
    argv = [sys.executable, "-X", "importtime", "-m", "rotate_stats", "--help"]
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(runs):
        result = bench.run(argv, env, "importtime")
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "imported package" in line:
                continue
            own, cumulative, name = line[len("import time:") :].split("|", 2)
            row = seen.setdefault(
                name.strip(),
                {"depth": (len(name) - len(name.lstrip(" ")) - 1) // 2, "cum": [], "own": []},
            )
            row["cum"].append(int(cumulative) / 1000)
            row["own"].append(int(own) / 1000)
    rows = [
        {
            "module": module,
            "cumulative_ms": statistics.median(row["cum"]),
            "self_ms": statistics.median(row["own"]),
            "depth": row["depth"],
            "runs_cumulative_ms": row["cum"],
        }
        for module, row in seen.items()
    ]
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return rows[:top]


def effective_rtts(port: int, rtts: Sequence[float], proxy_at_zero: bool) -> dict[str, float]:
    """Median PING time, direct and through the proxy at each RTT used."""
    out: dict[str, float] = {}

    def median_ping(p: int, n: int) -> float:
        client = redis.Redis(port=p)
        client.ping()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            client.ping()
            samples.append(time.perf_counter() - started)
        client.close()
        return statistics.median(samples) * 1000

    out["direct"] = median_ping(port, 200)
    for rtt in sorted(set(rtts)):
        if rtt == 0 and not proxy_at_zero:
            continue
        with LatencyProxy([port], rtt) as proxy:
            out[f"{rtt:g}"] = median_ping(proxy.ports[0], 200 if rtt < 5 else 40)
    return out


# -- the report ---------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "—"
    return f"{a / b:.1f}×"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def render(data: dict[str, Any]) -> str:
    runs = [r for r in data["runs"]]
    by_case: dict[tuple[str, int, int, float], dict[str, dict[str, Any]]] = {}
    jobs: list[dict[str, Any]] = []
    for r in runs:
        key = (r["backend"], r["dates"], r["width"], r["rtt_ms"])
        by_case.setdefault(key, {})
        if r["method"] == "rotate_stats":
            jobs.append(r)
        else:
            by_case[key][r["method"]] = r

    def good(r: dict[str, Any] | None) -> float | None:
        return None if r is None or r["problem"] else float(r["seconds"])

    def cpu(r: dict[str, Any] | None) -> float | None:
        return None if r is None or r["problem"] else float(r["redis"]["redis_cpu_net_s"])

    code, box, cal = data.get("code", {}), data["machine"], data.get("calibration", {})
    lines = [
        f"rotate_stats at {code.get('rev', '?')[:12]} ({code.get('source', '?')}"
        f"{', uncommitted changes' if code.get('dirty') else ''}); "
        f"redis-server {box.get('redis_server', '?')}; {box['cpus']} CPUs ({box['cpu_model']}); "
        f"load average {box['loadavg'][0]:.1f} at the start, "
        f"{box.get('loadavg_after', [float('nan')])[0]:.1f} at the end. "
        f"PING loop on the idle server: median {cal.get('idle_median_ping_ms', 0):.2f} ms, "
        f"worst {cal.get('idle_worst_ping_ms', 0):.1f} ms. Peak RSS floor (the launcher): "
        f"{box.get('launcher_rss_mb', 0):.0f} MB.",
        "",
        "### Time (seconds; rotate_stats net of its start-up)",
        "",
        "| backend | dates × width | RTT ms | batch | rotate_stats | per-date | floor "
        "| per-date / rotate_stats | rotate_stats / floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        shapes = by_case[(j["backend"], j["dates"], j["width"], j["rtt_ms"])]
        pd, fl = shapes.get("per-date"), shapes.get("floor")
        rs = good(j)
        mark = f" ({j['problem'][:60]})" if j["problem"] else ""
        lines.append(
            f"| {j['backend']} | {j['dates']:,} × {j['width']:,} | {j['rtt_ms']:g} "
            f"| {j['batch_size']} | {_f(rs)}{mark} | {_f(good(pd))} | {_f(good(fl))} "
            f"| {_ratio(good(pd), rs)} | {_ratio(rs, good(fl))} |"
        )
    lines += [
        "",
        "### Redis and memory (rotate_stats / per-date / floor)",
        "",
        "Redis CPU: `INFO cpu` delta minus the PING loop's share. Longest command: SLOWLOG "
        "maximum (rotate_stats: which). Worst PING: a PING every 1 ms beside the run.",
        "",
        "| backend | dates × width | RTT ms | batch | Redis CPU s | CPU rotate_stats / floor "
        "| longest command ms | worst PING ms | BUSY replies | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        shapes = by_case[(j["backend"], j["dates"], j["width"], j["rtt_ms"])]
        trio = [j, shapes.get("per-date"), shapes.get("floor")]

        def each(pick: Any, trio: list[dict[str, Any] | None] = trio) -> str:
            return " / ".join("—" if r is None else pick(r) for r in trio)

        longest = each(lambda r: _ms(r["redis"]["slowlog_max_ms"]))
        which = j["redis"]["slowlog_max_command"].removeprefix("EVALSHA ")
        first, _, rest = longest.partition(" / ")
        longest = f"{first} ({which}) / {rest}" if rest else f"{first} ({which})"
        lines.append(
            f"| {j['backend']} | {j['dates']:,} × {j['width']:,} | {j['rtt_ms']:g} "
            f"| {j['batch_size']} | {each(lambda r: _f(r['redis']['redis_cpu_net_s'], 2))} "
            f"| {_ratio(cpu(j), cpu(shapes.get('floor')))} "
            f"| {longest} | {each(lambda r: _ms(r['redis']['worst_ping_ms']))} "
            f"| {each(lambda r: str(r['redis']['busy_replies']))} "
            f"| {each(lambda r: format(r['peak_rss_mb'], '.0f'))} |"
        )
    proxied = [j for j in jobs if j["round_trips"] is not None]
    lines += ["", "### Round trips (counted at the proxy; the same at every RTT)", ""]
    if not proxied:
        lines.append("No proxied run (only RTT 0, which connects directly).")
    else:
        lines += [
            "| backend | dates × width | batch | RTTs ms | Redis: rotate_stats (job) "
            "/ per-date / floor | rqlite requests: rotate_stats / per-date / floor |",
            "|---|---|---|---|---|---|",
        ]
        shown: dict[tuple[Any, ...], list[str]] = {}  # one row per distinct count
        for j in proxied:
            shapes = by_case[(j["backend"], j["dates"], j["width"], j["rtt_ms"])]
            trio = [j, shapes.get("per-date"), shapes.get("floor")]
            redis_rt = " / ".join("—" if r is None else _int(r["round_trips"]) for r in trio)
            db_rt = " / ".join("—" if r is None else _int(r["db_round_trips"]) for r in trio)
            row = (j["backend"], j["dates"], j["width"], j["batch_size"], redis_rt, db_rt)
            shown.setdefault(row, []).append(f"{j['rtt_ms']:g}")
        for (backend, dates, width, batch, redis_rt, db_rt), rtts in shown.items():
            lines.append(
                f"| {backend} | {dates:,} × {width:,} | {batch} | {', '.join(rtts)} "
                f"| {redis_rt} | {db_rt} |"
            )
    lines += [
        "",
        "### Where Redis's time goes (rotate_stats; SLOWLOG durations summed per command)",
        "",
        "Redis 7 also logs the commands a script runs: a script's total includes them.",
        "",
        "| backend | dates × width | RTT ms | batch | top commands: count, total ms |",
        "|---|---|---|---|---|",
    ]
    for j in jobs:
        top = list(j["redis"]["slowlog_by_command"].items())[:4]
        text = "; ".join(f"{name} {count}×, {_ms(total)}" for name, (count, total) in top)
        lines.append(
            f"| {j['backend']} | {j['dates']:,} × {j['width']:,} | {j['rtt_ms']:g} "
            f"| {j['batch_size']} | {text} |"
        )
    for prof in data.get("cprofile", []):
        if "problem" in prof:
            continue
        case = prof["case"]
        lines += [
            "",
            f"cProfile of rotate_stats, {case['backend']} {case['dates']:,} × "
            f"{case['width']:,}, RTT {case['rtt_ms']:g} ms, batch {prof['batch_size']} "
            f"(profiled run {prof['wall_s']:.2f} s wall; not a timed run), top 10 by own time:",
            "",
            "| function | calls | own s | cumulative s |",
            "|---|---|---|---|",
        ]
        for row in prof["by_self"][:10]:
            lines.append(
                f"| `{row['function']}` | {row['calls']:,} | {row['self_s']:.3f} "
                f"| {row['cumulative_s']:.3f} |"
            )
    start = data["startup"]
    lines += [
        "",
        "### Start-up",
        "",
        f"`python -m rotate_stats --help`: median {_f(start['help_median_s'])} s "
        f"(runs: {', '.join(_f(x) for x in start['help_s'])}).",
        "",
        "| nothing to do: backend | RTT ms | median s | runs s | round trips | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for s in start["nothing_to_do"]:
        lines.append(
            f"| {s['backend']} | {s['rtt_ms']:g} | {_f(s['median_s'])} "
            f"| {', '.join(_f(x) for x in s['wall_s'])} | {_int(s['round_trips'])} "
            f"| {s['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "`python -X importtime -m rotate_stats --help`, top 10 by cumulative time "
        "(median of 3 runs):",
        "",
        "| module | cumulative ms | self ms |",
        "|---|---|---|",
    ]
    for row in start["importtime_top"]:
        indent = "· " * int(row["depth"])
        lines.append(
            f"| {indent}`{row['module']}` | {row['cumulative_ms']:.1f} | {row['self_ms']:.1f} |"
        )
    rtts = data["effective_rtt_ms"]
    lines += [
        "",
        "Median PING: "
        + ", ".join(
            f"{'direct' if k == 'direct' else f'proxy at {k} ms RTT'} {v:.2f} ms"
            for k, v in rtts.items()
        ),
    ]
    lines += [f"- {note}" for note in data["notes"]]
    return "\n".join(lines)


# -- the command --------------------------------------------------------------------------------


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        dates, _, width = item.strip().lower().partition("x")
        if not dates.isdigit() or not width.isdigit() or int(dates) < 1 or int(width) < 1:
            raise argparse.ArgumentTypeError(f"{item!r} is not DATESxWIDTH (e.g. 365x100)")
        out.append((int(dates), int(width)))
    return out


def _numbers(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("values must be >= 0")
    return values


def _names(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--sizes", type=_sizes, help="DATESxWIDTH,... (replaces the profile's)")
    parser.add_argument("--rtts", type=_numbers, help="RTTs in ms, e.g. 0,1,10")
    parser.add_argument("--backends", type=_names(BACKENDS), help="sqlite,emulator,rqlited")
    parser.add_argument("--batch-sizes", type=_numbers, help="rotate_stats batch sizes (31)")
    parser.add_argument("--methods", type=_names(METHODS), help=",".join(METHODS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per measurement; the median one is reported, every time is kept (1)",
    )
    parser.add_argument("--rev", help="benchmark rotate_stats at this git revision")
    parser.add_argument(
        "--proxy-at-zero",
        action="store_true",
        help="at RTT 0 go through the proxy too (counts round trips, adds its hop)",
    )
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="after each timed rotate_stats run, one more under cProfile (not timed): top "
        "functions in the JSON",
    )
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--tmp-dir", type=Path, help="where servers and databases live")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child (1800)")
    parser.add_argument("--redis-server", default="redis-server", help="binary (redis-server)")
    return parser


def choose_cases(args: argparse.Namespace, rqlited: str | None) -> list[Case]:
    custom = any(x is not None for x in (args.sizes, args.rtts, args.backends, args.batch_sizes))
    if not custom and args.methods is None:
        return profile_cases(args.profile, rqlited)
    quick = args.profile == "quick"
    sizes = args.sizes or ([(365, 5), (365, 100)] if quick else [(365, 100), (3650, 100)])
    rtts = args.rtts or ([0.0, 1.0] if quick else [0.0, 1.0, 10.0])
    backends = args.backends or ["sqlite"]
    batches = [int(b) for b in (args.batch_sizes or [31])]
    return grid(sizes, rtts, backends, batches, args.methods or METHODS)


def checkout(rev: str | None, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The directory whose ``rotate_stats`` package runs, and what it is."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    if rev is None:
        dirty = bool(git("status", "--porcelain", "--", "rotate_stats"))
        return REPO, {"rev": git("rev-parse", "HEAD"), "source": "working tree", "dirty": dirty}
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha, "rotate_stats"],
        capture_output=True,
        check=True,
    ).stdout
    target = tmp / "code"
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target, {"rev": sha, "source": f"git archive {rev}", "dirty": False}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
    }


def save(out: Path, data: dict[str, Any]) -> None:
    """Write the raw figures so far (after every run: a long run is not lost to a crash)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    rqlited = os.environ.get(RQLITED_VARIABLE, "").strip() or None
    cases = choose_cases(args, rqlited)
    if args.list:
        for c in cases:
            print(
                f"{c.backend:8} {c.size:>12} rtt={c.rtt_ms:g} ms "
                f"batch={','.join(map(str, c.batch_sizes))} {','.join(c.methods)}"
            )
        return 0
    if any(c.backend == "rqlited" for c in cases) and rqlited is None:
        raise SystemExit(f"backend rqlited needs {RQLITED_VARIABLE} to name a binary")
    # children get this environment minus the job's variables and what a production run
    # would not have (no .pyc written makes every start-up compile a fresh checkout)
    dropped = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPROFILEIMPORTTIME")
    base_env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("ROTATE_STATS_") or k.startswith("ROTATE_STATS_TEST_"))
        and k not in dropped
    }
    started = time.time()
    data: dict[str, Any] = {
        "command": [sys.executable, "-m", "benchmarks.perf", *(argv or sys.argv[1:])],
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": args.profile,
        "machine": machine(),
        "cases": [asdict(c) for c in cases],
        "runs": [],
        "notes": [
            "RTT 0: direct connections"
            if not args.proxy_at_zero
            else "RTT 0: through the proxy, without added delay",
            "per-date and floor run on the same backend as rotate_stats",
            "the floor deletes nothing; rotate_stats and per-date delete the keys",
            "the job's Lua scripts are preloaded (SCRIPT LOAD): the steady state of a daily run",
        ],
    }
    try:
        with contextlib.ExitStack() as stack:
            # first, while this process is small: see launcher.py
            launcher = Launcher()
            stack.callback(launcher.close)
            data["machine"]["launcher_rss_mb"] = launcher.own_rss_mb
            tmp = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="rotate-stats-perf-", dir=args.tmp_dir)
                )
            )
            (tmp / "runs").mkdir()
            code_dir, code = checkout(args.rev, tmp)
            data["code"] = code
            say(f"rotate_stats at {code['rev'][:12]} ({code['source']}); temp dir {tmp}")
            server = RedisServer(tmp / "redis", args.redis_server)
            stack.callback(server.stop)
            data["machine"]["redis_server"] = server.version
            say("calibrating the PING loop and the proxy")
            calibration = calibrate(server.port)
            data["calibration"] = calibration
            rtts = [c.rtt_ms for c in cases]
            data["effective_rtt_ms"] = effective_rtts(server.port, rtts, args.proxy_at_zero)
            scripts = script_bodies(code_dir)
            preload_scripts(server.client, scripts)
            bench = Bench(
                tmp=tmp,
                code_dir=code_dir,
                launcher=launcher,
                redis=server,
                rqlited=rqlited,
                timeout=args.timeout,
                cpu_per_ping=calibration["cpu_s_per_ping"],
                names={sha: name for sha, (name, _) in scripts.items()},
                base_env=base_env,
            )
            helps = help_times(bench)
            data["startup"] = {
                "help_s": helps,
                "help_median_s": statistics.median(helps),
                "importtime_top": importtime(bench),
                "nothing_to_do": [],
            }
            say(f"--help: median {statistics.median(helps):.3f} s")
            for case in cases:
                for method in case.methods:
                    batches: Sequence[int | None] = (
                        case.batch_sizes if method == "rotate_stats" else [None]
                    )
                    for batch in batches:
                        runs = [
                            bench.measure(case, method, batch, args.proxy_at_zero)
                            for _ in range(args.repeat)
                        ]
                        run = median_run(runs)
                        data["runs"].append(asdict(run))
                        if args.cprofile and batch is not None:
                            data.setdefault("cprofile", []).append(bench.cprofile(case, batch))
                        save(args.out, data)
                        say(
                            f"{case.backend} {case.size} rtt={case.rtt_ms:g} {method}"
                            f"{'' if batch is None else f' batch={batch}'}: "
                            f"{_f(run.seconds)} s (wall {run.wall_s:.3f}), "
                            f"longest {run.redis.slowlog_max_ms:.1f} ms, "
                            f"worst PING {run.redis.worst_ping_ms:.1f} ms, "
                            f"RSS {run.peak_rss_mb:.0f} MB"
                            + (f" PROBLEM: {run.problem}" if run.problem else "")
                        )
            data["startup"]["nothing_to_do"] = list(bench.startups.values())
    except KeyboardInterrupt:
        say("interrupted: servers and temp files removed")
        return 130
    data["elapsed_s"] = time.time() - started
    data["machine"]["loadavg_after"] = os.getloadavg()
    table = render(data)
    print(table)
    save(args.out, data)
    args.out.with_suffix(".md").write_text(table + "\n")
    say(f"raw figures: {args.out}")
    return 1 if any(r["problem"] for r in data["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
