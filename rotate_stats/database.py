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
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import family
from .dates import iso
from .errors import DataError, NotMigrated, StoreError
from .invariants import DayCounts
from .invocation import command
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
    """What a commit did to one date: created its row, and/or applied its claim now.

    ``resent``: the claim was applied by this commit's own first request, whose
    answer was lost; the resend found it in the ledger (rqlite only). Whether
    that first request also created the row is then unknown.
    """

    row_created: bool
    claim_applied: bool
    resent: bool = False


@dataclass(frozen=True)
class StoredRow:
    """A row of the table.

    ``problems`` names the columns a merge cannot add to (hand-edited rows: a
    count that is not an integer, a breakdown that is not a JSON object of
    64-bit integers or has a key twice); ``details`` says what is wrong with
    each, in the same order. Such a column reads as 0 / ``{}`` in ``day``.
    """

    retrieved_for: str
    retrieved_at: float
    day: DayCounts
    problems: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


class Store(Protocol):
    """What the rotation needs from a database."""

    description: str
    """Where the store points, safe to print (no password)."""

    def applied_migrations(self) -> list[str]: ...

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """A read that sees every earlier commit (rqlite: ``level=strong``)."""
        ...

    def apply_migration(self, migration: Migration) -> None: ...

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One write statement in its own transaction; rows affected."""
        ...

    def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """Write statements in one transaction, all or nothing; rows affected by each."""
        ...

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
    """Raise NotMigrated naming the pending migrations, DataError for a foreign table."""
    pending = pending_migrations(store)
    if pending:
        raise NotMigrated(pending, migrate=command("migrate"))
    verify_table_shape(store)


def migrate(store: Store) -> list[str]:
    """Apply every pending migration in order; returns the names applied now.

    An existing ``journal_chat_job_stats`` is adopted only if it has exactly the
    shape of seed 000 (``verify_table_shape``); otherwise DataError, and nothing
    is changed.
    """
    done: list[str] = []
    applied = set(store.applied_migrations())
    verify_table_shape(store, missing_ok=True)
    for migration in load():
        if migration.name not in applied:
            store.apply_migration(migration)
            done.append(migration.name)
    return done


# -- the table's shape ------------------------------------------------------------------------

_COLUMNS_SQL = 'SELECT name, upper(type), "notnull", dflt_value, pk FROM pragma_table_info(?)'
_UNIQUE_SQL = (
    "SELECT il.name, ii.name FROM pragma_index_list(?) AS il "
    'JOIN pragma_index_info(il.name) AS ii WHERE il."unique" = 1 ORDER BY il.name, ii.seqno'
)


@dataclass(frozen=True)
class TableShape:
    """Columns as (name, TYPE, not null, default, pk position) and the UNIQUE column sets."""

    columns: tuple[tuple[Any, ...], ...]
    unique: frozenset[tuple[str, ...]]

    @classmethod
    def read(cls, store: Store, table: str) -> TableShape:
        columns = tuple(tuple(row) for row in store.read(_COLUMNS_SQL, (table,)))
        by_index: dict[str, list[str]] = {}
        for index, column in store.read(_UNIQUE_SQL, (table,)):
            by_index.setdefault(str(index), []).append(str(column))
        return cls(columns, frozenset(tuple(cols) for cols in by_index.values()))

    def differences(self, expected: TableShape) -> list[str]:
        """What differs from ``expected``, one phrase each (empty when the same)."""

        def describe(col: tuple[Any, ...]) -> str:
            null = " NOT NULL" if col[2] else ""
            default = f" DEFAULT {col[3]}" if col[3] is not None else ""
            return f"{col[0]} {col[1]}{null}{default}{' PRIMARY KEY' if col[4] else ''}"

        mine = {c[0]: c for c in self.columns}
        theirs = {c[0]: c for c in expected.columns}
        out = [f"column {describe(theirs[n])} is missing" for n in theirs if n not in mine]
        out += [f"extra column {describe(mine[n])}" for n in mine if n not in theirs]
        out += [
            f"column {describe(mine[n])}, expected {describe(theirs[n])}"
            for n in theirs
            if n in mine and tuple(mine[n]) != tuple(theirs[n])
        ]
        out += [f"no UNIQUE ({', '.join(u)})" for u in sorted(expected.unique - self.unique)]
        out += [f"extra UNIQUE ({', '.join(u)})" for u in sorted(self.unique - expected.unique)]
        return out


def seed_shape() -> TableShape:
    """The shape migration 0001 creates, read from an in-memory SQLite database."""
    conn = sqlite3.connect(":memory:")
    try:
        for statement in load()[0].statements:
            conn.execute(statement)
        columns = tuple(tuple(r) for r in conn.execute(_COLUMNS_SQL, (family.TABLE,)))
        by_index: dict[str, list[str]] = {}
        for index, column in conn.execute(_UNIQUE_SQL, (family.TABLE,)):
            by_index.setdefault(str(index), []).append(str(column))
        return TableShape(columns, frozenset(tuple(c) for c in by_index.values()))
    finally:
        conn.close()


def verify_table_shape(store: Store, missing_ok: bool = False) -> None:
    """DataError naming every difference when the table is not seed 000's shape.

    A table of another shape is never adopted: an extra NOT NULL column would
    make the zero-row insert a silent no-op, a missing UNIQUE (retrieved_for)
    would let a merge add into several rows.
    """
    shape = TableShape.read(store, family.TABLE)
    if not shape.columns:
        if missing_ok:
            return
        raise DataError(
            f"table {family.TABLE}", None, "absent", "the table of seed 000", "run migrate"
        )
    differences = shape.differences(seed_shape())
    if differences:
        raise DataError(
            f"table {family.TABLE} in {store.description}",
            None,
            "; ".join(differences),
            "exactly the columns, types, NOT NULL and UNIQUE (retrieved_for) of seed 000",
            "rotate_stats never adopts a table of another shape: rename it or migrate it by "
            "hand, then run migrate",
        )


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


def _merge_count(column: str) -> str:
    # SQLite turns an integer sum that overflows 64 bits into a REAL: NULL instead,
    # so the NOT NULL constraint fails the batch rather than store a float. The CAST:
    # Counts travel as decimal text: rqlite v6 binds JSON numbers as float64, which
    # would round anything past 2^53; the CAST makes them exact integers again.
    added = "CAST(? AS INTEGER)"
    return (
        f"{column} = CASE WHEN typeof({column} + {added}) = 'integer' THEN {column} + {added} END"
    )


MERGE_CLAIM = (
    # Adds the claim unless the ledger has it, or its sequence is at or below the
    # date's watermark (its entry may have been pruned: a claim with no sequence
    # is then refused too). The watermark is checked before the commit as well
    # (rotate._watermarked); here it guards a prune that raced that check.
    f"UPDATE {family.TABLE} SET retrieved_at = ?, "
    + ", ".join(_merge_count(e) + ", " + _merge_breakdown(f"{e}_breakdown") for e in family.EVENTS)
    + f" WHERE retrieved_for = ? AND NOT EXISTS "
    f"(SELECT 1 FROM {family.CLAIMS_TABLE} WHERE claim_id = ?) AND NOT EXISTS "
    f"(SELECT 1 FROM {family.WATERMARKS_TABLE} WHERE family = ? AND retrieved_for = ? "
    "AND sequence >= COALESCE(CAST(NULLIF(?, '') AS INTEGER), sequence))"
)
RECORD_CLAIM = (
    # Records the claim unless the ledger has it already. ``changes()`` is the
    # number of rows the MERGE_CLAIM just before changed: anything but 1 (a
    # vanished zero row, several rows for one date, a watermark that refused the
    # merge) makes applied_at NULL, so the NOT NULL constraint fails the statement
    # and the whole transaction.
    f"INSERT INTO {family.CLAIMS_TABLE} (claim_id, retrieved_for, applied_at, family, sequence) "
    "SELECT ?, ?, CASE WHEN changes() = 1 THEN ? END, ?, CAST(NULLIF(?, '') AS INTEGER) "
    f"WHERE NOT EXISTS (SELECT 1 FROM {family.CLAIMS_TABLE} WHERE claim_id = ?)"
)
GUARD_FAILED = f"NOT NULL constraint failed: {family.CLAIMS_TABLE}.applied_at"
"""The error of RECORD_CLAIM when its merge did not change exactly one row."""
SELECT_WATERMARKS = (
    f"SELECT retrieved_for, sequence FROM {family.WATERMARKS_TABLE} "
    "WHERE family = ? AND retrieved_for >= ? AND retrieved_for <= ?"
)
SELECT_LEDGER_IDS = (
    f"SELECT claim_id FROM {family.CLAIMS_TABLE} WHERE claim_id IN (SELECT value FROM json_each(?))"
)
RAISE_WATERMARK = (
    f"INSERT INTO {family.WATERMARKS_TABLE} (family, retrieved_for, sequence, updated_at) "
    "VALUES (?, ?, CAST(? AS INTEGER), ?) ON CONFLICT (family, retrieved_for) DO UPDATE SET "
    "sequence = max(sequence, excluded.sequence), updated_at = excluded.updated_at"
)
SELECT_ROWS = (
    f"SELECT {', '.join(family.COLUMNS)} FROM {family.TABLE} "
    "WHERE retrieved_for >= ? AND retrieved_for <= ? ORDER BY retrieved_for"
)
SELECT_LEDGER_TIMES = (
    f"SELECT claim_id, applied_at FROM {family.CLAIMS_TABLE} WHERE claim_id IN "
    "(SELECT value FROM json_each(?))"
)
SELECT_MIGRATIONS = f"SELECT name FROM {family.MIGRATIONS_TABLE} ORDER BY name"
RECORD_MIGRATION = f"INSERT INTO {family.MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)"


def sequence_floor(store: Store) -> tuple[int, bool]:
    """(the highest claim sequence the database knows for the family, whether any date
    has a watermark). A strong read: it must see every earlier commit and prune."""
    rows = store.read(
        f"SELECT (SELECT MAX(sequence) FROM {family.CLAIMS_TABLE} WHERE family = ?), "
        f"(SELECT MAX(sequence) FROM {family.WATERMARKS_TABLE} WHERE family = ?)",
        (family.NAME, family.NAME),
    )
    ledger, marks = rows[0] if rows else (None, None)
    values = [int(v) for v in (ledger, marks) if v is not None]
    floor = max(values, default=0)
    if not 0 <= floor < 2**62:  # room left for the counter to count on
        raise DataError(
            f"{family.CLAIMS_TABLE} / {family.WATERMARKS_TABLE} in {store.description}",
            "sequence",
            floor,
            "claim sequences from 0 to 2^62 (claim.lua draws the next one above the highest)",
            "a hand-edited sequence? repair it; nothing was claimed",
        )
    return floor, marks is not None


def commit_statements(item: DateCommit, iso_date: str, retrieved_at: float) -> list[Statement]:
    """The statements committing one date: zero row, then (with a claim) merge and ledger."""
    zero: list[object] = [iso_date, retrieved_at]
    for _ in family.EVENTS:
        zero += [0, "{}"]
    statements: list[Statement] = [(INSERT_ZERO_ROW, tuple(zero))]
    if item.claim_id:
        merge: list[object] = [retrieved_at]
        for event in family.EVENTS:
            count = str(item.day.count(event))  # exact on every rqlite (see _merge_count)
            merge += [count, count, breakdown_json(item.day.breakdown(event))]
        sequence = family.claim_sequence(item.claim_id)
        # text: exact on rqlite v6 too, which also refuses a JSON null ("unsupported
        # type"): an id without a sequence travels as "" (NULLIF in the SQL)
        seq = "" if sequence is None else str(sequence)
        merge += [iso_date, item.claim_id, family.NAME, iso_date, seq]
        statements.append((MERGE_CLAIM, tuple(merge)))
        record = (item.claim_id, iso_date, retrieved_at, family.NAME, seq, item.claim_id)
        statements.append((RECORD_CLAIM, record))
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


INT64 = (-(2**63), 2**63 - 1)
"""The integers SQLite stores exactly (beyond them arithmetic turns to REAL)."""


def is_int64(value: object) -> bool:
    return type(value) is int and INT64[0] <= value <= INT64[1]


def _count_problem(value: object) -> str | None:
    return None if is_int64(value) else f"{value!r} is not a 64-bit integer"


def _breakdown_problem(text: object) -> tuple[dict[str, int], str | None]:
    """The parsed breakdown, or {} and why a merge cannot add to it."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        parsed = json.loads(str(text), object_pairs_hook=pairs)
    except ValueError:
        return {}, f"{str(text)[:80]!r} is not JSON"
    if not isinstance(parsed, dict):
        return {}, f"{str(text)[:80]!r} is not a JSON object"
    if duplicates:
        return {}, f"key {duplicates[0]!r} appears more than once"
    bad = next((k for k, v in parsed.items() if not is_int64(v)), None)
    if bad is not None:
        return {}, f"value {parsed[bad]!r} of key {bad!r} is not a 64-bit integer"
    return parsed, None


def row_from_values(values: Sequence[Any]) -> StoredRow:
    """A StoredRow from values in ``family.COLUMNS`` order; never raises on odd values."""
    retrieved_for, retrieved_at, *rest = values
    counts: dict[str, int] = {}
    breakdowns: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    details: list[str] = []
    for i, event in enumerate(family.EVENTS):
        count, text = rest[2 * i], rest[2 * i + 1]
        problem = _count_problem(count)
        if problem is None:
            counts[event] = count
        else:
            problems.append(event)
            details.append(problem)
        breakdown, problem = _breakdown_problem(text)
        if problem is None:
            breakdowns[event] = breakdown
        else:
            problems.append(f"{event}_breakdown")
            details.append(problem)
    try:
        at = float(retrieved_at)
    except (TypeError, ValueError):
        at = float("nan")
    day = DayCounts(counts, breakdowns)
    return StoredRow(str(retrieved_for), at, day, tuple(problems), tuple(details))


def overflow(day: DayCounts) -> tuple[str, str, int] | None:
    """(event, breakdown key or "", value) of the first value beyond 64 bits, if any."""
    for event in family.EVENTS:
        if not is_int64(day.count(event)):
            return event, "", day.count(event)
        for key, value in day.breakdown(event).items():
            if not is_int64(value):
                return event, key, value
    return None


# -- SQLite -----------------------------------------------------------------------------------


class SqliteStore:
    """A local SQLite file: the embedded default, same SQL as rqlite.

    Durable on commit (rollback journal, ``synchronous=FULL``); a second process
    waits up to ``timeout`` seconds for the write lock (``BEGIN IMMEDIATE``).

    ``create=False`` opens an existing file only (``mode=rw``): a missing file
    raises NotMigrated naming the path, and nothing is created. The CLI creates
    a file only for ``migrate`` (issue 10, item 6: a typo'd path must not leave
    an empty database behind).
    """

    def __init__(self, path: str, timeout: float = 30.0, *, create: bool = True) -> None:
        self.description = f"sqlite:///{path}"
        mode = "rwc" if create else "rw"
        uri = f"file:{urllib.parse.quote(path)}?mode={mode}"
        try:
            # one thread at a time uses a store, but it may be closed from another
            self._conn = sqlite3.connect(
                uri, timeout=timeout, isolation_level=None, check_same_thread=False, uri=True
            )
        except sqlite3.Error as exc:
            if not create and not os.path.exists(path):
                raise NotMigrated(
                    [m.name for m in load()],
                    missing_file=os.path.abspath(path),
                    migrate=command("migrate"),
                ) from None
            raise StoreError(self.description, f"cannot open database: {exc}") from exc
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self._conn.close()
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

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self._query(sql, params)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        return self._transaction([(sql, params)])[0]

    def transaction(self, statements: Sequence[Statement]) -> list[int]:
        return self._transaction(statements)

    def apply_migration(self, migration: Migration) -> None:
        try:
            self._transaction(migration_statements(migration))
        except StoreError:
            if migration.name not in self.applied_migrations():  # another run applied it
                raise

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]:
        statements, spans = batch_statements(items, retrieved_at)
        try:
            counts = self._transaction(statements)
        except StoreError as exc:
            raise guard_error(exc, items) from exc
        return batch_results(spans, counts)

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


def guard_error(exc: StoreError, items: Sequence[DateCommit]) -> StoreError:
    """A named error when the commit failed on RECORD_CLAIM's row-count guard."""
    if GUARD_FAILED not in str(exc):
        return exc
    dates = ", ".join(iso(i.unix_date) for i in items if i.claim_id)
    return StoreError(
        exc.where,
        f"a claim's merge did not change exactly one row of {family.TABLE} (dates {dates}): "
        "the table is not the shape of seed 000, or prune-ledger raised a date's watermark "
        f"({family.WATERMARKS_TABLE}) over a claim meanwhile; nothing was committed, the "
        "claims stay in Redis and the next run tells which",
    )


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
