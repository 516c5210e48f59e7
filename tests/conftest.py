"""Fixtures: a real redis-server per session, fresh stores per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats.database import SqliteStore, Store, migrate
from tests.helpers import free_port

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

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        args += ["--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(require_binary("redis-server"), tmp_path_factory.mktemp("redis"))
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


@pytest.fixture(params=["sqlite"])
def bare_store(request: pytest.FixtureRequest, sqlite_path: str) -> Iterator[Store]:
    """An unmigrated store, once per backend."""
    store = SqliteStore(sqlite_path)
    yield store
    store.close()


@pytest.fixture
def store(bare_store: Store) -> Store:
    """A migrated store, once per backend."""
    migrate(bare_store)
    return bare_store
