"""A thin ctypes binding to the SQLite C library, as rqlite's Go driver uses it.

Python's ``sqlite3`` module cannot report a column's declared type (``PARSE_DECLTYPES``
truncates it), cannot tell whether a statement is read-only, and reads ``changes()`` with
extra statements. rqlite's driver ([G] ``sqlite3.go``) calls ``sqlite3_column_decltype``,
``sqlite3_stmt_readonly``, ``sqlite3_changes`` and ``sqlite3_last_insert_rowid`` directly, so
this module does the same through ``ctypes`` (stdlib) against the system ``libsqlite3``.

Only what the emulator needs is bound. None of these objects is thread-safe on its own:
callers serialise access with one lock (see ``store.Store``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence

SQLITE_OK = 0
SQLITE_READONLY = 8
SQLITE_ROW = 100
SQLITE_DONE = 101

SQLITE_INTEGER = 1
SQLITE_FLOAT = 2
SQLITE_TEXT = 3
SQLITE_BLOB = 4
SQLITE_NULL = 5

_OPEN_READWRITE = 0x02
_OPEN_CREATE = 0x04
_OPEN_FULLMUTEX = 0x10000
_TRANSIENT = ctypes.c_void_p(-1)

_P = ctypes.c_void_p
_I = ctypes.c_int
_I64 = ctypes.c_int64

# name -> (restype, argtypes)
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "sqlite3_open_v2": (_I, [ctypes.c_char_p, ctypes.POINTER(_P), _I, ctypes.c_char_p]),
    "sqlite3_close_v2": (_I, [_P]),
    "sqlite3_errmsg": (ctypes.c_char_p, [_P]),
    "sqlite3_errcode": (_I, [_P]),
    "sqlite3_prepare_v2": (_I, [_P, _P, _I, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "sqlite3_finalize": (_I, [_P]),
    "sqlite3_reset": (_I, [_P]),
    "sqlite3_step": (_I, [_P]),
    "sqlite3_stmt_readonly": (_I, [_P]),
    "sqlite3_bind_parameter_count": (_I, [_P]),
    "sqlite3_bind_parameter_index": (_I, [_P, ctypes.c_char_p]),
    "sqlite3_bind_null": (_I, [_P, _I]),
    "sqlite3_bind_int64": (_I, [_P, _I, _I64]),
    "sqlite3_bind_double": (_I, [_P, _I, ctypes.c_double]),
    "sqlite3_bind_text": (_I, [_P, _I, ctypes.c_char_p, _I, _P]),
    "sqlite3_bind_blob": (_I, [_P, _I, ctypes.c_char_p, _I, _P]),
    "sqlite3_column_count": (_I, [_P]),
    "sqlite3_column_name": (ctypes.c_char_p, [_P, _I]),
    "sqlite3_column_decltype": (ctypes.c_char_p, [_P, _I]),
    "sqlite3_column_type": (_I, [_P, _I]),
    "sqlite3_column_int64": (_I64, [_P, _I]),
    "sqlite3_column_double": (ctypes.c_double, [_P, _I]),
    "sqlite3_column_blob": (_P, [_P, _I]),
    "sqlite3_column_text": (_P, [_P, _I]),
    "sqlite3_column_bytes": (_I, [_P, _I]),
    "sqlite3_changes": (_I, [_P]),
    "sqlite3_last_insert_rowid": (_I64, [_P]),
    "sqlite3_get_autocommit": (_I, [_P]),
    "sqlite3_libversion": (ctypes.c_char_p, []),
}


class NativeError(Exception):
    """An SQLite call failed; ``str(exc)`` is SQLite's own message, as rqlite reports it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _load_library() -> ctypes.CDLL:
    candidates: list[str] = []
    found = ctypes.util.find_library("sqlite3")
    if found:
        candidates.append(found)
    candidates += ["libsqlite3.so.0", "libsqlite3.so", "libsqlite3.dylib", "sqlite3.dll"]
    try:  # a Python built with a statically linked SQLite exports it from _sqlite3
        import _sqlite3

        candidates.append(_sqlite3.__file__)
    except ImportError:
        pass
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "sqlite3_prepare_v2") and hasattr(lib, "sqlite3_column_decltype"):
            for fn_name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(lib, fn_name)
                fn.restype = restype
                fn.argtypes = argtypes
            return lib
    raise OSError(
        "rqlite emulator: cannot load the SQLite C library (tried "
        + ", ".join(candidates)
        + "); install libsqlite3 (Debian: apt-get install libsqlite3-0)"
    )


_lib = _load_library()
SQLITE_VERSION: str = (_lib.sqlite3_libversion() or b"").decode()


class Statement:
    """One prepared statement. ``tail`` is the rest of the SQL, whitespace-trimmed."""

    def __init__(self, db: Database, handle: int, tail: str) -> None:
        self._db = db
        self._h: int | None = handle
        self.tail = tail

    def _handle(self) -> int:
        if self._h is None:
            raise ValueError("statement is finalized")
        return self._h

    def close(self) -> None:
        if self._h is not None:
            _lib.sqlite3_finalize(self._h)
            self._h = None

    def __enter__(self) -> Statement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def readonly(self) -> bool:
        return bool(_lib.sqlite3_stmt_readonly(self._handle()))

    def parameter_count(self) -> int:
        return int(_lib.sqlite3_bind_parameter_count(self._handle()))

    def parameter_index(self, name: str) -> int:
        return int(_lib.sqlite3_bind_parameter_index(self._handle(), name.encode()))

    def bind(self, index: int, value: None | int | float | str | bytes) -> None:
        """Bind like the Go driver's ``bind``: bool as 1/0, bytes as BLOB (even empty)."""
        h = self._handle()
        if value is None:
            rc = _lib.sqlite3_bind_null(h, index)
        elif isinstance(value, bool):
            rc = _lib.sqlite3_bind_int64(h, index, int(value))
        elif isinstance(value, int):
            rc = _lib.sqlite3_bind_int64(h, index, value)
        elif isinstance(value, float):
            rc = _lib.sqlite3_bind_double(h, index, value)
        elif isinstance(value, str):
            raw = value.encode("utf-8", "surrogatepass")
            rc = _lib.sqlite3_bind_text(h, index, raw, len(raw), _TRANSIENT)
        else:
            rc = _lib.sqlite3_bind_blob(h, index, bytes(value), len(value), _TRANSIENT)
        if rc != SQLITE_OK:
            raise self._db.last_error()

    def step(self) -> bool:
        """Advance; True when a row is available. Raises NativeError on failure."""
        rc = _lib.sqlite3_step(self._handle())
        if rc == SQLITE_ROW:
            return True
        if rc == SQLITE_DONE:
            return False
        err = self._db.last_error()
        _lib.sqlite3_reset(self._handle())
        raise err

    def column_count(self) -> int:
        return int(_lib.sqlite3_column_count(self._handle()))

    def column_names(self) -> list[str]:
        h = self._handle()
        return [
            (_lib.sqlite3_column_name(h, i) or b"").decode("utf-8", "replace")
            for i in range(self.column_count())
        ]

    def column_decltypes(self) -> list[str]:
        """Declared types, lower-cased as the Go driver does; ``""`` for expressions."""
        h = self._handle()
        return [
            (_lib.sqlite3_column_decltype(h, i) or b"").decode("utf-8", "replace").lower()
            for i in range(self.column_count())
        ]

    def row(self) -> list[tuple[int, int | float | bytes | None]]:
        """The current row as (storage class, raw value); TEXT comes back as bytes."""
        h = self._handle()
        out: list[tuple[int, int | float | bytes | None]] = []
        for i in range(self.column_count()):
            kind = _lib.sqlite3_column_type(h, i)
            if kind == SQLITE_INTEGER:
                out.append((kind, int(_lib.sqlite3_column_int64(h, i))))
            elif kind == SQLITE_FLOAT:
                out.append((kind, float(_lib.sqlite3_column_double(h, i))))
            elif kind in (SQLITE_TEXT, SQLITE_BLOB):
                ptr = (
                    _lib.sqlite3_column_text if kind == SQLITE_TEXT else _lib.sqlite3_column_blob
                )(h, i)
                size = _lib.sqlite3_column_bytes(h, i)
                out.append((kind, ctypes.string_at(ptr, size) if ptr else b""))
            else:
                out.append((SQLITE_NULL, None))
        return out


class Database:
    """One SQLite connection (``sqlite3_open_v2``), closed by ``close()``."""

    def __init__(self, path: str) -> None:
        handle = _P()
        flags = _OPEN_READWRITE | _OPEN_CREATE | _OPEN_FULLMUTEX
        rc = _lib.sqlite3_open_v2(path.encode(), ctypes.byref(handle), flags, None)
        self._h: int | None = handle.value
        if rc != SQLITE_OK:
            err = self.last_error() if self._h else NativeError(f"open failed ({rc})", rc)
            self.close()
            raise err

    def _handle(self) -> int:
        if self._h is None:
            raise ValueError("database is closed")
        return self._h

    def close(self) -> None:
        if self._h is not None:
            _lib.sqlite3_close_v2(self._h)
            self._h = None

    def last_error(self) -> NativeError:
        h = self._handle()
        msg = (_lib.sqlite3_errmsg(h) or b"").decode("utf-8", "replace")
        return NativeError(msg, int(_lib.sqlite3_errcode(h)))

    def prepare(self, sql: str) -> Statement | None:
        """Prepare the first statement of ``sql``; None when it holds no statement.

        The caller must still look at the returned statement's ``tail``; to get the tail of
        an empty statement use ``prepare_with_tail``.
        """
        return self.prepare_with_tail(sql)[0]

    def prepare_with_tail(self, sql: str) -> tuple[Statement | None, str]:
        raw = sql.encode("utf-8", "surrogatepass")
        buf = ctypes.create_string_buffer(raw)
        stmt = _P()
        tail = _P()
        rc = _lib.sqlite3_prepare_v2(
            self._handle(), buf, len(raw) + 1, ctypes.byref(stmt), ctypes.byref(tail)
        )
        if rc != SQLITE_OK:
            raise self.last_error()
        offset = (tail.value - ctypes.addressof(buf)) if tail.value else len(raw)
        rest = raw[offset:].decode("utf-8", "replace").strip()
        if not stmt.value:
            return None, rest
        return Statement(self, stmt.value, rest), rest

    def run(self, sql: str, params: Sequence[None | int | float | str | bytes] = ()) -> None:
        """Run one statement to completion, discarding rows (for PRAGMA, BEGIN, ...)."""
        stmt = self.prepare(sql)
        if stmt is None:
            return
        with stmt:
            for i, value in enumerate(params, start=1):
                stmt.bind(i, value)
            while stmt.step():
                pass

    def query_int(self, sql: str) -> int:
        """The first column of the first row of a one-statement query, as an integer."""
        stmt = self.prepare(sql)
        if stmt is None:
            raise ValueError(f"no statement in {sql!r}")
        with stmt:
            if not stmt.step():
                raise ValueError(f"no row from {sql!r}")
            return int(_lib.sqlite3_column_int64(stmt._handle(), 0))

    def changes(self) -> int:
        return int(_lib.sqlite3_changes(self._handle()))

    def last_insert_rowid(self) -> int:
        return int(_lib.sqlite3_last_insert_rowid(self._handle()))

    def in_transaction(self) -> bool:
        return not _lib.sqlite3_get_autocommit(self._handle())
