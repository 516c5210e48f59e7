"""Real ``rqlited`` nodes and clusters for tests, on loopback free ports.

The binary comes from ``ROTATE_STATS_TEST_RQLITED`` (``scripts/test`` sets it to
``../shared/rqlite/v8.43.4/rqlited`` when that file exists), else ``rqlited`` on
``PATH``. Without one the real-server tests skip; under ``CI=true`` they fail
only when the variable names a file that is not there (a user's clone has no
``../shared``, so no binary is not an error there).

Each node has its own data directory and log file (``rqlited.log`` in it) and is
stopped by PID. Joining differs by version: v7+ ``-join`` takes the leader's Raft
address, v6 its HTTP URL; ``RqlitedNode`` hides that.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.helpers import free_port

BINARY_VARIABLE = "ROTATE_STATS_TEST_RQLITED"
NO_RQLITED_PREFIX = "no rqlited:"
"""How the skip message of a missing binary starts (``tests/conftest.py`` folds them)."""


class Missing(Exception):
    """No usable rqlited: ``fatal`` when a test under CI=true must fail instead of skip."""

    def __init__(self, message: str, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


def find_binary() -> str:
    """The rqlited binary to test against, or raise Missing."""
    named = os.environ.get(BINARY_VARIABLE, "").strip()
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            message = f"{BINARY_VARIABLE}={named!r} is not an executable file"
            raise Missing(message, fatal=os.environ.get("CI") == "true")
        return os.path.abspath(named)
    found = shutil.which("rqlited")
    if found is None:
        raise Missing(
            f"{NO_RQLITED_PREFIX} set {BINARY_VARIABLE} or put rqlited on PATH", fatal=False
        )
    return found


def binary_version(binary: str) -> tuple[int, int, int]:
    """``(8, 43, 4)`` from ``rqlited -version``."""
    out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if match is None:
        raise RuntimeError(f"cannot read the version of {binary}: {out.stdout!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


class RqlitedNode:
    """One rqlited process. ``start()`` waits until it serves (``/readyz`` or ``/status``)."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        node_id: str,
        *,
        join: RqlitedNode | None = None,
        auth_file: Path | None = None,
        cert: tuple[Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.version = binary_version(binary)
        self.directory = directory
        self.node_id = node_id
        self.join = join
        self.auth_file = auth_file
        self.cert = cert
        self.credentials = credentials
        self.extra = list(extra)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.raft_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def raft_addr(self) -> str:
        return f"{self.host}:{self.raft_port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def command(self) -> list[str]:
        args = [self.binary, "-node-id", self.node_id]
        args += ["-http-addr", f"{self.host}:{self.port}", "-raft-addr", self.raft_addr]
        if self.auth_file is not None:
            args += ["-auth", str(self.auth_file)]
        if self.cert is not None:
            args += ["-http-cert", str(self.cert[0]), "-http-key", str(self.cert[1])]
        if self.join is not None:
            target = self.join.raft_addr if self.version[0] >= 7 else self.join.http_url
            args += ["-join", target]
            if self.credentials is not None:  # with -auth, joining needs the "join" perm
                args += ["-join-as", self.credentials[0]]
        return [*args, *self.extra, str(self.directory / "data")]

    def start(self, wait: bool = True, timeout: float = 30) -> RqlitedNode:
        log = open(self.directory / "rqlited.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        if wait:
            self.wait_serving(timeout)
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` by PID and reap the process (SIGKILL: no goodbye to the cluster)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(15)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self, wait: bool = True) -> RqlitedNode:
        self.kill()
        return self.start(wait=wait)

    def _client(self, timeout: float) -> http.client.HTTPConnection:
        if self.cert is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)

    def http(
        self, method: str, path: str, body: Any = None, timeout: float = 10
    ) -> tuple[int, str]:
        """One raw request with the node's admin credentials, if any: (status, text)."""
        headers = {"Content-Type": "application/json"}
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        conn = self._client(timeout)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def raft_state(self) -> str | None:
        """``Leader``, ``Follower``, ``Candidate``... or None when it does not answer."""
        try:
            status, text = self.http("GET", "/status", timeout=2)
        except OSError:
            return None
        if status != 200:
            return None
        raft = json.loads(text).get("store", {}).get("raft", {})
        state = raft.get("state")
        return str(state) if state is not None else None

    def knows_leader(self) -> bool:
        try:
            status, _ = self.http("GET", "/readyz", timeout=2)
        except OSError:
            return False
        return status == 200

    def wait_serving(self, timeout: float) -> None:
        """Until the HTTP API answers (a joining node may not know a leader yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"rqlited {self.node_id} exited: see {self.directory}")
            if self.raft_state() is not None:
                return
            time.sleep(0.05)
        raise RuntimeError(f"rqlited {self.node_id} did not start within {timeout}s")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.knows_leader():
            if time.monotonic() > deadline:
                raise RuntimeError(f"rqlited {self.node_id} knows no leader after {timeout}s")
            time.sleep(0.05)

    def execute(self, *statements: Any) -> dict[str, Any]:
        """Admin write (test set-up); raises on any error."""
        status, text = self.http("POST", "/db/execute?transaction", list(statements))
        data: dict[str, Any] = json.loads(text)
        if status != 200 or data.get("error") or any("error" in r for r in data["results"]):
            raise RuntimeError(f"rqlited {self.node_id}: {status} {text}")
        return data

    def query(self, sql: str, level: str = "strong") -> list[list[Any]]:
        status, text = self.http("POST", f"/db/query?level={level}", [sql])
        data = json.loads(text)
        if status != 200 or data.get("error") or "error" in data["results"][0]:
            raise RuntimeError(f"rqlited {self.node_id}: {status} {text}")
        return list(data["results"][0].get("values", []))

    def drop_all_tables(self) -> None:
        tables = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        if tables:
            self.execute(*(f'DROP TABLE IF EXISTS "{name}"' for (name,) in tables))


class RqlitedCluster:
    """``size`` nodes; the first bootstraps, the others join it."""

    def __init__(self, binary: str, directory: Path, size: int = 3, **node_options: Any) -> None:
        self.nodes: list[RqlitedNode] = []
        first = RqlitedNode(binary, directory / "n1", "n1", **node_options)
        self.nodes.append(first)
        for i in range(2, size + 1):
            node = RqlitedNode(binary, directory / f"n{i}", f"n{i}", join=first, **node_options)
            self.nodes.append(node)

    def start(self, wait: bool = True, timeout: float = 60) -> RqlitedCluster:
        self.nodes[0].start()
        if wait:
            self.nodes[0].wait_ready(timeout)
        for node in self.nodes[1:]:
            node.start()
        if wait:
            self.wait_stable(timeout)
        return self

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    def url(self, scheme: str = "rqlite", userinfo: str = "") -> str:
        listed = ",".join(f"{h}:{p}" for h, p in self.hosts)
        return f"{scheme}://{userinfo}{listed}"

    def leader(self) -> RqlitedNode | None:
        for node in self.nodes:
            if node.alive() and node.raft_state() == "Leader":
                return node
        return None

    def wait_leader(self, timeout: float = 60) -> RqlitedNode:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.1)
        raise RuntimeError(f"no rqlite leader within {timeout}s")

    def wait_stable(self, timeout: float = 60) -> RqlitedNode:
        """A leader, and every live node knowing it."""
        deadline = time.monotonic() + timeout
        leader = self.wait_leader(timeout)
        for node in self.nodes:
            if node.alive():
                node.wait_ready(max(1.0, deadline - time.monotonic()))
        return leader

    def followers(self) -> list[RqlitedNode]:
        leader = self.leader()
        return [node for node in self.nodes if node is not leader and node.alive()]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
