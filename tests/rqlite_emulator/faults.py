"""Fault injection for tests (not an rqlite feature); driven through ``EmulatorHandle``.

- ``set_leader(False)``: the node knows no leader, as a real v8.43.4 node does once Raft
  has noticed the leader is gone. Leader-requiring requests and ``/readyz`` get 500
  ``leader address: leader not found`` (500 ``leader not found`` with ``redirect``);
  ``level=none`` reads still work. (rqlite after v10.2.7 answers 503 ``leader not found``
  here; ``fail_requests()`` models that.)
- ``drop_responses(n)``: the next ``n`` write requests (``/db/execute`` without ``queue``,
  and ``/db/request``) are applied, then the connection is closed without an answer:
  a commit whose response is lost.
- ``fail_requests(n, status=..., message=...)``: the next ``n`` database requests
  (``/db/execute``, ``/db/query``, ``/db/request``) fail before anything is applied:
  ``status=None`` closes the connection without an answer, ``status=200`` answers with the
  top-level error ``{"results": [], "error": message}``, any other status answers with
  ``message`` as a plain-text body.
Counters are consumed after authentication and method checks pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """How one request fails."""

    status: int | None
    message: str


class Faults:
    """Thread-safe fault switches and counters of one node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leader = True
        self._drops = 0
        self._failures: list[Failure] = []

    @property
    def has_leader(self) -> bool:
        with self._lock:
            return self._leader

    def set_leader(self, present: bool) -> None:
        with self._lock:
            self._leader = present

    def drop_responses(self, count: int = 1) -> None:
        with self._lock:
            self._drops += count

    def fail_requests(
        self, count: int = 1, *, status: int | None = 503, message: str = "leader not found"
    ) -> None:
        with self._lock:
            self._failures.extend([Failure(status, message)] * count)

    def reset(self) -> None:
        """Back to a healthy node with no pending faults."""
        with self._lock:
            self._leader = True
            self._drops = 0
            self._failures.clear()

    def take_drop(self) -> bool:
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                return True
            return False

    def take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None
