"""Queued writes (reference §3 ``queue``/``wait``; ``svc`` ``queuedExecute``/``runQueue``).

A request is answered at once with a sequence number; a background thread later applies
batches of up to ``batch_size`` statements, or whatever arrived within ``timeout`` seconds,
as one execute (``-write-queue-batch-size``, ``-write-queue-timeout``). Statement errors are
never reported. ``wait`` callers block on the ``threading.Event`` of their request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .encoding import Statement


class WriteQueue:
    """Batches queued statements and applies them on a daemon thread."""

    def __init__(
        self,
        apply: Callable[[list[Statement]], None],
        *,
        batch_size: int = 128,
        timeout: float = 0.05,
    ) -> None:
        self._apply = apply
        self._batch_size = batch_size
        self._timeout = timeout
        self._cond = threading.Condition()
        self._pending: list[tuple[list[Statement], threading.Event]] = []
        self._first_at = 0.0
        self._seq = time.time_ns()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rqlite-emulator-queue", daemon=True)
        self._thread.start()

    def write(self, stmts: list[Statement]) -> tuple[int, threading.Event]:
        """Queue statements (possibly none: a pure flush); returns (sequence number, done)."""
        done = threading.Event()
        with self._cond:
            self._seq += 1
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append((stmts, done))
            self._cond.notify_all()
            return self._seq, done

    def close(self) -> None:
        """Stop the thread after applying what is pending."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _size(self) -> int:
        return sum(len(s) for s, _ in self._pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                while not self._closed and self._size() < self._batch_size:
                    remaining = self._first_at + self._timeout - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, self._pending = self._pending, []
            stmts = [s for group, _ in batch for s in group]
            try:
                if stmts:
                    self._apply(stmts)
            finally:
                for _, done in batch:
                    done.set()
