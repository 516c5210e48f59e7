"""Fixtures: a real redis-server per session, fresh stores per test."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats.database import SqliteStore, Store, migrate
from rotate_stats.rqlite_store import RqliteStore
from tests.helpers import free_port
from tests.real_rqlite import NO_RQLITED_PREFIX, Missing, RqlitedNode, find_binary
from tests.rqlite_emulator import EmulatorHandle, start_emulator

IN_CI = os.environ.get("CI") == "true"


def require_binary(name: str) -> str:
    """Path of a server binary; a missing one skips locally but fails under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test installs it)"
        (pytest.fail if IN_CI else pytest.skip)(message)  # CI=true: missing server fails
    assert path is not None
    return path


class RedisServer:
    """A redis-server started for the test session on a free loopback port."""

    def __init__(self, binary: str, directory: Path, *extra: str) -> None:
        self.extra = list(extra)
        self.password = (
            extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None
        )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        args += ["--logfile", str(self.directory / "redis.log"), *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def redis_binary() -> str:
    """The Redis-protocol server the tests run against: ``ROTATE_STATS_TEST_REDIS_SERVER``
    (``scripts/test`` runs the Redis-facing tests once more with ``valkey-server``),
    else Debian's ``redis-server``."""
    return require_binary(os.environ.get("ROTATE_STATS_TEST_REDIS_SERVER") or "redis-server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the private test server, flushed before and after the test."""
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "stats.sqlite3")


@pytest.fixture
def sqlite(sqlite_path: str) -> Iterator[SqliteStore]:
    """A migrated SQLite store, for tests about Redis where the database is a bystander."""
    store = SqliteStore(sqlite_path)
    migrate(store)
    yield store
    store.close()


@pytest.fixture(scope="session")
def rqlite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """One rqlite emulator node for the session; tests get a fresh database from ``reset``."""
    node = start_emulator(tmp_path_factory.mktemp("rqlite"))
    yield node
    node.stop()


def _reset_rqlite(node: EmulatorHandle) -> None:
    """Drop every table (the emulator's database outlives a test)."""
    conn = http.client.HTTPConnection(node.host, node.port, timeout=10)
    conn.request(
        "GET",
        "/db/query?q=" + urllib.parse.quote("SELECT name FROM sqlite_master WHERE type = 'table'"),
    )
    tables = json.loads(conn.getresponse().read())["results"][0].get("values", [])
    body = json.dumps([f'DROP TABLE IF EXISTS "{name}"' for (name,) in tables])
    conn.request("POST", "/db/execute", body=body, headers={"Content-Type": "application/json"})
    conn.getresponse().read()
    conn.close()


def require_rqlited() -> str:
    """Path of a real rqlited (``tests.real_rqlite``); skips without one.

    Under ``CI=true`` a missing binary fails only when ``ROTATE_STATS_TEST_RQLITED``
    names a file that is not there: a user's fresh clone has no binary at all.
    """
    try:
        return find_binary()
    except Missing as exc:
        (pytest.fail if exc.fatal else pytest.skip)(str(exc))
        raise AssertionError("unreachable") from None


NO_RQLITED_LOCATION = "tests/real_rqlite.py"
"""Where every skip for a missing rqlited binary is reported: one line for all of them."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Without an rqlited binary, the real-rqlite tests (~160) skipped one ``SKIPPED``
    line per test location (issue 17, item 5(f)). Their skips now share one location,
    so ``-ra``/``-rs`` folds them into one summary line (``SKIPPED [160]
    tests/real_rqlite.py: no rqlited: ...``); every other skip is reported as before.
    Only skips: under ``CI=true`` a binary that must be there fails, as before."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        reason = str(report.longrepr[2])
        if reason.removeprefix("Skipped: ").startswith(NO_RQLITED_PREFIX):
            report.longrepr = (NO_RQLITED_LOCATION, None, reason)


@pytest.fixture(scope="session")
def rqlited_binary() -> str:
    return require_rqlited()


@pytest.fixture(scope="session")
def rqlited_node(
    rqlited_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RqlitedNode]:
    """One real single-node rqlited for the session; ``store_factory`` empties it per test."""
    node = RqlitedNode(rqlited_binary, tmp_path_factory.mktemp("rqlited"), "single").start()
    node.wait_ready()
    yield node
    node.kill()


def open_backend(
    backend: str, sqlite_path: str, node: EmulatorHandle | RqlitedNode | None
) -> Store:
    """A new connection to the test's store of that backend."""
    if backend == "sqlite":
        return SqliteStore(sqlite_path)
    assert node is not None
    return RqliteStore([(node.host, node.port)])


BACKENDS = ["sqlite", "rqlite", "rqlite-real"]
"""SQLite, the rqlite emulator, and a real single-node rqlited (skipped without a binary)."""


def backend_marks(backend: str) -> list[pytest.MarkDecorator]:
    """Marks of tests on that backend (``-m rqlited`` selects the real-server ones)."""
    return [pytest.mark.rqlited] if backend == "rqlite-real" else []


@pytest.fixture(params=[pytest.param(b, marks=backend_marks(b)) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_node(
    backend: str, request: pytest.FixtureRequest
) -> EmulatorHandle | RqlitedNode | None:
    """The server behind an rqlite backend, emptied (no tables) for this test."""
    if backend == "rqlite":
        node: EmulatorHandle = request.getfixturevalue("rqlite_node")
        _reset_rqlite(node)
        return node
    if backend == "rqlite-real":
        real: RqlitedNode = request.getfixturevalue("rqlited_node")
        real.drop_all_tables()
        return real
    return None


@pytest.fixture
def store_factory(
    backend: str, sqlite_path: str, backend_node: EmulatorHandle | RqlitedNode | None
) -> Iterator[Callable[[], Store]]:
    """Opens connections to this test's (initially empty) store; all closed at teardown."""
    opened: list[Store] = []

    def factory() -> Store:
        opened.append(open_backend(backend, sqlite_path, backend_node))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def bare_store(store_factory: Callable[[], Store]) -> Store:
    """An unmigrated, empty store, once per backend."""
    return store_factory()


@pytest.fixture
def store(bare_store: Store) -> Store:
    """A migrated store, once per backend."""
    migrate(bare_store)
    return bare_store
