"""rotate_stats: move journal chat job stats from Redis into rqlite, exactly once.

The public API; everything else is an implementation module.
"""

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
from .rotate import RotateOptions, rotate
from .rqlite_store import RqliteStore
from .settings import Settings

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
