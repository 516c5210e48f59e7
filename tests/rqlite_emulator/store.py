"""The emulated database layer: rqlite's ``db`` package over one SQLite connection.

Reference sections (``/work/shared/reference/rqlite-http-api.md``):

- §3 execute: each statement runs on the single read-write connection; ``last_insert_id``
  and ``rows_affected`` are the raw ``sqlite3_last_insert_rowid()``/``sqlite3_changes()``
  read right after one ``sqlite3_step`` (so DDL reports the previous DML's numbers, and
  conflicts report stale ids). With ``transaction``: deferred ``BEGIN``, stop at the first
  failure, roll back, return the short result list. ``returning `` statements run as queries.
- §4 query: each statement's first SQL statement is checked with ``sqlite3_stmt_readonly``
  first (v8 ``db`` ``queryWithConn``): a write is refused with
  ``attempt to change database via query operation`` without running; the rest runs with
  ``PRAGMA query_only`` on (a write later in a multi-statement string fails with SQLite's own
  ``attempt to write a readonly database``, as on rqlite's read-only connection);
  per-statement errors; ``types`` from ``sqlite3_column_decltype`` lower-cased, empty ones
  inferred from the first row.
- §5 request: statements classified with ``sqlite3_stmt_readonly``.
- §6: ``disallowed pragma`` (``check_pragmas``) and COMMIT failures are top-level errors.
- §2: parameter binding as the Go driver does it (``:``/``@``/``$`` names, extra positional
  parameters ignored, ``not enough args to execute query: want N got M``).

The database is a file in the data directory, in WAL mode: the file descriptors stay open,
so the emulator keeps working after the directory is deleted (pyrqlite's launcher does that).
Not emulated: ``db_timeout`` (accepted, never fires), ``qualify_columns``, Raft.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence

from . import native
from .encoding import (
    TIME_TYPES,
    Param,
    RowValue,
    Statement,
    TimeRangeError,
    inferred_type,
    is_text_type,
    text_to_rfc3339,
    unix_to_rfc3339,
)
from .results import Entry, ErrorResult, ExecResult, QueryRows

ERR_QUERY_WRITE = "attempt to change database via query operation"

_BREAKING_PRAGMAS = [
    re.compile(r"(?i)^\s*PRAGMA\s+(\w+\.)?journal_mode\s*=\s*"),
    re.compile(r"(?i)^\s*PRAGMA\s+wal_autocheckpoint\s*=\s*"),
    re.compile(r"(?i)^\s*PRAGMA\s+(\w+\.)?wal_checkpoint"),
    re.compile(r"(?i)^\s*PRAGMA\s+(\w+\.)?synchronous\s*=\s*"),
]  # v8.43.4's list; later versions also refuse "PRAGMA query_only="


class StatementError(Exception):
    """A statement failed; ``str(exc)`` is the message rqlite puts in its result entry."""


def check_pragmas(stmts: Sequence[Statement]) -> str | None:
    """§6: the message for a request holding a breaking PRAGMA, else None."""
    for stmt in stmts:
        if any(p.match(stmt.sql) for p in _BREAKING_PRAGMAS):
            return "disallowed pragma"
    return None


def _row_value(kind: int, raw: int | float | bytes | None, decltype: str) -> RowValue:
    """The Go driver's ``nextSyncLocked`` conversion of one column value."""
    if kind == native.SQLITE_INTEGER:
        assert isinstance(raw, int)
        if decltype in TIME_TYPES:
            return unix_to_rfc3339(raw)
        if decltype == "boolean":
            return raw > 0
        return raw
    if kind == native.SQLITE_TEXT:
        assert isinstance(raw, bytes)
        text = raw.decode("utf-8", "surrogateescape")  # bad bytes: see encoding.dumps
        return text_to_rfc3339(text) if decltype in TIME_TYPES else text
    return raw


def _statement_args(
    stmt: native.Statement, args: list[Param], start: int, *, for_query: bool
) -> list[Param]:
    """The Go driver's per-statement slice of the arguments (``exec``/``query``)."""
    needed = stmt.parameter_count()
    if len(args) - start < needed:
        got = len(args) - start if for_query else len(args)
        raise StatementError(f"not enough args to execute query: want {needed} got {got}")
    if needed == 0 and not for_query:
        return []
    chosen = args[start : start + needed]
    chosen += [a for i, a in enumerate(args) if (i < start or i >= needed) and a.name]
    return chosen


def _bind(stmt: native.Statement, args: list[Param]) -> None:
    """The Go driver's ``bind``: a named value goes to ``:name``, ``@name`` and ``$name``."""
    for ordinal, arg in enumerate(args, start=1):
        if arg.name:
            indexes = [stmt.parameter_index(p + arg.name) for p in (":", "@", "$")]
        else:
            indexes = [ordinal]
        for index in indexes:
            if index:
                stmt.bind(index, arg.value)


class Store:
    """One SQLite database with rqlite's execute/query/request semantics; thread-safe."""

    def __init__(self, datadir: str | None) -> None:
        path = ":memory:"
        if datadir is not None:
            os.makedirs(datadir, exist_ok=True)
            path = os.path.join(datadir, "db.sqlite")
        self._db = native.Database(path)
        self._lock = threading.RLock()
        self._closed = False
        if datadir is not None:
            self._db.run("PRAGMA journal_mode=WAL")
        self._db.run("PRAGMA synchronous=OFF")
        self.raft_index = 1

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # --- the three endpoints -------------------------------------------------------------

    def execute(
        self, stmts: Sequence[Statement], *, transaction: bool, timings: bool
    ) -> tuple[list[Entry], str]:
        """§3; returns (results, top-level error or "")."""
        return self._write_entry(stmts, transaction, lambda stmt: self._execute_one(stmt, timings))

    def query(
        self, stmts: Sequence[Statement], *, transaction: bool, timings: bool
    ) -> tuple[list[Entry], str]:
        """§4, on a connection made read-only for the duration."""
        with self._lock:
            # a client may have set query_only on the write connection itself (v8 allows it)
            previous = self._db.query_int("PRAGMA query_only")
            self._db.run("PRAGMA query_only=1")
            try:
                begin_error = self._begin() if transaction else ""
                if begin_error:
                    return [], begin_error
                in_tx = transaction
                results: list[Entry] = []
                for stmt in stmts:
                    if not stmt.sql:
                        continue
                    try:
                        if not self._readonly(stmt.sql):
                            results.append(QueryRows(error=ERR_QUERY_WRITE))
                            continue
                        results.append(self._query_one(stmt, timings))
                    except (native.NativeError, StatementError, TimeRangeError) as exc:
                        results.append(QueryRows(error=str(exc)))
                return results, self._commit() if in_tx else ""
            finally:
                self._db.run(f"PRAGMA query_only={previous}")

    def request(
        self, stmts: Sequence[Statement], *, transaction: bool, timings: bool, strong: bool
    ) -> tuple[list[Entry], str]:
        """§5: reads and writes mixed; an all-read request (not strong) is a plain query."""
        if not strong and self.all_readonly(stmts):
            return self.query(stmts, transaction=transaction, timings=timings)

        def one(stmt: Statement) -> tuple[Entry, bool]:
            try:
                readonly = self._readonly(stmt.sql)
            except native.NativeError as exc:
                return ErrorResult(str(exc)), False  # a prepare failure does not stop a tx
            if not readonly:
                return self._execute_one(stmt, timings)
            try:
                return self._query_one(stmt, timings), False
            except (native.NativeError, StatementError, TimeRangeError) as exc:
                return QueryRows(error=str(exc)), True

        return self._write_entry(stmts, transaction, one)

    def _write_entry(
        self,
        stmts: Sequence[Statement],
        transaction: bool,
        run_one: Callable[[Statement], tuple[Entry, bool]],
    ) -> tuple[list[Entry], str]:
        """One Raft entry: statements in order; with ``transaction``, the first failure
        rolls everything back and ends the list. Returns (results, top-level error)."""
        with self._lock:
            self.raft_index += 1
            begin_error = self._begin() if transaction else ""
            if begin_error:
                return [], begin_error
            in_tx = transaction
            results: list[Entry] = []
            for stmt in stmts:
                if not stmt.sql:
                    continue
                entry, failed = run_one(stmt)
                results.append(entry)
                if failed and in_tx:
                    self._db.run("ROLLBACK")
                    in_tx = False
                    break
            return results, self._commit() if in_tx else ""

    def all_readonly(self, stmts: Sequence[Statement]) -> bool:
        """``store`` ``RORWCount`` == 0 writes (a statement that fails to prepare is a write)."""
        with self._lock:
            for stmt in stmts:
                if not stmt.sql:
                    continue
                try:
                    if not self._readonly(stmt.sql):
                        return False
                except native.NativeError:
                    return False
            return True

    def log_read(self) -> int:
        """A ``level=strong`` read: one more Raft entry; returns its index."""
        with self._lock:
            self.raft_index += 1
            return self.raft_index

    # --- helpers (lock held) ----------------------------------------------------------

    def _begin(self) -> str:
        """A deferred BEGIN, as ``conn.BeginTx`` issues it; returns an error message or ""."""
        try:
            self._db.run("BEGIN")
        except native.NativeError as exc:
            return str(exc)
        return ""

    def _commit(self) -> str:
        try:
            self._db.run("COMMIT")
        except native.NativeError as exc:
            return str(exc)
        return ""

    def _readonly(self, sql: str) -> bool:
        stmt = self._db.prepare(sql)
        if stmt is None:
            return True  # sqlite3_stmt_readonly(NULL) is 1
        with stmt:
            return stmt.readonly()

    def _force_query(self, sql: str) -> bool:
        """``proc`` ``Process``: a parsable statement with a RETURNING clause runs as a query."""
        if "returning " not in sql.lower():
            return False
        try:
            stmt = self._db.prepare(sql)
        except native.NativeError:
            return False
        if stmt is None:
            return False
        with stmt:
            return stmt.column_count() > 0 and not stmt.readonly()

    def _execute_one(self, stmt: Statement, timings: bool) -> tuple[Entry, bool]:
        """One execute-path statement: (entry, failed)."""
        started = time.perf_counter()
        try:
            if self._force_query(stmt.sql):
                return self._query_one(stmt, timings), False
            last_id, changes = self._exec_sql(stmt.sql, stmt.params)
        except (native.NativeError, StatementError, TimeRangeError) as exc:
            return ErrorResult(str(exc)), True
        elapsed = round(time.perf_counter() - started, 9) if timings else 0.0  # Go: whole ns
        return ExecResult(last_id, changes, elapsed), False

    def _exec_sql(self, sql: str, args: list[Param]) -> tuple[int, int]:
        """The Go driver's ``exec``: every statement in ``sql`` runs; the last one's counts."""
        start = 0
        while True:
            stmt, tail = self._db.prepare_with_tail(sql)
            counts: tuple[int, int] | None = None
            if stmt is not None:
                with stmt:
                    chosen = _statement_args(stmt, args, start, for_query=False)
                    start += stmt.parameter_count()
                    _bind(stmt, chosen)
                    stmt.step()  # one step, as _sqlite3_step_row_internal does
                    counts = (self._db.last_insert_rowid(), self._db.changes())
            if not tail:
                return counts or (0, 0)
            sql = tail

    def _query_one(self, stmt: Statement, timings: bool) -> QueryRows:
        """The Go driver's ``query`` + ``db`` ``queryStmtWithConn``: the last statement's rows."""
        started = time.perf_counter()
        sql, start = stmt.sql, 0
        while True:
            prepared, tail = self._db.prepare_with_tail(sql)
            if prepared is None:
                if not tail:
                    return QueryRows()
                sql = tail
                continue
            with prepared:
                chosen = _statement_args(prepared, stmt.params, start, for_query=True)
                if tail:  # earlier statements are prepared but never stepped
                    start += prepared.parameter_count()
                    sql = tail
                    continue
                _bind(prepared, chosen)
                rows = self._collect(prepared)
            if timings:
                rows.time = round(time.perf_counter() - started, 9)
            return rows

    def _collect(self, stmt: native.Statement) -> QueryRows:
        columns = stmt.column_names()
        decltypes = stmt.column_decltypes()
        types = list(decltypes)
        needs_types = "" in types
        values: list[list[RowValue]] = []
        while stmt.step() and columns:
            row = [_row_value(k, v, decltypes[i]) for i, (k, v) in enumerate(stmt.row())]
            for i, value in enumerate(row):
                if isinstance(value, bytes) and is_text_type(types[i]):
                    row[i] = value.decode("utf-8", "surrogateescape")
            values.append(row)
            if needs_types:
                types = [t or inferred_type(row[i]) for i, t in enumerate(types)]
                needs_types = False
        return QueryRows(columns=columns, types=types, values=values)
