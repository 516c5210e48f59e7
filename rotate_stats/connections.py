"""Open Redis and the database from URLs in Settings; explain Redis errors for operators."""

from __future__ import annotations

import socket
import urllib.parse

import redis

from .database import SqliteStore, Store
from .errors import ConfigError, UnresolvedHost, mask_url
from .rqlite_store import RqliteStore, tls_context
from .settings import Settings, parse_database_url, url_hosts

REDIS_AUTH_FORMS = (
    "redis://:PASSWORD@host:port/db (or redis://USER:PASSWORD@host:port/db for an ACL user)"
)
"""How a password goes into a Redis URL, for error messages."""


def resolve_hosts(what: str, hosts: list[str]) -> None:
    """UnresolvedHost naming the first of ``hosts`` whose name does not resolve.

    Checked before the first connection, so that a wrong (or unedited example) host
    name fails at once, named, instead of as a connection error after every retry
    (an rqlite URL waited ``ROTATE_STATS_DATABASE_RETRY_FOR``, 60 s, then spoke of "no
    leader"). Every listed host must resolve; an address literal always does.
    """
    for host in hosts:
        try:
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnresolvedHost(what, host, exc.strerror or str(exc)) from None
        except UnicodeError as exc:  # a label too long for IDNA
            raise UnresolvedHost(what, host, str(exc)) from None


def open_redis(url: str) -> redis.Redis:
    """A Redis client for ``url`` with timeouts, so a dead server cannot hang a run."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
    except ValueError as exc:
        raise ConfigError("redis URL", url, f"a valid Redis URL ({exc})") from None
    resolve_hosts(f"Redis at {mask_url(url)}", url_hosts(url))
    return client


def open_store(settings: Settings, *, create: bool = False) -> Store:
    """The store named by ``settings.database_url`` (required: never a silent default).

    A SQLite file is created only with ``create`` (the ``migrate`` command); any
    other command on a missing file gets NotMigrated naming the path.
    """
    if settings.database_url is None:
        raise ConfigError(
            "database URL",
            None,
            "--database-url or ROTATE_STATS_DATABASE_URL (sqlite:///path.db or "
            "rqlite[s]://[user:password@]host:port)",
        )
    url = parse_database_url(settings.database_url)
    if url.kind == "sqlite":
        return SqliteStore(url.path, timeout=settings.database_timeout, create=create)
    resolve_hosts(
        f"database URL {mask_url(settings.database_url)}", [host for host, _ in url.hosts]
    )
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


def explain_redis_error(exc: redis.RedisError, url: str) -> str:
    """An operator's message for a Redis error met with ``url`` (masked, never the password).

    Authentication failures (issue 10, item 10) say what to put in the URL: the
    server's own words (``HELLO must be called with the client already
    authenticated``, ``NOAUTH``) do not. Which case applies is read from the URL
    (did it carry a password?), not from the server's message text.
    """
    shown = mask_url(url)
    if isinstance(exc, redis.AuthenticationError):
        try:
            has_password = urllib.parse.urlsplit(url).password is not None
        except ValueError:
            has_password = False
        if not has_password:
            return (
                f"Redis at {shown} requires a password and the URL gives none: put it in "
                f"ROTATE_STATS_REDIS_URL (or ROTATE_STATS_REDIS_URL_FILE, or --redis-url) as "
                f"{REDIS_AUTH_FORMS}"
            )
        return (
            f"Redis at {shown} refused the password (or user) in the URL: check it; the URL "
            f"form is {REDIS_AUTH_FORMS}, with special characters in the password %-encoded"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return (
            f"Redis at {shown}: the ACL user lacks a permission the job needs ({exc}); "
            "grant it to the user"
        )
    return f"Redis at {shown}: {exc}"
