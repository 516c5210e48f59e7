"""The job against real rqlited clusters: elections, restarts, lost quorum, auth, TLS.

Each test runs the program as operators and cron do (``python -m rotate_stats``
in a subprocess, so exit codes and messages are the real ones) against nodes of
the binary named by ``ROTATE_STATS_TEST_RQLITED`` (``scripts/test`` runs this
file once with v8.43.4 and once with v6.10.2). Rows are read back from the
cluster with ``level=strong`` and compared with every increment written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable, parse_iso
from rotate_stats.migrations import load
from tests.conftest import IN_CI, RedisServer
from tests.helpers import SET_IF_LOWER, tally_redis
from tests.real_rqlite import RqlitedCluster, RqlitedNode

pytestmark = pytest.mark.rqlited

Tally = Counter[tuple[int, str, str | None]]
TYPES = ("greeting", "system_chat", "sync", "summarize")


# -- helpers ----------------------------------------------------------------------------------


def write_backlog(client: redis.Redis, first: int, last: int) -> Tally:
    """A few whole jobs on every date (as the existing writers count them); the tally."""
    written: Tally = Counter()
    pipe = client.pipeline(transaction=False)
    for d in range(first, last + 1):
        for i in range(1 + d % 3):
            job_type = TYPES[(d + i) % len(TYPES)]
            events = ["requested", "queued", "started"]
            events.append("completed" if (d + i) % 4 else "failed")
            for event in events:
                field = job_type if event != "failed" else f"{job_type}:timed_out"
                pipe.hincrby(family.counts_key(d), event, 1)
                pipe.hincrby(family.extra_key(d, event), field, 1)
                written[d, event, None] += 1
                written[d, event, field] += 1
    pipe.eval(SET_IF_LOWER, 1, family.EARLIEST_KEY, first)
    pipe.execute()
    return written


def stored(node: RqlitedNode) -> Tally:
    """Every stored count, read through the Raft log (level=strong)."""
    out: Tally = Counter()
    columns = ", ".join(f"{e}, {e}_breakdown" for e in family.EVENTS)
    for row in node.query(f"SELECT retrieved_for, {columns} FROM {family.TABLE}"):
        d = parse_iso(row[0])
        for i, event in enumerate(family.EVENTS):
            if row[1 + 2 * i]:
                out[d, event, None] += row[1 + 2 * i]
            for key, value in json.loads(row[2 + 2 * i]).items():
                out[d, event, key] += value
    return out


def assert_exact(client: redis.Redis, node: RqlitedNode, written: Tally) -> None:
    """Every increment is in exactly one row exactly once, and Redis holds no stats key."""
    assert tally_redis(client) == {}
    assert +stored(node) == +written


def row_count(node: RqlitedNode) -> int:
    try:
        return int(node.query(f"SELECT COUNT(*) FROM {family.TABLE}", level="none")[0][0])
    except (OSError, RuntimeError, KeyError, IndexError):
        return 0


class Job:
    """Runs ``python -m rotate_stats`` against one Redis and one database URL."""

    def __init__(self, redis_url: str, database_url: str, env: dict[str, str]) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        self.env.update(
            ROTATE_STATS_REDIS_URL=redis_url, ROTATE_STATS_DATABASE_URL=database_url, **env
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "rotate_stats", *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args, **env)
        out, err = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    out, err = result.stdout[-3000:], result.stderr[-3000:]
    return f"exit {result.returncode}\nstdout:\n{out}\nstderr:\n{err}"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def make_cluster(rqlited_binary: str, tmp_path: Path) -> Iterator[Callable[..., RqlitedCluster]]:
    made: list[RqlitedCluster] = []

    def make(size: int = 3, start: bool = True, **options: Any) -> RqlitedCluster:
        cluster = RqlitedCluster(rqlited_binary, tmp_path / f"c{len(made)}", size, **options)
        made.append(cluster)
        return cluster.start() if start else cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture
def job_for(redis_server: RedisServer) -> Callable[..., Job]:
    def make(database_url: str, **env: str) -> Job:
        return Job(redis_server.url, database_url, env)

    return make


def backlog_range(days: int) -> tuple[int, int]:
    last = last_stable(time.time())
    return last - days + 1, last


def kill_when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` once ``condition`` holds (polled every 20 ms, for at most 120 s)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not condition():
            time.sleep(0.02)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_with_fault(
    job: Job, condition: Callable[[subprocess.Popen[str]], bool], fault: Callable[[], None]
) -> subprocess.CompletedProcess[str]:
    """Start a rotation (batch size 5), inject ``fault`` once ``condition`` holds, wait."""
    proc = job.start("--batch-size", "5")
    watcher = kill_when(lambda: condition(proc) or proc.poll() is not None, fault)
    out, err = proc.communicate(timeout=300)
    watcher.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Setup:
    """A migrated 3-node cluster, its job, a backlog written to Redis, leader and a witness."""

    def __init__(
        self, cluster: RqlitedCluster, job: Job, written: Tally, leader: RqlitedNode
    ) -> None:
        self.cluster, self.job, self.written, self.leader = cluster, job, written, leader
        self.witness = next(n for n in cluster.nodes if n is not leader)


@pytest.fixture
def backlog(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
) -> Callable[..., Setup]:
    def make(days: int, **env: str) -> Setup:
        cluster = make_cluster()
        job = job_for(cluster.url(), **env)
        assert job.run("migrate").returncode == 0
        written = write_backlog(redis_client, *backlog_range(days))
        return Setup(cluster, job, written, cluster.wait_leader())

    return make


# -- elections --------------------------------------------------------------------------------


def test_leader_killed_mid_rotation_the_same_run_finishes_exactly(
    backlog: Callable[..., Setup], redis_client: redis.Redis
) -> None:
    setup = backlog(1500)
    cluster, job, written, leader, witness = (
        setup.cluster,
        setup.job,
        setup.written,
        setup.leader,
        setup.witness,
    )
    killed_at: list[int] = []

    def kill() -> None:
        killed_at.append(row_count(witness))
        leader.kill()

    result = run_with_fault(job, lambda _: row_count(witness) >= 300, kill)
    assert result.returncode == 0, explain(result)
    assert 0 < killed_at[0] < 1500, f"the kill did not land mid-run ({killed_at})"
    new_leader = cluster.wait_leader()
    assert new_leader is not leader
    assert_exact(redis_client, new_leader, written)
    assert "retrying for up to 60s" in result.stderr  # the wait was logged, once
    assert result.stderr.count("retrying for up to") <= 3, explain(result)


def test_leader_killed_during_migrate(
    make_cluster: Callable[..., RqlitedCluster], job_for: Callable[..., Job]
) -> None:
    cluster = make_cluster()
    job = job_for(cluster.url())
    leader = cluster.wait_leader()
    proc = job.start("migrate")
    time.sleep(0.2)  # the interpreter is starting: its first request meets the election
    leader.kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{out}\n{err}"
    new_leader = cluster.wait_leader()
    names = [r[0] for r in new_leader.query(f"SELECT name FROM {family.MIGRATIONS_TABLE}")]
    assert names == [m.name for m in load()]
    # A second migrate (the killed leader back) has nothing to do and changes nothing.
    leader.start()
    again = job.run("migrate")
    assert again.returncode == 0, explain(again)
    assert "already up to date" in again.stdout, explain(again)


def test_started_while_a_fresh_cluster_is_still_electing(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
) -> None:
    cluster = make_cluster(start=False)
    for node in cluster.nodes:  # all at once; nobody waits for a leader
        node.start(wait=False)
    job = job_for(cluster.url())
    migrated = job.run("migrate")
    assert migrated.returncode == 0, explain(migrated)
    first, last = backlog_range(20)
    written = write_backlog(redis_client, first, last)
    result = job.run()
    assert result.returncode == 0, explain(result)
    assert_exact(redis_client, cluster.wait_leader(), written)


def test_only_a_follower_listed_writes_reach_the_leader(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
) -> None:
    cluster = make_cluster()
    leader = cluster.wait_leader()
    follower = cluster.followers()[0]
    job = job_for(f"rqlite://{follower.host}:{follower.port}")
    assert job.run("migrate").returncode == 0
    first, last = backlog_range(10)
    written = write_backlog(redis_client, first, last)
    result = job.run()
    assert result.returncode == 0, explain(result)
    assert row_count(leader) == 10  # the leader's own copy (level=none) has them
    assert_exact(redis_client, leader, written)


def test_node_restarted_mid_run(backlog: Callable[..., Setup], redis_client: redis.Redis) -> None:
    setup = backlog(600)
    cluster, job, written, leader = setup.cluster, setup.job, setup.written, setup.leader
    result = run_with_fault(
        job, lambda _: row_count(setup.witness) >= 100, lambda: leader.restart(wait=False)
    )
    assert result.returncode == 0, explain(result)
    assert_exact(redis_client, cluster.wait_stable(), written)


def test_quorum_lost_the_run_fails_after_the_retry_window_then_the_next_finishes(
    backlog: Callable[..., Setup], redis_client: redis.Redis
) -> None:
    setup = backlog(600, ROTATE_STATS_DATABASE_RETRY_FOR="3")
    cluster, job, written, survivor = setup.cluster, setup.job, setup.written, setup.witness
    down = [n for n in cluster.nodes if n is not survivor]

    def take_two_down() -> None:
        for node in down:
            node.kill()

    result = run_with_fault(job, lambda _: row_count(survivor) >= 100, take_two_down)
    assert result.returncode == 1, explain(result)
    message = result.stderr
    assert "within 3s" in message, explain(result)
    for node in down:
        assert f"{node.host}:{node.port}: unreachable" in message, explain(result)
    assert f"{survivor.host}:{survivor.port}: " in message, explain(result)
    answer = message.split(f"{survivor.host}:{survivor.port}: ", 1)[1][:300]
    assert answer.startswith(("request failed: ", "HTTP 50")), answer  # its own answer, named
    for node in down:
        node.start(wait=False)
    cluster.wait_stable()
    again = job.run()
    assert again.returncode == 0, explain(again)
    assert_exact(redis_client, cluster.wait_leader(), written)


# -- auth and TLS -----------------------------------------------------------------------------


def test_auth_right_wrong_password_and_missing_permission(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    users = [
        {"username": "admin", "password": "adm1n-pw", "perms": ["all"]},
        {"username": "reader", "password": "read-pw", "perms": ["query", "status", "ready"]},
    ]
    auth = tmp_path / "users.json"
    auth.write_text(json.dumps(users))
    cluster = make_cluster(size=1, auth_file=auth, credentials=("admin", "adm1n-pw"))
    node = cluster.nodes[0]
    where = f"{node.host}:{node.port}"

    wrong = job_for(f"rqlite://admin:n0t-it@{where}").run("migrate")
    assert wrong.returncode == 1, explain(wrong)
    assert "wrong password for user 'admin'" in wrong.stderr and where in wrong.stderr
    assert "n0t-it" not in wrong.stdout + wrong.stderr

    anonymous = job_for(f"rqlite://{where}").run("migrate")
    assert anonymous.returncode == 1 and "wants a user and password" in anonymous.stderr

    right = job_for(f"rqlite://admin:adm1n-pw@{where}").run("migrate")
    assert right.returncode == 0, explain(right)

    first, last = backlog_range(3)
    written = write_backlog(redis_client, first, last)
    reader = job_for(f"rqlite://reader:read-pw@{where}").run()
    assert reader.returncode == 1, explain(reader)
    assert "user 'reader' lacks the 'execute' permission" in reader.stderr, explain(reader)
    assert "read-pw" not in reader.stdout + reader.stderr
    assert row_count(node) == 0
    assert +Counter(tally_redis(redis_client)) == +written  # kept (as claims) for the next run

    admin = job_for(f"rqlite://admin:adm1n-pw@{where}").run()
    assert admin.returncode == 0, explain(admin)
    assert_exact(redis_client, node, written)


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        (pytest.fail if IN_CI else pytest.skip)("openssl is not installed")
    assert path is not None
    return path


def make_ca(openssl: str, directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def make_server_cert(openssl: str, directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = directory / "node.key", directory / "node.csr", directory / "node.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    subprocess.run(
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_end_to_end(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    openssl = _openssl()
    ca = make_ca(openssl, tmp_path / "pki", "rotate-stats-test-ca")
    other_ca = make_ca(openssl, tmp_path / "other", "some-other-ca")
    cert = make_server_cert(openssl, tmp_path / "pki", ca)
    cluster = make_cluster(size=1, cert=cert)
    node = cluster.nodes[0]
    url = f"rqlites://{node.host}:{node.port}"

    verified = job_for(url, ROTATE_STATS_RQLITE_CA_FILE=str(ca[1]))
    assert verified.run("migrate").returncode == 0
    first, last = backlog_range(5)
    written = write_backlog(redis_client, first, last)
    result = verified.run()
    assert result.returncode == 0, explain(result)
    assert_exact(redis_client, node, written)

    wrong = job_for(url, ROTATE_STATS_RQLITE_CA_FILE=str(other_ca[1])).run("status")
    assert wrong.returncode == 1, explain(wrong)
    assert "TLS certificate verification failed" in wrong.stderr, explain(wrong)
    assert f"{node.host}:{node.port}" in wrong.stderr

    system_trust = job_for(url).run("status")  # the test CA is in no system bundle
    assert system_trust.returncode == 1 and "certificate verification failed" in system_trust.stderr

    insecure = job_for(url, ROTATE_STATS_RQLITE_INSECURE="1").run("status")
    assert insecure.returncode == 0, explain(insecure)

    plain = job_for(f"rqlite://{node.host}:{node.port}").run("status")
    assert plain.returncode == 1, explain(plain)  # http:// to an https node: named, no wait


def test_date_range_is_iso(make_cluster: Callable[..., RqlitedCluster]) -> None:
    """The helpers above agree with the job's date names (guards the tally's keys)."""
    first, last = backlog_range(2)
    assert parse_iso(iso(first)) == first and last == first + 1
    assert make_cluster is not None


def test_hosts_of_two_different_clusters_are_refused(
    make_cluster: Callable[..., RqlitedCluster],
    job_for: Callable[..., Job],
    redis_client: redis.Redis,
) -> None:
    """Issue 8 (suspected): rows and ledger must not be split between clusters."""
    one, other = make_cluster(size=1), make_cluster(size=1)
    a, b = one.nodes[0], other.nodes[0]
    job = job_for(f"rqlite://{a.host}:{a.port},{b.host}:{b.port}")
    for args in (("migrate",), ()):
        result = job.run(*args)
        assert result.returncode == 1, explain(result)
        assert "different clusters" in result.stderr and f"{b.host}:{b.port}" in result.stderr
    assert row_count(a) == 0 and row_count(b) == 0
    assert a.query(f"SELECT name FROM sqlite_master WHERE name = '{family.TABLE}'") == []
