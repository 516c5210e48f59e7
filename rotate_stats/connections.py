"""Open Redis and the database from URLs in Settings."""

from __future__ import annotations

import redis

from .database import SqliteStore, Store
from .errors import ConfigError
from .rqlite_store import RqliteStore, tls_context
from .settings import Settings, mask_url, parse_database_url


def open_redis(url: str) -> redis.Redis:
    """A Redis client for ``url`` with timeouts, so a dead server cannot hang a run."""
    try:
        return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
    except ValueError as exc:
        raise ConfigError("redis URL", mask_url(url), f"a valid Redis URL ({exc})") from None


def open_store(settings: Settings) -> Store:
    """The store named by ``settings.database_url`` (required: never a silent default)."""
    if settings.database_url is None:
        raise ConfigError(
            "database URL",
            None,
            "--database-url or ROTATE_STATS_DATABASE_URL (sqlite:///path.db or "
            "rqlite[s]://[user:password@]host:port)",
        )
    url = parse_database_url(settings.database_url)
    if url.kind == "sqlite":
        return SqliteStore(url.path, timeout=settings.database_timeout)
    context = tls_context(settings.rqlite_ca_file, settings.rqlite_insecure) if url.tls else None
    store = RqliteStore(
        url.hosts,
        tls=url.tls,
        user=url.user,
        password=url.password,
        timeout=settings.database_timeout,
        ssl_context=context,
        retry_for=settings.database_retry_for,
    )
    try:
        store.verify_one_cluster()
    except Exception:
        store.close()
        raise
    return store
