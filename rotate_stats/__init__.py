"""rotate_stats: move journal chat job stats from Redis into rqlite, exactly once.

The public API; everything else is an implementation module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks import CheckReport, Status, check, status
    from .database import SqliteStore, Store, migrate
    from .errors import (
        AmbiguousWrite,
        ConfigError,
        DataError,
        LockHeld,
        NotMigrated,
        RotateStatsError,
        StoreError,
    )
    from .invariants import DayCounts, Finding, Invariant, check_day
    from .recorder import Recorder
    from .report import DateOutcome, DateState, ExitCode, RotationReport
    from .rqlite_store import RqliteStore
    from .settings import Settings
    from .walk import RotateOptions, rotate

_EXPORTS = {
    "checks": ("CheckReport", "Status", "check", "status"),
    "database": ("SqliteStore", "Store", "migrate"),
    "errors": (
        "AmbiguousWrite",
        "ConfigError",
        "DataError",
        "LockHeld",
        "NotMigrated",
        "RotateStatsError",
        "StoreError",
    ),
    "invariants": ("DayCounts", "Finding", "Invariant", "check_day"),
    "recorder": ("Recorder",),
    "report": ("DateOutcome", "DateState", "ExitCode", "RotationReport"),
    "walk": ("RotateOptions", "rotate"),
    "rqlite_store": ("RqliteStore",),
    "settings": ("Settings",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562): importing the package,
    or running ``--help``, does not pay for redis, pyrqlite and SQLite."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "AmbiguousWrite",
    "CheckReport",
    "ConfigError",
    "DataError",
    "DateOutcome",
    "DateState",
    "DayCounts",
    "ExitCode",
    "Finding",
    "Invariant",
    "LockHeld",
    "NotMigrated",
    "Recorder",
    "RotateOptions",
    "RotateStatsError",
    "RotationReport",
    "RqliteStore",
    "Settings",
    "SqliteStore",
    "Status",
    "Store",
    "StoreError",
    "__version__",
    "check",
    "check_day",
    "migrate",
    "rotate",
    "status",
]
