"""Leader/follower behaviour (reference §7): forwarding and redirects.

A node started with ``-join <leader HTTP address>`` is a follower. It keeps no replica:
every database request (including ``level=none`` reads, which rqlite would serve from its
local replica) is forwarded over HTTP to the leader, with the same method, path, query
string, body, ``Content-Type`` and ``Authorization``, and the leader's answer is returned
as the follower's own. That behaves like a perfectly up-to-date replica.

Errors, as rqlite v8.43.4 reports them (measured by ``tests/emulator/test_fidelity.py``):
- leader unknown (the ``no leader`` fault, ``faults.set_leader(False)``) → 500
  ``leader address: leader not found`` (v8 never takes its 503 branch; see
  ``handler._no_leader``);
- leader refuses the connection, or the transport fails after the request was sent (e.g.
  the leader dropped the response) → 200 ``{"results": [], "error": "node failed to process
  Execute on remote node at <leader>: ..."}`` (§6), what rqlite answers from the moment the
  leader dies until Raft notices (about 2 s; the emulator never notices by itself: a test
  calls ``set_leader(False)`` to model that);
- leader answers 401 → 401 ``remote Execute not authorized`` (``query``/``Request``).
A forwarded answer carries ``X-Rqlite-Served-By: <leader Raft address>``. Whatever
address a follower joined through (v6 joins through the leader's HTTP API, v7+ through its
Raft address), it names its leader in ``/status``, ``/nodes`` and that header as the leader
names itself: the emulated follower asks the leader's ``/status`` (``server.leader_identity``;
an emulated node's Raft address is its HTTP host:port unless ``-raft-addr`` sets one).
With ``redirect`` the follower answers 301 to ``<leader URL><path>?<raw query>`` instead,
or 500 ``leader not found`` when the leader is unknown or does not accept a connection.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LeaderAddress:
    """The leader's HTTP API address."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, join: str) -> LeaderAddress:
        """``host:port`` or ``http://host:port``; the first of a comma-separated list."""
        first = join.split(",")[0].strip()
        if "://" not in first:
            first = "http://" + first
        parts = urlsplit(first)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"invalid join address {join!r}: expected host:port")
        return cls(parts.hostname, parts.port)


class LeaderUnreachable(Exception):
    """The leader refused the connection or could not be resolved."""


class ForwardError(Exception):
    """The forwarded request failed after it was sent."""


@dataclass(frozen=True)
class Forwarded:
    """The leader's answer."""

    status: int
    headers: dict[str, str]
    body: bytes


_PASS_REQUEST_HEADERS = ("Authorization", "Content-Type")
_PASS_RESPONSE_HEADERS = ("Content-Type", "X-Rqlite-Served-By", "Location")


def forward(
    leader: LeaderAddress,
    method: str,
    target: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = 30.0,
) -> Forwarded:
    """Send one request to the leader; ``target`` is path plus ``?query``."""
    conn = http.client.HTTPConnection(leader.host, leader.port, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise LeaderUnreachable(str(exc)) from exc
        sent = {k: v for k, v in headers.items() if k in _PASS_REQUEST_HEADERS}
        try:
            conn.request(
                method, target, body=body if body or method == "POST" else None, headers=sent
            )
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
            raise ForwardError(str(exc) or type(exc).__name__) from exc
        kept = {k: v for k in _PASS_RESPONSE_HEADERS if (v := resp.getheader(k)) is not None}
        return Forwarded(resp.status, kept, data)
    finally:
        conn.close()


def probe(leader: LeaderAddress, authorization: str | None, *, timeout: float = 5.0) -> str:
    """``/readyz`` on a follower: "" when the leader answers, else the error text."""
    headers = {"Authorization": authorization} if authorization else {}
    try:
        result = forward(leader, "GET", "/readyz?noleader", b"", headers, timeout=timeout)
    except (LeaderUnreachable, ForwardError) as exc:
        return str(exc)
    return "" if result.status == 200 else f"status {result.status}"


def reachable(leader: LeaderAddress, *, timeout: float = 2.0) -> bool:
    """Does the leader accept a connection (v8's ``FormRedirect`` asks it for its address)?"""
    try:
        with socket.create_connection((leader.host, leader.port), timeout=timeout):
            return True
    except OSError:
        return False
