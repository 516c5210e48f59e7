"""Runs scenarios against a real redis-server (AOF, appendfsync always) and a store.

Writers are threads of this process; rotators are subprocesses
(``tools.faultcampaign.rotator``) so they can be SIGKILLed and SIGSTOPped.
Redis restarts wait for writers to be between operations (a write gate), so
that every increment a writer saw acknowledged is known, and nothing is in
flight when the server dies. The store is an SQLite file, the in-process
rqlite emulator, or a real three-node rqlited cluster (``cluster.py``), fresh
for each scenario, and always shut down when the scenario ends, however it ends.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis

from rotate_stats import Recorder, family
from rotate_stats.checks import prune_ledger
from rotate_stats.database import SqliteStore, Store, migrate
from rotate_stats.dates import iso, last_stable
from rotate_stats.errors import AmbiguousWrite, LockHeld, RotateStatsError, StoreError
from rotate_stats.redis_side import RedisSide
from rotate_stats.rqlite_store import RqliteStore
from rotate_stats.walk import RotateOptions, rotate

from .cluster import ClusterBackend
from .oracle import Oracle, Verdict, judge
from .proxies import Proxies
from .scenario import RotatorPlan, Scenario

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("greeting", "system_chat", "reflection_question", "sync", "summarize", "unknown")
FTQ_REASONS = ("locked", "ratelimited:user_queued_jobs:3:5", "user_not_found", "bad_state")
FAIL_REASONS = ("timed_out", "no_completion", "llm:empathy:RateLimitError", "write_failed:x")
SET_IF_LOWER = """
local cur = redis.call('GET', KEYS[1])
if cur == false or tonumber(ARGV[1]) < tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""


DURABLE = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


class RedisServer:
    """redis-server; by default with AOF and ``appendfsync always``, so that an
    acknowledged write survives. ``persistence`` replaces those arguments."""

    def __init__(
        self,
        directory: Path,
        persistence: tuple[str, ...] = DURABLE,
        program: str = "redis-server",
    ) -> None:
        binary = shutil.which(program)
        if binary is None:
            raise SystemExit(f"campaign: {program} is not installed")
        self.binary, self.directory, self.persistence = binary, directory, persistence
        directory.mkdir(parents=True, exist_ok=True)
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += [*self.persistence, "--dir", str(self.directory)]
        args += ["--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(400):
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                time.sleep(0.025)
        raise SystemExit("campaign: redis-server did not start")

    def crash_and_restart(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class Outcome:
    """One scenario's verdict and what else went wrong."""

    scenario: Scenario
    verdict: Verdict
    increments: int
    problems: list[str] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)  # rotator processes by exit
    happened: Counter[str] = field(default_factory=Counter)  # cluster faults as they happened

    @property
    def failed(self) -> bool:
        """Lost or doubled counts, or a problem; a doubling the scenario expects (a
        rollback with the fence off) is not a failure: not seeing it would be."""
        doubled = self.verdict.doubled and not self.scenario.expects_doubling
        return bool(self.verdict.lost or doubled or self.problems)


class Writers:
    """Recorder and foreign writer threads feeding the oracle."""

    def __init__(
        self, scenario: Scenario, url: str, oracle: Oracle, recorder_url: str | None = None
    ) -> None:
        self.scenario, self.url, self.oracle = scenario, url, oracle
        self.recorder_url = recorder_url or url  # through a reply-losing proxy, maybe
        self.gate = threading.Lock()  # held per operation; a restart takes it
        self.clients: list[redis.Redis] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()  # set when the scenario is abandoned (Ctrl-C)
        self.threads = [
            threading.Thread(target=self._run, args=(i, i < scenario.recorder_writers))
            for i in range(scenario.recorder_writers + scenario.foreign_writers)
        ]
        if scenario.planted:
            self.threads.append(threading.Thread(target=self._plant))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def reconnect(self) -> None:
        """After a restart (gate held): drop every pooled connection."""
        for client in self.clients:
            client.connection_pool.disconnect()

    def _plant(self) -> None:
        """A count without its breakdown on the planted dates, three times: a finding
        that a strict run refuses (gives the date back) and a lenient one commits."""
        client = redis.Redis.from_url(self.url, retry_on_error=[])
        self.clients.append(client)
        set_if_lower = client.register_script(SET_IF_LOWER)
        for _ in range(3):
            for d in self.scenario.planted:
                if self.stopping.is_set():
                    return
                try:
                    with self.gate:
                        client.hincrby(family.counts_key(d), "queued", 1)
                        self.oracle.accept((d, "queued", None), 1)
                        set_if_lower(keys=[family.EARLIEST_KEY], args=[d])
                except redis.RedisError as exc:
                    self.errors.append(f"planter: {exc!r}")
                    return
            time.sleep(self.scenario.write_seconds / 3)

    def _run(self, index: int, recorder: bool) -> None:
        rng = random.Random(self.scenario.seed * 100 + index)
        if recorder:  # redis-py's default retries on: the recorder must not resend
            client = redis.Redis.from_url(self.recorder_url)
        else:
            client = redis.Redis.from_url(self.url, retry_on_error=[])
        self.clients.append(client)
        rec = Recorder(client)
        set_if_lower = client.register_script(SET_IF_LOWER)
        for _ in range(self.scenario.ops_per_writer):
            if self.stopping.is_set():
                return
            d = rng.choice(self.scenario.dates)
            writes = _lifecycle(rng) if self.scenario.lifecycles else [_any_write(rng)]
            for event, key, amount in writes:  # one operation each, as writers do
                try:
                    with self.gate:
                        if recorder:
                            try:
                                counted = rec.record(d, event, key, amount)
                            except AmbiguousWrite:  # the proxy only loses "counted" replies
                                counted = True
                            if counted:
                                self.oracle.accept((d, event, None), amount)
                                self.oracle.accept((d, event, key), amount)
                            else:
                                self.oracle.refuse(d, event, amount)
                        else:
                            client.hincrby(family.counts_key(d), event, amount)
                            self.oracle.accept((d, event, None), amount)
                            client.hincrby(family.extra_key(d, event), key, amount)
                            self.oracle.accept((d, event, key), amount)
                            set_if_lower(keys=[family.EARLIEST_KEY], args=[d])
                except redis.RedisError as exc:  # the harness must know every outcome
                    self.errors.append(f"writer {index}: {exc!r}")
                    return
            time.sleep(
                rng.random() * 2 * self.scenario.write_seconds / self.scenario.ops_per_writer
            )


def _any_write(rng: random.Random) -> tuple[str, str, int]:
    """Any event, any amount: dates end up with invariant findings."""
    event = rng.choice(family.EVENTS)
    return event, _breakdown(event, rng), rng.randint(1, 3)


def _lifecycle(rng: random.Random) -> list[tuple[str, str, int]]:
    """One job's events in order: a date whose jobs all finished has no findings (a
    strict run commits it); one cut mid-job has some (a strict run gives it back)."""
    job_type = rng.choice(TYPES)
    if rng.random() < 0.2:
        return [
            ("requested", job_type, 1),
            ("failed_to_queue", _breakdown("failed_to_queue", rng, job_type), 1),
        ]
    end = "completed" if rng.random() < 0.8 else "failed"
    return [
        ("requested", job_type, 1),
        ("queued", job_type, 1),
        ("started", job_type, 1),
        (end, _breakdown(end, rng, job_type), 1),
    ]


def _breakdown(event: str, rng: random.Random, job_type: str | None = None) -> str:
    job_type = job_type or rng.choice(TYPES)
    if event == "failed_to_queue":
        return f"{job_type}:{rng.choice(FTQ_REASONS)}"
    if event == "failed":
        return f"{job_type}:{rng.choice(FAIL_REASONS)}"
    return job_type


class Backend:
    """A fresh database per scenario: an SQLite file or an in-process rqlite emulator."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind, self.directory = kind, directory
        self.node = None
        self.background: list[threading.Thread] = []  # outages in progress
        if kind == "rqlite":
            sys.path.insert(0, str(ROOT))
            from tests.rqlite_emulator import start_emulator

            self.node = start_emulator(directory / "rqlite")
            self.url = f"rqlite://{self.node.host}:{self.node.port}"
        else:
            self.path = str(directory / "stats.sqlite3")
            self.url = f"sqlite:///{self.path}"

    def open(self) -> Store:
        if self.node is not None:
            return RqliteStore([(self.node.host, self.node.port)], timeout=5)
        return SqliteStore(self.path, timeout=5)

    def outage(self, length: float) -> None:
        """Make the database unreachable for ``length`` seconds (blocks the caller)."""
        if self.node is not None:
            self.node.set_leader(False)
            time.sleep(length)
            self.node.set_leader(True)
            return
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(length)
        conn.execute("ROLLBACK")
        conn.close()

    def drop_response(self) -> None:
        if self.node is not None:
            self.node.faults.drop_responses(1)

    def settle(self) -> None:
        """Wait for outages in progress to end."""
        for thread in self.background:
            if thread.ident is not None:
                thread.join()

    def close(self) -> None:
        self.settle()
        if self.node is not None:
            self.node.stop()


class Rotators:
    """Rotator subprocesses: launched, killed, continued after being stopped."""

    def __init__(self, scenario: Scenario, env: dict[str, str], logs: Path) -> None:
        self.scenario, self.env, self.logs = scenario, env, logs
        self.running: list[tuple[RotatorPlan, subprocess.Popen[bytes], float]] = []
        self.log_paths: list[Path] = []
        self.stopped_at: dict[int, float] = {}

    def launch(self, plan: RotatorPlan) -> None:
        fault = "none" if plan.fault == "random-kill" else plan.fault
        args = [sys.executable, "-m", "tools.faultcampaign.rotator", "--fault", fault]
        args += ["--point", plan.point, "--nth", str(plan.nth)]
        args += ["--lockless"] if plan.lockless else []
        args += ["--strict"] if plan.strict else []  # passed on to `rotate`
        args += ["--repeat", str(plan.repeat)]
        args += ["--delay-ms", str(plan.kill_after_ms)] if plan.fault == "leader-kill" else []
        path = self.logs / f"rotator-{len(self.running)}.log"
        log = open(path, "wb")  # noqa: SIM115
        env = dict(self.env)
        if plan.retry_for is not None:
            env["ROTATE_STATS_DATABASE_RETRY_FOR"] = str(plan.retry_for)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)
        log.close()
        self.running.append((plan, proc, time.monotonic()))
        self.log_paths.append(path)

    def tend(self, ttl: float) -> None:
        """Random kills; SIGCONT for a rotator stopped for longer than its lock's TTL."""
        now = time.monotonic()
        for plan, proc, started in self.running:
            if proc.poll() is not None:
                continue
            if plan.fault == "random-kill" and now - started >= plan.kill_after_ms / 1000:
                proc.kill()
            elif plan.fault == "stop" and _is_stopped(proc.pid):
                since = self.stopped_at.setdefault(proc.pid, now)
                if now - since > ttl + 0.3:
                    os.kill(proc.pid, signal.SIGCONT)

    def busy(self) -> bool:
        return any(proc.poll() is None for _, proc, _ in self.running)

    def walking(self) -> bool:
        """A rotator past start-up, in its walk, and not frozen (``CAMPAIGN_WALKING_DIR``)."""
        return any(
            proc.poll() is None
            and not _is_stopped(proc.pid)
            and (self.logs / f"walking-{proc.pid}").exists()
            for _, proc, _ in self.running
        )

    def kill_all(self) -> None:
        for _, proc, _ in self.running:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()

    def exits(self) -> Counter[str]:
        """Rotator processes by exit code, with what their logs say about the database."""
        out: Counter[str] = Counter()
        for (_, proc, _), path in zip(self.running, self.log_paths, strict=True):
            code = proc.returncode
            text = path.read_text(errors="replace") if path.exists() else ""
            errors = "\n".join(
                line for line in text.splitlines() if "error" in line and "WARNING" not in line
            )
            label = "SIGKILL" if code == -signal.SIGKILL else str(code)
            if code == 1 and "the watermark of" in errors:
                label += " (claim below its date's watermark: reported, keys left)"
            elif code == 1:
                if "no host could serve" in errors:
                    label += " (database unavailable: gave up)"
                elif "campaign:" in errors:
                    label += " (injected lost request/response)"
                elif "rqlite" in errors:
                    label += " (other database error)"
                elif "fence" in errors:
                    label += " (durability fence not met)"
                elif "journal_chat_job_stats" in errors:
                    label += " (table refused)"
            if code == 2 and "ROTATE_STATS_REDIS_FENCE" in errors:
                label += " (fence refused by the server)"
            if "served the request after" in text:  # a WARNING the store logs
                label += ", waited out an election"
            out[label] += 1
        return out


def _is_stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def run_scenario(
    scenario: Scenario,
    server: RedisServer,
    workdir: Path,
    rqlited: str | None = None,
    keep: bool = False,
) -> Outcome:
    """Run one scenario to its final clean rotation and judge it.

    ``rqlited`` is the binary for ``rqlite-real``. Whatever happens (a failure,
    Ctrl-C), the scenario's store is shut down: every rqlited stopped by PID.
    Its files are deleted if it passed, unless ``keep``.
    """
    directory = workdir / f"s{scenario.seed}"
    directory.mkdir(parents=True, exist_ok=True)
    if scenario.rollback is not None:  # its own Redis servers
        from .rollback import run_moving, run_rollback

        run = run_moving if scenario.rollback == "moving" else run_rollback
        outcome = run(scenario, Backend(scenario.backend, directory), directory)
        if not outcome.failed and not keep:
            shutil.rmtree(directory, ignore_errors=True)
        return outcome
    own: RedisServer | None = None
    if scenario.aof_fsync == "everysec":  # its own valkey-server (WAITAOF), AOF everysec
        everysec = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
        server = own = RedisServer(directory / "valkey", everysec, "valkey-server")
    client = redis.Redis(port=server.port)
    client.flushall()
    backend: Backend | ClusterBackend
    if scenario.backend == "rqlite-real":
        assert rqlited is not None
        drop = scenario.drop_response_ms is not None
        backend = ClusterBackend(
            rqlited, directory / "rqlite", scenario.seed, scenario.host_order, drop
        )
    else:
        backend = Backend(scenario.backend, directory)
    try:
        outcome = _run(scenario, server, client, backend, directory)
    finally:
        backend.close()
        client.close()
        if own is not None:
            own.stop()
    if not outcome.failed and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return outcome


def _run(
    scenario: Scenario,
    server: RedisServer,
    client: redis.Redis,
    backend: Backend | ClusterBackend,
    directory: Path,
) -> Outcome:
    cluster = backend if isinstance(backend, ClusterBackend) else None
    store = backend.open()
    proxies = Proxies(scenario, server.port)
    try:
        problems = _adopt(scenario, store)
        oracle = Oracle()
        _seed_wide(scenario, client, oracle)
        writers = Writers(scenario, server.url, oracle, proxies.recorder_url)
        if scenario.aof_fsync == "everysec":
            # The harness must know every write's outcome, and `everysec` may lose the last
            # second of them: writers write first, and are fsynced before any rotator starts.
            writers.start()
            writers.join()
            problems += writers.errors
            if int(client.execute_command("WAITAOF", 1, 0, 5000)[0]) < 1:  # type: ignore[no-untyped-call]
                problems.append("the writers' writes were not fsynced (WAITAOF)")
            idle = replace(scenario, recorder_writers=0, foreign_writers=0, planted=())
            writers = Writers(idle, server.url, oracle)
        ttl = 1.0
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        env.update(
            ROTATE_STATS_REDIS_URL=proxies.rotator_url or server.url,
            ROTATE_STATS_DATABASE_URL=backend.url,
            ROTATE_STATS_LOCK_TTL=str(ttl),
            ROTATE_STATS_BATCH_SIZE=str(scenario.batch_size),
            ROTATE_STATS_DATABASE_TIMEOUT="1",
            ROTATE_STATS_LOG_LEVEL="ERROR",
        )
        if cluster is not None:  # warnings: a run that waited out an election says so
            env.update(cluster.env(), CAMPAIGN_WALKING_DIR=str(directory))
            env.update(ROTATE_STATS_LOG_LEVEL="WARNING")
        if scenario.wide:
            env.update(CAMPAIGN_READ_DIR=str(directory))
        if scenario.aof_fsync == "everysec":
            env.update(ROTATE_STATS_REDIS_FENCE=scenario.wide_fence)
        rotators = Rotators(scenario, env, directory)
        events = _timeline(scenario, server, client, writers, rotators, backend)
        extra = RoundThree(scenario, server, client, writers, backend, env, directory)
        events += extra.events()
        events.sort(key=lambda e: e[0])
        problems += _play(events, writers, rotators, cluster, ttl, extra)
        problems += extra.finish()
        problems += writers.errors
        problems += _repair_foreign_table(scenario, store)
        exits = rotators.exits()
        recover = None
        if isinstance(backend, Backend):
            backend.settle()
        if cluster is not None:
            problems += cluster.problems
            try:
                cluster.settle()
            except RuntimeError as exc:
                problems.append(f"the cluster did not recover: {exc}")
            recover = _recovery(cluster)
        problems += final_rotation(client, store, recover)
        try:
            verdict = judge(oracle, client, cluster.oracle_store(store) if cluster else store)
        except (StoreError, redis.RedisError) as exc:  # reported, never a crash mid-campaign
            problems.append(f"the oracle could not read (no verdict): {type(exc).__name__}: {exc}")
            verdict = Verdict(0, 0, {}, {})
        if verdict.refusal_mismatch:
            problems.append(f"refusals not visible as counted: {verdict.refusal_mismatch}")
    finally:
        proxies.close()
        store.close()
    happened = cluster.happened if cluster is not None else Counter[str]()
    happened.update(proxies.happened())
    happened.update(extra.happened)
    return Outcome(scenario, verdict, oracle.increments, problems, exits, happened)


def _timeline(
    scenario: Scenario,
    server: RedisServer,
    client: redis.Redis,
    writers: Writers,
    rotators: Rotators,
    backend: Backend | ClusterBackend,
) -> list[tuple[int, Callable[[], None]]]:
    """(ms after the start, action) for the rotators and every fault, in time order."""
    events: list[tuple[int, Callable[[], None]]] = [
        (p.start_ms, functools.partial(rotators.launch, p)) for p in scenario.rotators
    ]

    def restart() -> None:
        with writers.gate:
            server.crash_and_restart()
            writers.reconnect()
        client.connection_pool.disconnect()

    if scenario.redis_restart_ms is not None:
        events.append((scenario.redis_restart_ms, restart))
    if scenario.delete_earliest_ms is not None:
        events.append((scenario.delete_earliest_ms, lambda: _delete_earliest(server)))
    if isinstance(backend, ClusterBackend):
        cluster = backend
        cluster.rotating = rotators.walking
        cluster.restart_delay = scenario.restart_delay_ms / 1000
        if scenario.db_outage is not None:
            start, length = scenario.db_outage
            spares = scenario.outage_spares
            events.append((start, lambda: cluster.lose_quorum(length / 1000, spares)))
        if scenario.leader_kill is not None:
            at, after = scenario.leader_kill
            events.append((at, lambda: cluster.kill_leader(after / 1000)))
        if scenario.node_restart is not None:
            at, role, after = scenario.node_restart
            events.append((at, lambda: cluster.restart_node(role, after / 1000)))
        if scenario.drop_response_ms is not None:
            events.append((scenario.drop_response_ms, cluster.arm_drop))
    else:
        if scenario.db_outage is not None:
            start, length = scenario.db_outage
            thread = threading.Thread(target=backend.outage, args=(length / 1000,))
            backend.background.append(thread)
            events.append((start, thread.start))
        if scenario.drop_response_ms is not None:
            events.append((scenario.drop_response_ms, backend.drop_response))
    events.sort(key=lambda e: e[0])
    return events


def _play(
    events: list[tuple[int, Callable[[], None]]],
    writers: Writers,
    rotators: Rotators,
    cluster: ClusterBackend | None,
    ttl: float,
    extra: RoundThree | None = None,
) -> list[str]:
    """The timeline, until every event ran, every rotator ended and writers finished."""
    problems: list[str] = []
    limit = 60 if cluster is None else 120  # real elections; rotators may wait them out
    t0 = time.monotonic()
    writers.start()
    try:
        while (
            events
            or rotators.busy()
            or any(t.is_alive() for t in writers.threads)
            or (cluster is not None and cluster.busy())
            or (extra is not None and extra.busy())
        ):
            elapsed_ms = (time.monotonic() - t0) * 1000
            while events and events[0][0] <= elapsed_ms:
                events.pop(0)[1]()
            rotators.tend(ttl)
            if extra is not None:
                extra.tend()
            if cluster is not None:
                cluster.tend()
            if time.monotonic() > t0 + limit:
                problems.append(f"timeline did not finish within {limit} s")
                break
            time.sleep(0.01)
    except BaseException:
        writers.stopping.set()
        raise
    finally:
        rotators.kill_all()
        writers.join()
    return problems


def _recovery(cluster: ClusterBackend) -> Callable[[str], None]:
    """What the final rotation does when a run fails: wait for the cluster, and count it."""

    def recover(error: str) -> None:
        kind = "database error" if "rqlite" in error else error[:60]
        cluster.happened[f"final rotation run failed ({kind}); retried"] += 1
        cluster.settle()

    return recover


def _delete_earliest(server: RedisServer) -> None:
    c = redis.Redis(port=server.port)
    try:
        c.delete(family.EARLIEST_KEY)
    except redis.ConnectionError:
        pass  # the server is restarting: this fault did not happen
    finally:
        c.close()


def final_rotation(
    client: redis.Redis, store: Store, recover: Callable[[str], None] | None = None
) -> list[str]:
    """What an operator does after the storm: rotate until nothing stable is left.

    Orphans (keys below ``earliest``) must have been reported by the run, and are
    then rotated with the explicit range the report suggests. With ``recover``
    (a real cluster), a run that fails on the database waits for the cluster to
    have a leader again and is run again, as the next cron run would be.
    """
    problems: list[str] = []
    side = RedisSide(client)
    last_error = ""
    for _ in range(8):
        try:
            report = rotate(client, store, RotateOptions(batch_size=3, lock_ttl_ms=1000))
            orphans = _orphan_dates(side)
            if orphans:
                # the first error is the run's error; the orphan report may come second
                # (after "earliest absent, table stale"), in the notes the CLI prints
                said = [report.error or "", *report.notes]
                if not any("will never be rotated" in text for text in said):
                    problems.append(
                        f"orphaned dates {orphans} were not reported (the run said: "
                        f"{report.error or 'no error'})"
                    )
                rotate(client, store, RotateOptions(first=orphans[0], last=orphans[-1]))
                continue
        except LockHeld:
            time.sleep(1.1)  # a killed rotator's lock expires after its TTL
            continue
        except StoreError as exc:  # before the walk (the migrations check)
            if recover is None:
                raise
            recover(str(exc))
            continue
        if report.error is None and not _stable_keys_left(side):
            return problems
        last_error = report.error or last_error
        if report.error is not None and recover is not None:
            recover(report.error)
    left = sorted(side.scan_dated_keys())
    why = f" (last error: {last_error})" if last_error else ""
    if "the watermark of" in last_error:
        why = f" - REFUSED BY A WATERMARK{why}"
    problems.append(f"final rotation did not finish; dates with keys left: {left}{why}")
    return problems


def _orphan_dates(side: RedisSide) -> list[int]:
    earliest = side.read_earliest()
    stable = last_stable(time.time())
    dated = side.scan_dated_keys()
    return sorted(d for d in dated if d <= stable and (earliest is None or d < earliest))


def _stable_keys_left(side: RedisSide) -> bool:
    stable = last_stable(time.time())
    return any(d <= stable for d in side.scan_dated_keys())


_SEED_TABLE = (ROOT / "rotate_stats" / "migrations" / "0001_journal_chat_job_stats.sql").read_text()
_SEED_DDL = "\n".join(
    line for line in _SEED_TABLE.splitlines() if not line.startswith("--")
).replace("IF NOT EXISTS ", "")
FOREIGN_DDL = {
    # an extra NOT NULL column without a default: a zero row cannot be inserted
    "extra-not-null": _SEED_DDL.replace(
        "id INTEGER PRIMARY KEY,", "id INTEGER PRIMARY KEY,\n    tenant TEXT NOT NULL,"
    ),
    # no unique key: one row per run, every merge added to every row
    "no-unique": _SEED_DDL.replace(
        "retrieved_for TEXT UNIQUE NOT NULL", "retrieved_for TEXT NOT NULL"
    ),
}


def _adopt(scenario: Scenario, store: Store) -> list[str]:
    """Migrate; with a foreign table, planted before or swapped in after migrating,
    which ``migrate`` (before) must refuse and every run must then refuse to use."""
    if scenario.foreign_table is None:
        migrate(store)
        return []
    ddl = FOREIGN_DDL[scenario.foreign_table]
    assert ddl != _SEED_DDL, "the foreign table must differ from seed 000's"
    if scenario.foreign_when == "after-migrate":
        migrate(store)
        store.execute(f"DROP TABLE {family.TABLE}")
        store.execute(ddl)
        return []
    store.execute(ddl)
    try:
        migrate(store)
    except RotateStatsError as exc:
        if family.TABLE not in str(exc):
            return [f"migrate refused the foreign table without naming it: {exc}"]
        return []
    return ["migrate adopted a foreign table"]


def _repair_foreign_table(scenario: Scenario, store: Store) -> list[str]:
    """After the storm: nothing may have been written to the foreign table or the
    ledger; then the operator replaces the table (drop, migrate) for the final run."""
    if scenario.foreign_table is None:
        return []
    problems: list[str] = []
    tables = {str(r[0]) for r in store.read("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in (family.TABLE, family.CLAIMS_TABLE):
        if table in tables:
            (n,) = store.read(f"SELECT COUNT(*) FROM {table}")[0]
            if n:
                problems.append(f"{n} row(s) written to {table} beside a foreign table")
    # every table the migrations create (0003 added the watermarks): migrate starts afresh
    tables = (family.TABLE, family.CLAIMS_TABLE, family.WATERMARKS_TABLE, family.MIGRATIONS_TABLE)
    for table in tables:
        store.execute(f"DROP TABLE IF EXISTS {table}")
    migrate(store)
    return problems


def _seed_wide(scenario: Scenario, client: redis.Redis, oracle: Oracle) -> None:
    """Wide dates: 1,500-4,000 distinct ``failed`` breakdown keys each, so a claim of
    the date is read with HSCAN across several round trips."""
    rng = random.Random(scenario.seed * 13 + 5)
    set_if_lower = client.register_script(SET_IF_LOWER)
    for d in scenario.wide:
        pipe = client.pipeline(transaction=False)
        total = 0
        for i in range(scenario.wide_keys):
            key, amount = f"{rng.choice(TYPES)}:wide-{i}", rng.randint(1, 3)
            pipe.hincrby(family.extra_key(d, "failed"), key, amount)
            oracle.accept((d, "failed", key), amount)
            total += amount
        pipe.hincrby(family.counts_key(d), "failed", total)
        oracle.accept((d, "failed", None), total)
        pipe.execute()
        set_if_lower(keys=[family.EARLIEST_KEY], args=[d])


class RoundThree:
    """Round three's faults in the ordinary runner: Redis restarted mid-read of wide
    dates, prune-ledger racing the runs, a rotator pointed at a replica by mistake."""

    def __init__(
        self,
        scenario: Scenario,
        server: RedisServer,
        client: redis.Redis,
        writers: Writers,
        backend: Backend | ClusterBackend,
        env: dict[str, str],
        directory: Path,
    ) -> None:
        self.scenario, self.server, self.client, self.writers = scenario, server, client, writers
        self.backend, self.env, self.directory = backend, env, directory
        self.happened: Counter[str] = Counter()
        self.problems: list[str] = []
        self.threads: list[threading.Thread] = []
        self.restarts = list(scenario.wide_restarts)  # delays after a wide read starts
        self.reads_seen: set[str] = set()
        self.restart_due: float | None = None

    def events(self) -> list[tuple[int, Callable[[], None]]]:
        out: list[tuple[int, Callable[[], None]]] = []
        for ms, how in self.scenario.prunes:
            out.append((ms, functools.partial(self._background, self._prune, how)))
        if self.scenario.replica_url_ms is not None:
            out.append(
                (
                    self.scenario.replica_url_ms,
                    functools.partial(self._background, self._misdirected),
                )
            )
        return out

    def _background(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args)
        self.threads.append(thread)
        thread.start()

    def busy(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def tend(self) -> None:
        """A Redis SIGKILL+restart the scheduled delay after a wide read starts."""
        if not self.restarts:
            return
        now = time.monotonic()
        if self.restart_due is None:
            new = {p.name for p in self.directory.glob("reading-*")} - self.reads_seen
            if new:
                self.reads_seen |= new
                self.restart_due = now + self.restarts[0] / 1000
        if self.restart_due is not None and now >= self.restart_due:
            self.restarts.pop(0)
            self.restart_due = None
            with self.writers.gate:
                self.server.crash_and_restart()
                self.writers.reconnect()
            self.client.connection_pool.disconnect()
            self.happened[f"wide: Redis ({self.scenario.aof_fsync}) restarted mid-read"] += 1

    def finish(self) -> list[str]:
        for thread in self.threads:
            thread.join()
        if self.scenario.wide:
            self.happened["wide: restarts drawn but no wide read came"] += len(self.restarts)
            self.happened["wide: reads of wide claims"] += len(
                list(self.directory.glob("reading-*"))
            )
        return self.problems

    def _prune(self, how: str) -> None:
        before = self.scenario.prune_before
        if how == "library":
            client = redis.Redis.from_url(self.server.url)
            try:
                store = self.backend.open()
            except StoreError as exc:
                self.happened[f"prune-ledger (library): no database ({type(exc).__name__})"] += 1
                client.close()
                return
            try:
                pruned = prune_ledger(
                    RedisSide(client), store, before, min_age_days=0, lock_ttl_ms=1000
                )
                self.happened["prune-ledger (library): ran"] += 1
                self.happened["prune-ledger: ledger entries deleted"] += pruned.deleted
                self.happened["prune-ledger: kept as still in Redis"] += pruned.kept_in_redis
            except LockHeld:
                self.happened["prune-ledger (library): lock held"] += 1
            except (RotateStatsError, redis.RedisError) as exc:
                self.happened[f"prune-ledger (library): failed ({type(exc).__name__})"] += 1
            finally:
                store.close()
                client.close()
            return
        env = dict(self.env)
        env.update(ROTATE_STATS_REDIS_URL=self.server.url, ROTATE_STATS_PRUNE_MIN_AGE="0")
        args = [sys.executable, "-m", "rotate_stats", "prune-ledger", "--before", iso(before)]
        proc = subprocess.run(
            [*args, "--format", "json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        with open(self.directory / "prune.log", "a") as log:
            log.write(f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode == 0:
            report = json.loads(proc.stdout)
            self.happened["prune-ledger (cli): ran"] += 1
            self.happened["prune-ledger: ledger entries deleted"] += int(report["deleted"])
            self.happened["prune-ledger: kept as still in Redis"] += int(report["kept_in_redis"])
        elif proc.returncode == 75:
            self.happened["prune-ledger (cli): lock held (exit 75)"] += 1
        else:
            self.happened[f"prune-ledger (cli): exit {proc.returncode}"] += 1

    def _misdirected(self) -> None:
        """A rotator given a replica's URL: exit 2 naming the replica, nothing changed.

        The replica is writable (``replica-read-only no``), so a run that did not
        refuse would change it; its link is cut once in sync, so nothing else does (and
        the primary no longer counts it: the other runs' ``auto`` fence is not held)."""
        from tests.helpers import SwitchableProxy

        link = SwitchableProxy(self.server.port)
        directory = self.directory / "misdirected"
        persistence = (
            *("--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(link.port)),
            *("--replica-read-only", "no", "--enable-debug-command", "yes"),
        )
        program = Path(self.server.binary).name
        replica = RedisServer(directory, persistence, program)
        client = redis.Redis(port=replica.port)
        try:
            deadline = time.monotonic() + 5
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            link.retarget(
                1
            )  # link cut: the replica keeps its role and data, the primary forgets it
            time.sleep(0.05)
            before = client.execute_command("DEBUG", "DIGEST")  # type: ignore[no-untyped-call]
            env = dict(self.env)
            env.update(ROTATE_STATS_REDIS_URL=replica.url, CAMPAIGN_WALKING_DIR=str(directory))
            env.pop("CAMPAIGN_READ_DIR", None)
            proc = subprocess.run(
                [sys.executable, "-m", "tools.faultcampaign.rotator", "--fault", "none"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            after = client.execute_command("DEBUG", "DIGEST")  # type: ignore[no-untyped-call]
            text = proc.stdout + proc.stderr
            (directory / "rotator.log").write_text(text)
            walked = list(directory.glob("walking-*"))
            if (
                proc.returncode != 2
                or "replica" not in text
                or "ROTATE_STATS_REDIS_URL" not in text
            ):
                self.problems.append(
                    f"a rotator given a replica's URL exited {proc.returncode} without the "
                    f"replica error: {text.strip()[-300:]}"
                )
            elif before != after or walked:
                self.problems.append("a rotator given a replica's URL changed the replica")
            else:
                self.happened["replica-url: refused at start (exit 2, naming the replica)"] += 1
        finally:
            client.close()
            replica.stop()
            link.close()
