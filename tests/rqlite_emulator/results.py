"""Per-statement results and their JSON shapes (reference §3, §4, §5; ``enc`` in rqlite).

Three kinds of entries, rendered as Go's ``omitempty`` structs render them:

- ``ExecResult``  → ``{"last_insert_id": n, "rows_affected": n, "time": t}``, zero values
  omitted, plus ``"rows": null`` in ``associative`` form;
- ``QueryRows``   → ``{"columns", "types", "values", "error", "time"}`` with empty ones omitted,
  or in ``associative`` form ``{"types": {col: type}, "rows": [{col: value}], ...}``
  (Go maps: keys sorted, a duplicate column name keeps its last value);
- ``ErrorResult`` → ``{"error": "..."}`` in both forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .encoding import JSONValue, RowValue, blob_json


@dataclass
class ExecResult:
    """A write statement's outcome (raw ``sqlite3_last_insert_rowid``/``sqlite3_changes``)."""

    last_insert_id: int
    rows_affected: int
    time: float = 0.0


@dataclass
class QueryRows:
    """A read statement's rows; ``error`` set means the statement failed."""

    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    values: list[list[RowValue]] = field(default_factory=list)
    error: str = ""
    time: float = 0.0


@dataclass
class ErrorResult:
    """A statement that failed outside the rows path."""

    error: str


Entry = ExecResult | QueryRows | ErrorResult


def _value(value: RowValue, blob_array: bool) -> JSONValue:
    if isinstance(value, bytes):
        return blob_json(value, blob_array)
    return value


def _go_map(keys: list[str], values: list[JSONValue]) -> dict[str, JSONValue]:
    """A Go map built in column order (last duplicate wins), encoded with sorted keys."""
    built: dict[str, JSONValue] = {}
    for key, value in zip(keys, values, strict=False):
        built[key] = value
    return dict(sorted(built.items()))


def render_entry(entry: Entry, *, associative: bool, blob_array: bool) -> JSONValue:
    """One element of ``results``."""
    if isinstance(entry, ErrorResult):
        return {"error": entry.error}
    out: dict[str, JSONValue] = {}
    if isinstance(entry, ExecResult):
        if entry.last_insert_id:
            out["last_insert_id"] = entry.last_insert_id
        if entry.rows_affected:
            out["rows_affected"] = entry.rows_affected
        if entry.time:
            out["time"] = entry.time
        if associative:
            out["rows"] = None
        return out
    rows = [[_value(v, blob_array) for v in row] for row in entry.values]
    if associative:
        types = _go_map(entry.columns, list(entry.types))
        if types:
            out["types"] = types
        out["rows"] = [_go_map(entry.columns, row) for row in rows]
    else:
        if entry.columns:
            out["columns"] = list(entry.columns)
        if entry.types:
            out["types"] = list(entry.types)
        if rows:
            out["values"] = rows  # type: ignore[assignment]
    if entry.error:
        out["error"] = entry.error
    if entry.time:
        out["time"] = entry.time
    return out


def render_results(entries: list[Entry], *, associative: bool, blob_array: bool) -> list[JSONValue]:
    """The ``results`` array."""
    return [render_entry(e, associative=associative, blob_array=blob_array) for e in entries]
