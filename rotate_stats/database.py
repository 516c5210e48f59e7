"""The ``Store`` protocol and its SQLite implementation; SQL shared by every store.

A commit is one transaction per batch of dates. For each date with a claim it
(1) inserts a zero row if the date has none, (2) adds the claim's counts and
breakdowns to the row *unless the claim id is already in the ledger*, and
(3) records the claim id in the ledger. The merge happens inside the database
(``requested = requested + ?``, breakdowns summed key by key with
``json_each``), so it never starts from a stale read: the result is the same
whichever node or run commits, and a resent or repeated commit of the same
claim adds nothing. A date without a claim only gets a zero row if it has no
row; an existing row is left untouched.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import family
from .dates import iso
from .errors import NotMigrated, StoreError
from .invariants import DayCounts
from .migrations import Migration, load

Statement = tuple[str, tuple[object, ...]]


@dataclass(frozen=True)
class DateCommit:
    """One date of a batch: its claim id ("" when it had no keys) and the claimed counts."""

    unix_date: int
    claim_id: str
    day: DayCounts


@dataclass(frozen=True)
class CommitResult:
    """What a commit did to one date: created its row, and/or applied its claim now."""

    row_created: bool
    claim_applied: bool


@dataclass(frozen=True)
class StoredRow:
    """A row of the table; ``problems`` lists breakdown columns that are not JSON objects."""

    retrieved_for: str
    retrieved_at: float
    day: DayCounts
    problems: tuple[str, ...] = ()


class Store(Protocol):
    """What the rotation needs from a database."""

    description: str
    """Where the store points, safe to print (no password)."""

    def applied_migrations(self) -> list[str]: ...

    def apply_migration(self, migration: Migration) -> None: ...

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]: ...

    def rows(self, first: str | None, last: str | None) -> list[StoredRow]: ...

    def close(self) -> None: ...


def breakdown_json(breakdown: Mapping[str, int]) -> str:
    """The stored form of a breakdown: a JSON object with sorted keys."""
    return json.dumps(dict(breakdown), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pending_migrations(store: Store) -> list[str]:
    """Names of this package's migrations the store has not applied yet."""
    applied = set(store.applied_migrations())
    return [m.name for m in load() if m.name not in applied]


def require_migrated(store: Store) -> None:
    """Raise NotMigrated naming the pending migrations, if any."""
    pending = pending_migrations(store)
    if pending:
        raise NotMigrated(pending)


def migrate(store: Store) -> list[str]:
    """Apply every pending migration in order; returns the names applied now."""
    done: list[str] = []
    applied = set(store.applied_migrations())
    for migration in load():
        if migration.name not in applied:
            store.apply_migration(migration)
            done.append(migration.name)
    return done


# -- SQL --------------------------------------------------------------------------------------

MIGRATIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {family.MIGRATIONS_TABLE} "
    "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
)
_PLACEHOLDERS = ", ".join("?" for _ in family.COLUMNS)
INSERT_ZERO_ROW = (
    f"INSERT OR IGNORE INTO {family.TABLE} ({', '.join(family.COLUMNS)}) VALUES ({_PLACEHOLDERS})"
)


def _merge_breakdown(column: str) -> str:
    # CASE ... ELSE NULL makes a stored value that is not a JSON object fail the
    # NOT NULL constraint (and so the whole batch) instead of being merged into.
    return (
        f"{column} = CASE WHEN json_type({column}) = 'object' THEN ("
        "SELECT COALESCE(json_group_object(k, v), '{}') FROM ("
        "SELECT key AS k, SUM(value) AS v FROM ("
        f"SELECT key, value FROM json_each({column}) "
        "UNION ALL SELECT key, value FROM json_each(?)"
        ") GROUP BY key ORDER BY key)) ELSE NULL END"
    )


MERGE_CLAIM = (
    f"UPDATE {family.TABLE} SET retrieved_at = ?, "
    + ", ".join(f"{e} = {e} + ?, " + _merge_breakdown(f"{e}_breakdown") for e in family.EVENTS)
    + f" WHERE retrieved_for = ? AND NOT EXISTS "
    f"(SELECT 1 FROM {family.CLAIMS_TABLE} WHERE claim_id = ?)"
)
RECORD_CLAIM = (
    f"INSERT OR IGNORE INTO {family.CLAIMS_TABLE} (claim_id, retrieved_for, applied_at) "
    "VALUES (?, ?, ?)"
)
SELECT_ROWS = (
    f"SELECT {', '.join(family.COLUMNS)} FROM {family.TABLE} "
    "WHERE retrieved_for >= ? AND retrieved_for <= ? ORDER BY retrieved_for"
)
SELECT_MIGRATIONS = f"SELECT name FROM {family.MIGRATIONS_TABLE} ORDER BY name"
RECORD_MIGRATION = f"INSERT INTO {family.MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)"


def commit_statements(item: DateCommit, iso_date: str, retrieved_at: float) -> list[Statement]:
    """The statements committing one date: zero row, then (with a claim) merge and ledger."""
    zero: list[object] = [iso_date, retrieved_at]
    for _ in family.EVENTS:
        zero += [0, "{}"]
    statements: list[Statement] = [(INSERT_ZERO_ROW, tuple(zero))]
    if item.claim_id:
        merge: list[object] = [retrieved_at]
        for event in family.EVENTS:
            merge += [item.day.count(event), breakdown_json(item.day.breakdown(event))]
        merge += [iso_date, item.claim_id]
        statements.append((MERGE_CLAIM, tuple(merge)))
        statements.append((RECORD_CLAIM, (item.claim_id, iso_date, retrieved_at)))
    return statements


def migration_statements(migration: Migration) -> list[Statement]:
    """One transaction: the bookkeeping row *first*, then the migration's statements.

    Recording first makes a resent or repeated migration fail on the record's
    primary key before any of its statements runs (they need not be
    idempotent); ``apply_migration`` then finds the record and succeeds.
    """
    return [
        (MIGRATIONS_DDL, ()),
        (RECORD_MIGRATION, (migration.name, time.time())),
        *((sql, ()) for sql in migration.statements),
    ]


def row_from_values(values: Sequence[Any]) -> StoredRow:
    """A StoredRow from values in ``family.COLUMNS`` order."""
    retrieved_for, retrieved_at, *rest = values
    counts: dict[str, int] = {}
    breakdowns: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for i, event in enumerate(family.EVENTS):
        counts[event] = int(rest[2 * i])
        try:
            parsed = json.loads(str(rest[2 * i + 1]))
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in parsed.values()
        ):
            problems.append(f"{event}_breakdown")
            continue
        breakdowns[event] = parsed
    day = DayCounts(counts, breakdowns)
    return StoredRow(str(retrieved_for), float(retrieved_at), day, tuple(problems))


# -- SQLite -----------------------------------------------------------------------------------


class SqliteStore:
    """A local SQLite file: the embedded default, same SQL as rqlite.

    Durable on commit (rollback journal, ``synchronous=FULL``); a second process
    waits up to ``timeout`` seconds for the write lock (``BEGIN IMMEDIATE``).
    """

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.description = f"sqlite:///{path}"
        try:
            # one thread at a time uses a store, but it may be closed from another
            self._conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(self.description, f"cannot open database: {exc}") from exc

    def _transaction(self, statements: Sequence[Statement]) -> list[int]:
        cur = self._conn.cursor()
        counts: list[int] = []
        try:
            cur.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                cur.execute(sql, params)
                counts.append(cur.rowcount)
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(self.description, f"transaction rolled back: {exc}") from exc
        return counts

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(self.description, f"query failed: {exc}") from exc

    def applied_migrations(self) -> list[str]:
        exists = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (family.MIGRATIONS_TABLE,),
        )
        return [str(r[0]) for r in self._query(SELECT_MIGRATIONS)] if exists else []

    def apply_migration(self, migration: Migration) -> None:
        try:
            self._transaction(migration_statements(migration))
        except StoreError:
            if migration.name not in self.applied_migrations():  # another run applied it
                raise

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]:
        statements, spans = batch_statements(items, retrieved_at)
        return batch_results(spans, self._transaction(statements))

    def rows(self, first: str | None, last: str | None) -> list[StoredRow]:
        found = self._query(SELECT_ROWS, (first or "0000-00-00", last or "9999-99-99"))
        return [row_from_values(r) for r in found]

    def close(self) -> None:
        self._conn.close()


def batch_statements(
    items: Sequence[DateCommit], retrieved_at: float
) -> tuple[list[Statement], list[int]]:
    """All statements of a batch commit, and how many belong to each date."""
    statements: list[Statement] = []
    spans: list[int] = []
    for item in items:
        stmts = commit_statements(item, iso(item.unix_date), retrieved_at)
        spans.append(len(stmts))
        statements += stmts
    return statements, spans


def batch_results(spans: Sequence[int], counts: Sequence[int]) -> list[CommitResult]:
    """Per-date results from the rows-affected counts of commit_statements' statements."""
    out: list[CommitResult] = []
    pos = 0
    for span in spans:
        chunk = counts[pos : pos + span]
        pos += span
        applied = span == 3 and chunk[2] == 1
        out.append(CommitResult(row_created=chunk[0] == 1, claim_applied=applied))
    return out
