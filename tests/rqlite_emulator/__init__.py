"""An rqlite HTTP API emulator for tests, backed by SQLite (stdlib + ctypes only).

Two ways to run a node:

- ``start_emulator(datadir, ...)`` serves in this process on a daemon thread and returns an
  ``EmulatorHandle`` with fault injection (``faults``);
- ``spawn_emulator_process(datadir, ...)`` runs the ``rqlited`` executable next to this file
  (rqlited's command line, usable as pyrqlite's ``RQLITED_PATH``) and waits for ``/readyz``.

What is emulated, how its fidelity is measured against a real rqlited v8.43.4
(``tests/emulator/test_fidelity.py``) and what it deliberately does not model:
``docs/EMULATOR.md``. Details per layer: ``server`` (endpoints), ``store`` (SQL
semantics), ``cluster`` (followers) and ``faults``. The behaviour is pinned to
``/work/shared/reference/rqlite-http-api.md`` and, where versions differ, to v8.43.4 by
``tests/emulator/``.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .faults import Faults
from .server import EmulatorConfig, EmulatorServer, RecordedRequest
from .store import Store

RQLITED_PATH = str(Path(__file__).with_name("rqlited"))

__all__ = [
    "RQLITED_PATH",
    "EmulatorHandle",
    "EmulatorProcess",
    "RecordedRequest",
    "start_emulator",
    "spawn_emulator_process",
]


class EmulatorHandle:
    """An in-process node. Stop it with ``stop()`` (or use it as a context manager)."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._thread: threading.Thread | None = server.start()

    @property
    def url(self) -> str:
        """``http://host:port`` of the HTTP API."""
        return self._server.url

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def store(self) -> Store:
        """Direct access to the node's database layer (bypasses HTTP, auth and faults)."""
        return self._server.store

    @property
    def faults(self) -> Faults:
        return self._server.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a copy)."""
        return self._server.recorded()

    def set_leader(self, present: bool) -> None:
        """``False``: the node knows no leader (500 ``leader address: leader not found``, as
        rqlite v8.43.4 answers); see ``faults``."""
        self._server.faults.set_leader(present)

    def drop_responses(self, count: int = 1) -> None:
        """Apply the next ``count`` writes but close the connection instead of answering."""
        self._server.faults.drop_responses(count)

    def fail_requests(
        self, count: int = 1, *, status: int | None = 503, message: str = "leader not found"
    ) -> None:
        """Fail the next ``count`` database requests before applying them; see ``faults``."""
        self._server.faults.fail_requests(count, status=status, message=message)

    def reset_faults(self) -> None:
        self._server.faults.reset()

    def stop(self) -> None:
        """Stop serving and close open connections and the database. Idempotent."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    datadir: str | os.PathLike[str] | None,
    *,
    auth_file: str | os.PathLike[str] | None = None,
    join: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> EmulatorHandle:
    """Start a node in this process; ``port=0`` picks a free port. ``join``: leader's URL.

    ``datadir=None`` keeps the database in memory.
    """
    config = EmulatorConfig(
        datadir=None if datadir is None else os.fspath(datadir),
        host=host,
        port=port,
        auth_file=None if auth_file is None else os.fspath(auth_file),
        join=join,
    )
    return EmulatorHandle(EmulatorServer(config))


class EmulatorProcess:
    """A node running as a subprocess of the ``rqlited`` executable."""

    def __init__(self, proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    if host == "127.0.0.1":
        from tests.helpers import free_port  # per-xdist-worker port ranges

        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _readyz(host: str, port: int) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def spawn_emulator_process(
    datadir: str | os.PathLike[str],
    *,
    auth_file: str | os.PathLike[str] | None = None,
    join: str | None = None,
    host: str = "127.0.0.1",
    python: str = sys.executable,
    ready_timeout: float = 10.0,
) -> EmulatorProcess:
    """Run ``rqlited`` on a free port and wait until ``/readyz`` answers 200.

    Output goes to ``<datadir>.log``. Raises RuntimeError (with the log) if the process
    exits or is not ready within ``ready_timeout`` seconds. With ``auth_file``, a 401 from
    ``/readyz`` also counts as up.
    """
    datadir = os.fspath(datadir)
    port = _free_port(host)
    argv = [python, RQLITED_PATH, "-http-addr", f"{host}:{port}"]
    argv += ["-raft-addr", f"{host}:{_free_port(host)}"]
    if auth_file is not None:
        argv += ["-auth", os.fspath(auth_file)]
    if join is not None:
        argv += ["-join", join]
    argv.append(datadir)
    log = Path(datadir.rstrip(os.sep) + ".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    handle = EmulatorProcess(proc, host, port, log)
    deadline = time.monotonic() + ready_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"rqlited emulator exited with {proc.returncode}: {log.read_text(errors='replace')}"
            )
        if _readyz(host, port) in (200, 401):  # 401: up, but "ready" needs credentials
            return handle
        if time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError(
                f"rqlited emulator not ready after {ready_timeout}s on {host}:{port}: "
                f"{log.read_text(errors='replace')}"
            )
        time.sleep(0.05)
