"""The rqlite store, on ``pyrqlite``'s connection (Basic auth, TLS, 301 following).

rqlite has no BEGIN/COMMIT sessions: a batch's whole commit is one
``POST /db/execute?transaction`` request, which rqlite applies as one Raft
entry, all or nothing. Statements are sent *parameterised* (``[sql, p1, ...]``,
``?`` placeholders only) so values never pass through client-side escaping.

Several hosts: requests go to the first host that answers. A host that cannot
be reached, times out, or answers 503 (no leader known to it) is skipped for
the next one; a follower that answers is fine, since rqlite (v6.3+) forwards
to the leader, and an older one's 301 is followed by pyrqlite. Every request
has a timeout; a host gets ``attempts`` tries (pyrqlite alone would try ten
times on the same host, 10 x timeout, before giving up).

Read consistency: no read decides a write here - the merge runs inside the
write transaction (see ``database``). The migrations listing is read with
``level=strong`` (through the Raft log, so never a stale follower copy); row
listings for ``check``, ``status`` and the run report use ``level=weak``
(served by the leader).

pyrqlite's sharp edges handled here: it ignores a top-level ``"error"`` and
its ``executemany`` only logs per-statement errors, so every response is
checked here and any error raises ``StoreError``. A request whose response
is lost is resent: for a commit that is safe because the ledger makes a
second application add nothing (``tests/integration/test_rqlite.py``).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Sequence
from typing import Any

import pyrqlite.dbapi2 as pyrqlite
from pyrqlite.connections import Connection

from . import family
from .database import (
    SELECT_MIGRATIONS,
    SELECT_ROWS,
    CommitResult,
    DateCommit,
    Statement,
    StoredRow,
    batch_results,
    batch_statements,
    migration_statements,
    row_from_values,
)
from .errors import StoreError
from .migrations import Migration

log = logging.getLogger("rotate_stats")


class _Unavailable(Exception):
    """This host cannot serve the request now; the next host may."""


class _Connection(Connection):  # type: ignore[misc]
    """pyrqlite's connection with a bounded number of tries per request."""

    attempts = 2
    _connection: Any  # http.client connection, set by pyrqlite
    _headers: dict[str, str]

    def _retry_request(self, method: str, uri: str, body: Any = None, headers: Any = None) -> Any:
        for attempt in range(self.attempts):
            try:
                self._connection.request(
                    method, uri, body=body, headers=dict(self._headers, **(headers or {}))
                )
                return self._connection.getresponse()
            except Exception:
                self._connection.close()
                self._connection = self._init_connection()
                if attempt + 1 == self.attempts:
                    raise
        raise AssertionError("unreachable")


def tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """Verification on by default; a CA bundle for private CAs; ``insecure`` turns it off."""
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RqliteStore:
    """An rqlite cluster reached through any of ``hosts``; every request has a timeout."""

    def __init__(
        self,
        hosts: Sequence[tuple[str, int]],
        *,
        tls: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        attempts: int = 2,
    ) -> None:
        if not hosts:
            raise ValueError("at least one rqlite host is needed")
        self.hosts = list(hosts)
        self.tls = tls
        self.user = user
        self._password = password
        self.timeout = timeout
        self.attempts = attempts
        self._ssl_context = (
            ssl_context if ssl_context is not None or not tls else tls_context(None, False)
        )
        who = f"{user}:***@" if password else (f"{user}@" if user else "")
        listed = ",".join(f"{h}:{p}" for h, p in self.hosts)
        self.description = f"rqlite{'s' if tls else ''}://{who}{listed}"
        self._connections: dict[int, _Connection] = {}
        self._current = 0

    def _connection(self, index: int) -> _Connection:
        conn = self._connections.get(index)
        if conn is None:
            host, port = self.hosts[index]
            conn = _Connection(
                scheme="https" if self.tls else "http",
                host=host,
                port=port,
                user=self.user,
                password=self._password,
                timeout=self.timeout,
                ssl_context=self._ssl_context,
            )
            conn.attempts = self.attempts
            self._connections[index] = conn
        return conn

    def _where(self, index: int) -> str:
        host, port = self.hosts[index]
        return f"rqlite at {host}:{port}"

    def _request(self, method: str, path: str, body: list[Any] | None) -> list[dict[str, Any]]:
        """Send to the current host, moving on to the next when one is unavailable."""
        failures: list[str] = []
        for step in range(len(self.hosts)):
            index = (self._current + step) % len(self.hosts)
            try:
                results = self._request_one(index, method, path, body)
            except _Unavailable as exc:
                failures.append(f"{self._where(index)}: {exc}")
                log.warning("%s unavailable (%s); trying the next host", self._where(index), exc)
                continue
            self._current = index
            return results
        raise StoreError(
            self.description, "no host could serve the request: " + "; ".join(failures)
        )

    def _request_one(
        self, index: int, method: str, path: str, body: list[Any] | None
    ) -> list[dict[str, Any]]:
        """One host; raises _Unavailable to try the next one, StoreError to stop."""
        where = self._where(index)
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"}
        try:
            response = self._connection(index)._fetch_response(
                method, path, body=payload, headers=headers
            )
            status = response.status
            text = response.read().decode("utf-8", "replace")
        except (OSError, pyrqlite.Error, ValueError) as exc:
            raise _Unavailable(f"unreachable: {exc}") from exc
        except Exception as exc:  # http.client.HTTPException and friends
            raise _Unavailable(f"unreachable: {type(exc).__name__}: {exc}") from exc
        if status == 401:
            raise StoreError(where, "authentication failed (HTTP 401): check user and password")
        if status == 503:
            raise _Unavailable(f"HTTP 503: {text.strip()[:200]}")
        if status != 200:
            raise StoreError(where, f"HTTP {status}: {text.strip()[:200]}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreError(where, f"not JSON: {text[:200]!r}") from exc
        if data.get("error"):
            raise StoreError(where, f"request failed: {data['error']}")
        results: list[dict[str, Any]] = data.get("results", [])
        for i, result in enumerate(results):
            if "error" in result:
                raise StoreError(where, f"statement {i + 1} failed: {result['error']}")
        return results

    def _transaction(self, statements: Sequence[Statement]) -> list[int]:
        body = [[sql, *params] for sql, params in statements]
        results = self._request("POST", "/db/execute?transaction", body)
        if len(results) != len(statements):
            raise StoreError(
                self.description, f"expected {len(statements)} results, got {len(results)}"
            )
        return [int(r.get("rows_affected", 0)) for r in results]

    def _query(self, sql: str, params: tuple[object, ...], level: str) -> list[list[Any]]:
        results = self._request("POST", f"/db/query?level={level}", [[sql, *params]])
        return list(results[0].get("values", [])) if results else []

    def applied_migrations(self) -> list[str]:
        exists = self._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            (family.MIGRATIONS_TABLE,),
            "strong",
        )
        if not exists:
            return []
        return [str(r[0]) for r in self._query(SELECT_MIGRATIONS, (), "strong")]

    def apply_migration(self, migration: Migration) -> None:
        self._transaction(migration_statements(migration))

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]:
        statements, spans = batch_statements(items, retrieved_at)
        return batch_results(spans, self._transaction(statements))

    def rows(self, first: str | None, last: str | None) -> list[StoredRow]:
        params = (first or "0000-00-00", last or "9999-99-99")
        return [row_from_values(r) for r in self._query(SELECT_ROWS, params, "weak")]

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
