"""The rqlite store, on ``pyrqlite``'s connection (Basic auth, TLS, 301 following).

rqlite has no BEGIN/COMMIT sessions: a batch's whole commit is one
``POST /db/execute?transaction`` request, which rqlite applies as one Raft
entry, all or nothing. Statements are sent *parameterised* (``[sql, p1, ...]``,
``?`` placeholders only) so values never pass through client-side escaping.

Several hosts, and elections: requests go to the first host that answers.
Answers that mean "no leader right now" or "the leader went away" are
*transient* (``classify``): HTTP 503; HTTP 500 saying leader not found / not
leader / store not open; a top-level error from a node that failed to forward
to the leader (broken pipe, connection reset or refused, EOF); a host that
cannot be reached or times out. A transient answer moves on to the next host;
when every host gave one, the request waits (backoff 0.1 s doubling to 2 s)
and goes round again until ``retry_for`` seconds have passed, logging one
warning per wait. Then it fails naming every host and its last answer.
A follower that answers is fine: rqlite (v6.3+) forwards to the leader, and
an older one's 301 is followed by pyrqlite. Every request has a timeout; a
host gets ``attempts`` tries per round (pyrqlite alone would try ten times on
the same host, 10 x timeout, before giving up).

Resending is safe because every write the job sends is idempotent: a batch
commit adds a claim only if the ledger lacks it (``database``), and a
migration's transaction first inserts its record, so a resend fails on that
record and ``apply_migration`` then finds it applied. Answers that no wait
will change - a wrong password or missing permission (401), a certificate
that does not verify, an SQL error - fail at once.

Read consistency: no read decides a write here - the merge runs inside the
write transaction (see ``database``). The migrations listing is read with
``level=strong`` (through the Raft log, so never a stale follower copy); row
listings for ``check``, ``status`` and the run report use ``level=weak``
(served by the leader).

pyrqlite's sharp edges handled here: it ignores a top-level ``"error"`` and
its ``executemany`` only logs per-statement errors, so every response is
checked here and any error raises ``StoreError``. A request whose response
is lost is resent: for a commit that is safe because the ledger makes a
second application add nothing (``tests/integration/test_store.py``).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyrqlite.dbapi2 as pyrqlite
from pyrqlite.connections import Connection

from . import family
from .database import (
    SELECT_LEDGER_TIMES,
    SELECT_MIGRATIONS,
    SELECT_ROWS,
    CommitResult,
    DateCommit,
    Statement,
    StoredRow,
    batch_results,
    batch_statements,
    guard_error,
    migration_statements,
    row_from_values,
)
from .errors import StoreError
from .migrations import Migration

log = logging.getLogger("rotate_stats")


class _Unavailable(Exception):
    """This host cannot serve the request now; another host, or a later try, may."""


# Substrings (lower case) of rqlite's answers while a cluster has no usable leader.
_LEADERLESS = ("leader not found", "not leader", "leadership lost", "store not open")
# ... and of a node's failure to forward a request to a leader that went away.
_FORWARDING = (
    "failed to process",
    "remote node",
    "broken pipe",
    "connection reset",
    "connection refused",
    "eof",
    "pool get",
    "i/o timeout",
)


def is_transient(status: int, text: str) -> bool:
    """Does this answer mean "no leader now / the leader went away" (worth a retry)?

    ``text`` is the body for a non-200 status, else the request's top-level
    ``error``. A statement's own error (SQL) is never transient.
    """
    lowered = text.lower()
    if status == 503:
        return True
    if status == 500:
        return any(marker in lowered for marker in _LEADERLESS)
    if status == 200:
        return any(marker in lowered for marker in _LEADERLESS + _FORWARDING)
    return False


class _Connection(Connection):  # type: ignore[misc]
    """pyrqlite's connection with a bounded number of tries per request, none of them
    running past ``deadline`` (each try's socket timeout is cut to what is left)."""

    attempts = 2
    deadline: float | None = None
    """``time.monotonic()`` by which every try must be over; None: no bound."""
    _connection: Any  # http.client connection, set by pyrqlite
    _headers: dict[str, str]

    def _limit(self) -> float:
        """The socket timeout of the next try: the request timeout, or what is left
        before ``deadline``; TimeoutError when nothing is."""
        limit = float(self.timeout)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0.01:
                raise TimeoutError("no time left (ROTATE_STATS_DATABASE_RETRY_FOR)")
            limit = min(limit, left)
        self._connection.timeout = limit  # a connection made for this try
        if getattr(self._connection, "sock", None) is not None:
            self._connection.sock.settimeout(limit)  # a kept-alive one
        return limit

    def _retry_request(self, method: str, uri: str, body: Any = None, headers: Any = None) -> Any:
        for attempt in range(self.attempts):
            self._limit()
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
        retry_for: float = 60.0,
    ) -> None:
        if not hosts:
            raise ValueError("at least one rqlite host is needed")
        self.hosts = list(hosts)
        self.tls = tls
        self.user = user
        self._password = password
        self.timeout = timeout
        self.attempts = attempts
        self.retry_for = retry_for
        self._accepted = False  # a request with these credentials succeeded
        self._ssl_context = (
            ssl_context if ssl_context is not None or not tls else tls_context(None, False)
        )
        who = f"{user}:***@" if password else (f"{user}@" if user else "")
        listed = ",".join(f"{h}:{p}" for h, p in self.hosts)
        self.description = f"rqlite{'s' if tls else ''}://{who}{listed}"
        self._connections: dict[int, _Connection] = {}
        self._current = 0
        self._budget_start: float | None = None  # set by verify_one_cluster (_request)

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
        """Send to the current host; on transient answers, the next, then wait and repeat.

        Bounded as a whole (issue 17, item 5(a)): the first round tries every host;
        later rounds start no try once ``retry_for`` seconds have passed since the
        request began (since the start-up check of the cluster, for the first request);
        and no try of any round runs past ``retry_for + timeout`` (each try's socket
        timeout is cut to what is left). Every host, both tries per host, every wait:
        at most ``retry_for + timeout`` seconds in all.
        """
        started = self._budget_start if self._budget_start is not None else time.monotonic()
        self._budget_start = None
        deadline = started + self.retry_for
        hard_deadline = deadline + self.timeout
        delay = 0.1
        waiting = False
        first_round = True
        answers: list[str] = []
        while True:
            answers = []
            for step in range(len(self.hosts)):
                index = (self._current + step) % len(self.hosts)
                if not first_round and time.monotonic() >= deadline:
                    break
                self._connection(index).deadline = hard_deadline
                try:
                    results = self._request_one(index, method, path, body)
                except _Unavailable as exc:
                    answers.append(f"{self._where(index)}: {exc}")
                    log.debug("%s unavailable (%s); trying the next host", self._where(index), exc)
                    continue
                self._current = index
                self._accepted = True
                if waiting:
                    log.warning(
                        "%s served the request after %.1fs", self._where(index),
                        time.monotonic() - started,
                    )  # fmt: skip
                return results
            first_round = False
            if time.monotonic() + delay > deadline:
                raise StoreError(
                    self.description,
                    f"no host could serve the request within {self.retry_for:g}s "
                    "(ROTATE_STATS_DATABASE_RETRY_FOR): " + "; ".join(answers),
                )
            if not waiting:
                waiting = True
                log.warning(
                    "rqlite cannot serve the request now (no leader, or the leader went away); "
                    "retrying for up to %gs: %s", self.retry_for, "; ".join(answers),
                )  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _request_one(
        self, index: int, method: str, path: str, body: list[Any] | None
    ) -> list[dict[str, Any]]:
        """One host; raises _Unavailable to try elsewhere or later, StoreError to stop."""
        where = self._where(index)
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"}
        try:
            response = self._connection(index)._fetch_response(
                method, path, body=payload, headers=headers
            )
            status = response.status
            text = response.read().decode("utf-8", "replace")
        except ssl.SSLCertVerificationError as exc:
            raise StoreError(
                where,
                f"TLS certificate verification failed: {exc.verify_message or exc} "
                "(set ROTATE_STATS_RQLITE_CA_FILE to the CA that signed the server's certificate)",
            ) from exc
        except ssl.SSLError as exc:
            raise StoreError(
                where, f"TLS handshake failed: {exc} (is this an rqlites:// server?)"
            ) from exc
        except (OSError, pyrqlite.Error, ValueError) as exc:
            raise _Unavailable(f"unreachable: {exc}") from exc
        except Exception as exc:  # http.client.HTTPException and friends
            raise _Unavailable(f"unreachable: {type(exc).__name__}: {exc}") from exc
        if status == 401:
            raise StoreError(where, self._refused(method, path))
        if status != 200:
            if is_transient(status, text):
                raise _Unavailable(f"HTTP {status}: {text.strip()[:200]}")
            raise StoreError(where, f"HTTP {status}: {text.strip()[:200]}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreError(where, f"not JSON: {text[:200]!r}") from exc
        if data.get("error"):
            error = str(data["error"])
            if is_transient(200, error):
                raise _Unavailable(f"request failed: {error[:200]}")
            raise StoreError(where, f"request failed: {error}")
        results: list[dict[str, Any]] = data.get("results", [])
        for i, result in enumerate(results):
            if "error" in result:
                raise StoreError(where, f"statement {i + 1} failed: {result['error']}")
        return results

    def _refused(self, method: str, path: str) -> str:
        """The message for a 401: bad credentials, or a user lacking a permission."""
        endpoint = path.split("?", 1)[0]
        permission = {"/db/execute": "execute", "/db/query": "query"}.get(endpoint, endpoint)
        if self.user is None:
            return "HTTP 401: the server wants a user and password (rqlite://user:password@host)"
        if self._accepted:
            return (
                f"HTTP 401 on {method} {endpoint}: user {self.user!r} lacks the "
                f'{permission!r} permission (rqlited -auth file, "perms")'
            )
        return (
            f"HTTP 401 on {method} {endpoint}: wrong password for user {self.user!r}, "
            f"or the user lacks the {permission!r} permission"
        )

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

    def leaders(self) -> dict[str, str]:
        """``host:port`` -> the Raft address of the leader it reports, per host that says.

        Hosts that cannot be asked (down, no leader now, no ``status`` permission,
        a server whose /status lacks the field) are left out.
        """
        deadline = time.monotonic() + self.timeout  # all hosts at once, one timeout in all

        def ask(index: int) -> str | None:
            host, port = self.hosts[index]
            conn = self._connection(index)
            conn.deadline = deadline
            try:
                response = conn._fetch_response(
                    "GET", "/status", headers={"Content-Type": "application/json"}
                )
                text = response.read().decode("utf-8", "replace")
                if response.status != 200:
                    return None
                leader = json.loads(text).get("store", {}).get("leader", {})
            except Exception as exc:  # noqa: BLE001 - any failure: this host says nothing
                log.debug("rqlite at %s:%s: no /status (%s)", host, port, exc)
                return None
            addr = leader.get("addr") if isinstance(leader, dict) else None
            return str(addr) if addr else None

        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            found = list(pool.map(ask, range(len(self.hosts))))
        return {f"{h}:{p}": a for (h, p), a in zip(self.hosts, found, strict=True) if a}

    def verify_one_cluster(self) -> None:
        """StoreError when the listed hosts report different leaders: several clusters.

        A job writing to whichever host answers first would then split its rows
        (and its ledger) between clusters. Asked twice before refusing, so that a
        leader change between two reads is not taken for two clusters.
        """
        if len(self.hosts) < 2:
            return
        started = time.monotonic()
        for _ in range(2):
            leaders = self.leaders()
            if len(set(leaders.values())) <= 1:
                self._budget_start = started  # the first request's wait includes this
                return
            time.sleep(1.0)
        described = "; ".join(f"{h} follows {a}" for h, a in sorted(leaders.items()))
        raise StoreError(
            self.description,
            f"the listed hosts belong to different clusters ({described}): list the nodes "
            "of one cluster",
        )

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._query(sql, params, "strong")]

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        return self._transaction([(sql, params)])[0]

    def transaction(self, statements: Sequence[Statement]) -> list[int]:
        return self._transaction(statements)

    def apply_migration(self, migration: Migration) -> None:
        try:
            self._transaction(migration_statements(migration))
        except StoreError:
            # A resent request (its first answer lost) or another run applied it.
            if migration.name not in self.applied_migrations():
                raise

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]:
        statements, spans = batch_statements(items, retrieved_at)
        try:
            counts = self._transaction(statements)
        except StoreError as exc:
            raise guard_error(exc, items) from exc
        return self._own_resends(items, batch_results(spans, counts), retrieved_at)

    def _own_resends(
        self, items: Sequence[DateCommit], results: list[CommitResult], retrieved_at: float
    ) -> list[CommitResult]:
        """Tell a claim this request applied (first answer lost, resent) from an earlier run's.

        The ledger row of a claim applied by this very request carries this
        commit's ``retrieved_at``; another run's commit of the same claim id
        would have had to start at the same microsecond.
        """
        unapplied = [
            i.claim_id
            for i, r in zip(items, results, strict=True)
            if i.claim_id and not r.claim_applied
        ]
        if not unapplied:
            return results
        found = self._query(SELECT_LEDGER_TIMES, (json.dumps(unapplied),), "strong")
        mine = {str(claim_id) for claim_id, at in found if at == retrieved_at}
        return [
            CommitResult(r.row_created, True, resent=True) if i.claim_id in mine else r
            for i, r in zip(items, results, strict=True)
        ]

    def rows(self, first: str | None, last: str | None) -> list[StoredRow]:
        params = (first or "0000-00-00", last or "9999-99-99")
        return [row_from_values(r) for r in self._query(SELECT_ROWS, params, "weak")]

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
