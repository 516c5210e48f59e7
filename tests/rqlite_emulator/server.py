"""The emulated rqlited node: an HTTP server speaking rqlite's HTTP API over ``Store``.

Follows ``/work/shared/reference/rqlite-http-api.md`` (written for rqlite v10.2.7; pyrqlite
2.2.3), except where rqlite v8.43.4 answers differently: then it follows v8.43.4, as
measured by ``tests/emulator/test_fidelity.py`` (``docs/EMULATOR.md`` lists those points).
Routing by path prefix, 404/405/401 with empty bodies, plain-text 400s (§1, §8);
``/db/execute`` with ``transaction``/``timings``/``queue``/``wait``/``raft_index`` (§3);
``/db/query`` GET and POST with ``level``, ``associative``, ``blob_array``, ``pretty`` (§4);
``/db/request`` (§5); top-level errors with status 200 (§6); forwarding, ``redirect`` and
the leaderless answers (§7, see ``cluster``); Basic auth (§8); ``/readyz``, ``/status``
and ``/nodes`` (§9). Faults for tests are described in ``faults``.

Not emulated: Raft (a follower keeps no replica and forwards everything, see ``cluster``),
``/db/backup``, ``/db/load``, ``/db/sql``, ``/boot``, the console UI, TLS, SQL rewriting of
``random()``/``now`` (§10, invisible on one node), ``db_timeout``; the full list with the
reasons is in ``docs/EMULATOR.md``.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from .cluster import ForwardError, LeaderAddress, LeaderUnreachable, forward
from .encoding import Statement
from .faults import Faults
from .handler import VERSION, Handler, RecordedRequest
from .native import SQLITE_VERSION
from .protocol import Credentials
from .store import Store, check_pragmas
from .writequeue import WriteQueue


@dataclass
class EmulatorConfig:
    """What rqlited's command line sets (``-http-addr``, ``-join``, ``-auth``, ...)."""

    datadir: str | None
    host: str = "127.0.0.1"
    port: int = 0
    auth_file: str | None = None
    join: str | None = None
    node_id: str | None = None
    raft_addr: str | None = None
    write_queue_batch_size: int = 128
    write_queue_timeout: float = 0.05
    write_queue_tx: bool = False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets bursts of connections on a loaded
    # machine; Go's listener (rqlited) uses the kernel's somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # As Go's net/http does for rqlited: without it, the handler's separate writes of
        # headers and body meet the client's delayed ACK, 40 ms per request.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (killed, timed out) is routine, as for rqlited."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Close kept-alive connections so clients see the node go away."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class EmulatorServer:
    """One node: store, write queue, faults and HTTP listener."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.credentials = Credentials.from_file(config.auth_file) if config.auth_file else None
        self.leader = LeaderAddress.parse(config.join) if config.join else None
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self.store = Store(config.datadir)
        self.queue = WriteQueue(
            self._apply_queued,
            batch_size=config.write_queue_batch_size,
            timeout=config.write_queue_timeout,
        )
        bind_host = "127.0.0.1" if config.host == "localhost" else config.host
        self.httpd = _HTTPServer((bind_host, config.port), self)
        self.host, self.port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        self.raft_addr = config.raft_addr or f"{config.host}:{self.port}"
        self.node_id = config.node_id or self.raft_addr
        self._serving = threading.Event()
        self._stopped = False
        self._leader_identity: tuple[str, str] | None = None  # learnt from the leader
        self._identity_lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def is_follower(self) -> bool:
        return self.leader is not None

    def leader_url(self) -> str | None:
        """The leader's API URL as this node knows it; None when there is no leader."""
        if not self.faults.has_leader:
            return None
        return self.leader.url if self.leader else self.url

    def leader_identity(self, authorization: str | None = None) -> tuple[str, str]:
        """``(node_id, Raft address)`` of this follower's leader, as the leader reports them.

        A real follower learns them through Raft, whatever address it joined through (v6
        joins through the leader's HTTP API, v7+ through its Raft address): every node of
        a cluster names the same leader in ``/status``. The emulated follower asks its
        leader's ``/status`` once (with the request's ``Authorization``, if any) and keeps
        the answer; until it has one, it falls back to the address it joined through.
        """
        assert self.leader is not None
        with self._identity_lock:
            if self._leader_identity is not None:
                return self._leader_identity
        headers = {"Authorization": authorization} if authorization else {}
        try:
            answer = forward(self.leader, "GET", "/status", b"", headers, timeout=2.0)
            store = json.loads(answer.body).get("store", {}) if answer.status == 200 else {}
        except (LeaderUnreachable, ForwardError, ValueError):
            store = {}
        node_id, addr = store.get("node_id"), store.get("addr")
        if not (isinstance(node_id, str) and isinstance(addr, str) and addr):
            return self.leader.hostport, self.leader.hostport
        with self._identity_lock:
            self._leader_identity = (node_id, addr)
        return node_id, addr

    def record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def recorded(self) -> list[RecordedRequest]:
        """A copy of the requests received so far."""
        with self._requests_lock:
            return list(self.requests)

    def _apply_queued(self, stmts: list[Statement]) -> None:
        if check_pragmas(stmts) is None:  # the whole batch is refused, silently
            self.store.execute(stmts, transaction=self.config.write_queue_tx, timings=False)

    def serve_forever(self) -> None:
        self._serving.set()
        self.httpd.serve_forever(poll_interval=0.02)

    def start(self) -> threading.Thread:
        """Serve on a daemon thread."""
        thread = threading.Thread(target=self.serve_forever, name="rqlite-emulator", daemon=True)
        thread.start()
        self._serving.wait(5)
        return thread

    def shutdown(self) -> None:
        """Stop serving, drop open connections and close the database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving.is_set():
            self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        self.queue.close()
        self.store.close()

    def status(self, authorization: str | None = None) -> dict[str, Any]:
        """``/status`` (§9), reduced to the useful fields. A follower names its leader as
        the leader names itself (``leader_identity``)."""
        if self.leader is not None:
            node_id, addr = self.leader_identity(authorization)
            leader = {"node_id": node_id, "addr": addr}
        else:
            leader = {"node_id": self.node_id, "addr": self.raft_addr}
        if not self.faults.has_leader:
            leader = {"node_id": "", "addr": ""}
        state = "Follower" if self.is_follower or not self.faults.has_leader else "Leader"
        return {
            "build": {"version": VERSION, "emulator": True},
            "store": {
                "ready": True,
                "node_id": self.node_id,
                "addr": self.raft_addr,
                "leader": leader,
                "raft": {"state": state, "applied_index": self.store.raft_index},
                "sqlite3": {"version": SQLITE_VERSION},
            },
            "http": {
                "bind_addr": self.hostport,
                "auth": "enabled" if self.credentials else "disabled",
            },
            "node": {"start_time": 0},
        }

    def nodes(self, authorization: str | None = None) -> list[dict[str, Any]]:
        """``/nodes`` entries (§9): this node, plus the leader on a follower."""
        me_leader = not self.is_follower and self.faults.has_leader
        out = [
            {
                "id": self.node_id,
                "api_addr": self.url,
                "addr": self.raft_addr,
                "version": VERSION,
                "voter": True,
                "reachable": True,
                "leader": me_leader,
                "time": 0.0001,
            }
        ]
        if self.leader is not None:
            node_id, addr = self.leader_identity(authorization)
            out.append(
                {
                    "id": node_id,
                    "api_addr": self.leader.url,
                    "addr": addr,
                    "version": VERSION,
                    "voter": True,
                    "reachable": True,
                    "leader": self.faults.has_leader,
                    "time": 0.0001,
                }
            )
        return out


__all__ = ["VERSION", "EmulatorConfig", "EmulatorServer", "RecordedRequest"]
