"""Environment variables and flags -> one validated, typed ``Settings``.

Every variable starts with ``ROTATE_STATS_``; an unknown one is an error (a
typo must not be silently ignored). Variables starting ``ROTATE_STATS_TEST_``
belong to the test suite and are ignored here. Flags override variables.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

PREFIX = "ROTATE_STATS_"
TEST_PREFIX = "ROTATE_STATS_TEST_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

ENVIRONMENT: dict[str, tuple[str, str]] = {
    "ROTATE_STATS_REDIS_URL": ("redis_url", f"Redis URL (default {DEFAULT_REDIS_URL})"),
    "ROTATE_STATS_DATABASE_URL": (
        "database_url",
        "sqlite:///path.db or rqlite[s]://[user:password@]host:port (required)",
    ),
    "ROTATE_STATS_BATCH_SIZE": ("batch_size", "dates per Redis call and transaction (31)"),
    "ROTATE_STATS_LOCK_TTL": ("lock_ttl", "seconds the run lock lives unless refreshed (300)"),
    "ROTATE_STATS_MAX_BACKLOG_DAYS": (
        "max_backlog_days",
        "refuse a run whose plan spans more dates than this (3660)",
    ),
    "ROTATE_STATS_DATABASE_TIMEOUT": ("database_timeout", "seconds per database request (10)"),
    "ROTATE_STATS_STRICT": ("strict", "1 to stop before a date that violates an invariant"),
    "ROTATE_STATS_LOG_LEVEL": ("log_level", "DEBUG, INFO, WARNING or ERROR (INFO)"),
}
"""Variable -> (Settings field, meaning and default). The README lists the same."""

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and errors.

    A URL too malformed to parse keeps only its scheme, since where its password
    would be cannot be told.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://<unparseable, hidden>" if scheme else "<unparseable, hidden>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; validated on construction."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str | None = None
    batch_size: int = 31
    lock_ttl: float = 300.0
    max_backlog_days: int = 3660
    database_timeout: float = 10.0
    strict: bool = False
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        try:
            scheme = urllib.parse.urlsplit(self.redis_url).scheme
            urllib.parse.urlsplit(self.redis_url).port  # noqa: B018 - validates the port
        except ValueError:
            scheme = ""
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                "redis URL", mask_url(self.redis_url), "redis://, rediss:// or unix:// URL"
            )
        if self.database_url is not None:
            parse_database_url(self.database_url)
        if not 1 <= self.batch_size <= 1000:
            raise ConfigError("batch size", self.batch_size, "an integer from 1 to 1000")
        if not 1 <= self.lock_ttl <= 86400:
            raise ConfigError("lock TTL", self.lock_ttl, "seconds from 1 to 86400")
        if self.max_backlog_days < 1:
            raise ConfigError("max backlog days", self.max_backlog_days, "a positive integer")
        if not 0 < self.database_timeout <= 3600:
            raise ConfigError("database timeout", self.database_timeout, "seconds, 0 < t <= 3600")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError("log level", self.log_level, f"one of {', '.join(_LOG_LEVELS)}")

    def __repr__(self) -> str:
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_url") and isinstance(value, str):
                value = mask_url(value)
            fields.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(fields)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``ROTATE_STATS_*`` variables, then non-None ``overrides`` (flags)."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, raw in environ.items():
            if not name.startswith(PREFIX) or name.startswith(TEST_PREFIX):
                continue
            if name not in ENVIRONMENT:
                known = ", ".join(sorted(ENVIRONMENT))
                raise ConfigError(name, raw, f"a known variable (one of {known})")
            field = ENVIRONMENT[name][0]
            values[field] = _convert(name, raw, str(types[field]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _convert(name: str, raw: str, kind: str) -> Any:
    text = raw.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(name, raw, f"a number ({kind})") from None
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(name, raw, "1/0, true/false, yes/no or on/off")
    if kind == "str | None":
        return text or None
    return text.upper() if name.endswith("LOG_LEVEL") else text


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: ``kind`` is ``sqlite`` (with ``path``) or ``rqlite``."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0
    user: str | None = None
    password: str | None = None
    tls: bool = False


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``sqlite:///path`` or ``rqlite[s]://[user:password@]host:port``."""
    expected = "sqlite:///path.db or rqlite[s]://[user:password@]host:port"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("database URL", mask_url(url), expected) from None
    if parts.scheme == "sqlite":
        path = urllib.parse.unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ConfigError(
                "database URL", mask_url(url), expected + " (three slashes, then a path)"
            )
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/x.db -> "/abs/x.db"
        return DatabaseUrl("sqlite", path=path[1:] if path.startswith("/") else path)
    if parts.scheme in ("rqlite", "rqlites"):
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ConfigError("database URL", mask_url(url), expected)
        return DatabaseUrl(
            "rqlite",
            host=parts.hostname,
            port=port,
            user=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rqlites",
        )
    raise ConfigError("database URL", mask_url(url), expected)
