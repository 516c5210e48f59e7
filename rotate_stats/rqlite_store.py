"""The rqlite store, on ``pyrqlite``'s connection (auth, TLS, 301 following).

rqlite has no BEGIN/COMMIT sessions: a batch's whole commit is one
``POST /db/execute?transaction`` request, which rqlite applies as one Raft
entry, all or nothing. Statements are sent *parameterised* (``[sql, p1, ...]``)
so values never pass through client-side string escaping.

Reads that decide what gets written: the merge itself runs inside that write
transaction (see ``database``), so no read decides a write. The migrations
listing is read with ``level=strong`` (through the Raft log) so it can never
be a follower's stale copy; row listings for ``check`` and ``status`` use
``level=weak`` (served by the leader).

pyrqlite's sharp edges handled here: it ignores a top-level ``"error"``
and its ``executemany`` only logs per-statement errors, so responses are
checked here; it resends a request blindly after a connection error, which
is safe because a resent commit fails nowhere and adds nothing (the ledger).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any

import pyrqlite.dbapi2 as pyrqlite

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


class RqliteStore:
    """One rqlite node (it forwards to the leader); every request has a timeout."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        scheme = "https" if tls else "http"
        who = f"{user}@" if user else ""
        self.description = f"rqlite{'s' if tls else ''}://{who}{host}:{port}"
        self.where = f"rqlite at {host}:{port}"
        self._conn = pyrqlite.connect(
            scheme=scheme,
            host=host,
            port=port,
            user=user,
            password=password,
            timeout=timeout,
            ssl_context=ssl_context,
        )

    def _request(self, method: str, path: str, body: list[Any] | None) -> list[dict[str, Any]]:
        """Send one request; return its results or raise StoreError for any error."""
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"}
        try:
            # pyrqlite's connection does auth, TLS, timeouts and 301 following; its
            # cursor would hide top-level errors, so responses are checked here.
            response = self._conn._fetch_response(method, path, body=payload, headers=headers)
            status = response.status
            text = response.read().decode("utf-8", "replace")
        except (OSError, pyrqlite.Error) as exc:
            raise StoreError(self.where, f"unreachable: {exc}") from exc
        if status == 401:
            raise StoreError(self.where, "authentication failed (HTTP 401): check user/password")
        if status != 200:
            raise StoreError(self.where, f"HTTP {status}: {text.strip()[:200]}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreError(self.where, f"not JSON: {text[:200]!r}") from exc
        if data.get("error"):
            raise StoreError(self.where, f"request failed: {data['error']}")
        results: list[dict[str, Any]] = data.get("results", [])
        for i, result in enumerate(results):
            if "error" in result:
                raise StoreError(self.where, f"statement {i + 1} failed: {result['error']}")
        return results

    def _transaction(self, statements: Sequence[Statement]) -> list[int]:
        body = [[sql, *params] for sql, params in statements]
        results = self._request("POST", "/db/execute?transaction", body)
        if len(results) != len(statements):
            raise StoreError(self.where, f"expected {len(statements)} results, got {len(results)}")
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
        self._conn.close()
