"""Servers the benchmark starts: redis-server and rqlite nodes (emulator or real).

Every server runs in a session of its own (Ctrl-C reaches only the benchmark,
which then stops them in order) and is stopped by its PID.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
EMULATOR = REPO / "tests" / "rqlite_emulator" / "rqlited"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisServer:
    """A fresh ``redis-server`` on a free loopback port: no RDB, no AOF."""

    def __init__(self, directory: Path, binary: str = "redis-server") -> None:
        found = shutil.which(binary)
        if found is None:
            raise SystemExit(f"{binary} is not installed")
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        argv = [found, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(directory)]
        with open(directory / "redis.log", "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.client = redis.Redis(port=self.port, socket_timeout=600)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start; see {directory}") from None
                time.sleep(0.02)
        self.version = str(self.client.info("server")["redis_version"])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.client.close()
        _stop(self.proc)


class RqliteNode:
    """A single rqlite node: the emulator (``kind="emulator"``) or a real rqlited binary.

    Both take rqlited's command line; a fresh data directory each.
    """

    def __init__(self, kind: str, directory: Path, binary: str | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        if kind == "emulator":
            argv = [sys.executable, str(EMULATOR)]
        elif binary is not None:
            argv = [binary]
        else:
            raise ValueError("a real rqlited needs its binary")
        argv += ["-node-id", "n1", "-http-addr", f"127.0.0.1:{self.port}"]
        argv += ["-raft-addr", f"127.0.0.1:{free_port()}", str(directory / "data")]
        with open(directory / "rqlited.log", "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while _readyz(self.port) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rqlite {kind} did not become ready; see {directory}")
            time.sleep(0.05)

    def url(self, port: int | None = None) -> str:
        return f"rqlite://127.0.0.1:{port or self.port}"

    def stop(self) -> None:
        _stop(self.proc)


def _readyz(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()
