"""Environment variables and flags -> one validated, typed ``Settings``.

Every variable starts with ``ROTATE_STATS_``; an unknown one is an error (a
typo must not be silently ignored) that suggests the closest known name.
Variables starting ``ROTATE_STATS_TEST_`` belong to the test suite and are
ignored here. Flags override variables.

The two URLs may instead be read from files (``ROTATE_STATS_REDIS_URL_FILE``,
``ROTATE_STATS_DATABASE_URL_FILE``: the container-secret convention); setting a
URL and its file at once is an error. No message ever shows a password: values
are masked by ``ConfigError`` itself (``errors.mask_value``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, mask_url

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
    "ROTATE_STATS_DATABASE_RETRY_FOR": (
        "database_retry_for",
        "seconds rqlite requests are retried while the cluster has no leader; a request "
        "ends within this plus one ROTATE_STATS_DATABASE_TIMEOUT (60)",
    ),
    "ROTATE_STATS_RQLITE_CA_FILE": (
        "rqlite_ca_file",
        "CA bundle (PEM) to verify rqlites:// servers signed by a private CA",
    ),
    "ROTATE_STATS_RQLITE_INSECURE": (
        "rqlite_insecure",
        "1 to skip TLS certificate verification for rqlites:// (testing only)",
    ),
    "ROTATE_STATS_SCAN_ORPHANS": (
        "scan_orphans",
        "0 to skip the SCAN for stats keys below earliest after each run (1)",
    ),
    "ROTATE_STATS_MAX_CLOCK_SKEW": (
        "max_clock_skew",
        "seconds this host's clock may differ from Redis TIME before a run refuses "
        "(300; 0: no check)",
    ),
    "ROTATE_STATS_ALLOW_EVICTION": (
        "allow_eviction",
        "1 to run even when Redis's maxmemory-policy is allkeys-* (may evict pending claims)",
    ),
    "ROTATE_STATS_REDIS_FENCE": (
        "redis_fence",
        "durability fence before each commit: auto, none, aof or replicas:N (auto)",
    ),
    "ROTATE_STATS_REDIS_FENCE_TIMEOUT": (
        "redis_fence_timeout",
        "seconds to wait for replicas / AOF before giving up on a batch (10)",
    ),
    # -- monitoring (issue 10 #8, #15): README "Monitoring" --
    "ROTATE_STATS_METRICS_FILE": (
        "metrics_file",
        "Prometheus text file each rotate run replaces (node_exporter textfile collector)",
    ),
    "ROTATE_STATS_HEARTBEAT_URL": (
        "heartbeat_url",
        "URL pinged after each rotate run, <url>/fail when it failed (healthchecks.io)",
    ),
    "ROTATE_STATS_STALE_AFTER_DAYS": (
        "stale_after_days",
        "days the newest row may lag the last stable date: beyond, a run that finds "
        "earliest absent fails, and status reports it (2)",
    ),
    "ROTATE_STATS_ALERT_BACKLOG_DAYS": (
        "alert_backlog_days",
        "status fails when more stable dates than this are still in Redis (2)",
    ),
    "ROTATE_STATS_STUCK_CLAIM_AFTER": (
        "stuck_claim_after",
        "seconds a claim may sit untouched with no run holding the lock before status "
        "calls it stuck (3600)",
    ),
    "ROTATE_STATS_PRUNE_MIN_AGE": (
        "prune_min_age",
        "days: prune-ledger keeps ledger entries applied more recently than this (7)",
    ),
    "ROTATE_STATS_STRICT": ("strict", "1 to stop before a date that violates an invariant"),
    "ROTATE_STATS_LOG_LEVEL": ("log_level", "DEBUG, INFO, WARNING or ERROR (INFO)"),
    "ROTATE_STATS_LOG_FORMAT": (
        "log_format",
        "text or json (one JSON object per log line, with the run id) (text)",
    ),
    "ROTATE_STATS_COMMAND": (
        "command",
        "the command hints name to run this job again (set by the cron wrapper; "
        "default: how this process was started)",
    ),
    "ROTATE_STATS_REDIS_URL_FILE": (
        "redis_url",
        "file holding the Redis URL (a container secret); not with ROTATE_STATS_REDIS_URL",
    ),
    "ROTATE_STATS_DATABASE_URL_FILE": (
        "database_url",
        "file holding the database URL (a container secret); not with ROTATE_STATS_DATABASE_URL",
    ),
}
"""Variable -> (Settings field, meaning and default). The README lists the same."""

FILE_VARIABLES = {
    "ROTATE_STATS_REDIS_URL_FILE": "ROTATE_STATS_REDIS_URL",
    "ROTATE_STATS_DATABASE_URL_FILE": "ROTATE_STATS_DATABASE_URL",
}
"""``X_FILE`` -> ``X``: the value of X is read from the file named by X_FILE."""

WRAPPER_VARIABLES = ("ROTATE_STATS_ENV_FILE", "ROTATE_STATS_VENV", "ROTATE_STATS_FLOCK_FILE")
"""The cron wrapper's own variables: it unsets them before starting the job, which
still rejects them (an unknown name stays an error) with a hint saying whose they are."""

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; validated on construction."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str | None = None
    batch_size: int = 31
    lock_ttl: float = 300.0
    max_backlog_days: int = 3660
    database_timeout: float = 10.0
    database_retry_for: float = 60.0
    rqlite_ca_file: str | None = None
    rqlite_insecure: bool = False
    scan_orphans: bool = True
    max_clock_skew: float = 300.0
    allow_eviction: bool = False
    redis_fence: str = "auto"
    redis_fence_timeout: float = 10.0
    metrics_file: str | None = None
    heartbeat_url: str | None = None
    stale_after_days: int = 2
    alert_backlog_days: int = 2
    stuck_claim_after: float = 3600.0
    prune_min_age: float = 7.0
    strict: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    command: str | None = None

    def __post_init__(self) -> None:
        # Errors name the field; from_env renames them after the variable or flag.
        _check_redis_url(self.redis_url)
        _refuse_placeholder("redis_url", self.redis_url)
        if self.database_url is not None:
            try:
                parse_database_url(self.database_url)
            except ConfigError as exc:
                raise ConfigError("database_url", exc.value, exc.expected) from None
            _refuse_placeholder("database_url", self.database_url)
        checks: list[tuple[str, bool, str]] = [
            ("batch_size", 1 <= self.batch_size <= 1000, "an integer from 1 to 1000"),
            ("lock_ttl", 1 <= self.lock_ttl <= 86400, "seconds from 1 to 86400"),
            ("max_backlog_days", self.max_backlog_days >= 1, "a positive integer"),
            ("max_clock_skew", 0 <= self.max_clock_skew <= 86400, "seconds from 0 to 86400"),
            (
                "redis_fence",
                re.fullmatch(r"auto|none|aof|replicas:[1-9][0-9]{0,2}", self.redis_fence)
                is not None,
                "auto, none, aof or replicas:N (N from 1 to 999)",
            ),
            (
                "redis_fence_timeout",
                0 < self.redis_fence_timeout <= 3600,
                "seconds, 0 < t <= 3600",
            ),
            ("database_timeout", 0 < self.database_timeout <= 3600, "seconds, 0 < t <= 3600"),
            (
                "database_retry_for",
                0 <= self.database_retry_for <= 86400,
                "seconds from 0 to 86400",
            ),
            ("log_level", self.log_level in _LOG_LEVELS, f"one of {', '.join(_LOG_LEVELS)}"),
            ("stale_after_days", 0 <= self.stale_after_days <= 3660, "days from 0 to 3660"),
            ("alert_backlog_days", 0 <= self.alert_backlog_days <= 3660, "days from 0 to 3660"),
            ("stuck_claim_after", 0 <= self.stuck_claim_after <= 864000, "seconds, 0 to 864000"),
            ("prune_min_age", 0 <= self.prune_min_age <= 36600, "days from 0 to 36600"),
            ("log_format", self.log_format in _LOG_FORMATS, "text or json"),
            (
                "command",
                self.command is None or self.command.isprintable(),
                "a command line on one line, without control characters",
            ),
            (
                "rqlite_ca_file",
                self.rqlite_ca_file is None or os.path.isfile(self.rqlite_ca_file),
                "a readable file",
            ),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(name, getattr(self, name), expected)

    def __repr__(self) -> str:
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "heartbeat_url" and value:
                value = "***"  # its path is the secret (a check's UUID)
            elif f.name.endswith("_url") and isinstance(value, str):
                value = mask_url(value)
            fields.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(fields)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``ROTATE_STATS_*`` variables, then non-None ``overrides`` (flags)."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}  # field -> the variable or flag it came from
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, raw in environ.items():
            if not name.startswith(PREFIX) or name.startswith(TEST_PREFIX):
                continue
            if name not in ENVIRONMENT:
                raise ConfigError(name, raw, _unknown_hint(name))
            if name in FILE_VARIABLES:
                if FILE_VARIABLES[name] in environ:
                    raise ConfigError(
                        name,
                        raw,
                        f"either {FILE_VARIABLES[name]} or {name}, not both",
                    )
                raw = read_secret_file(name, raw)
            field = ENVIRONMENT[name][0]
            values[field] = _convert(name, raw, str(types[field]))
            sources[field] = name
        for field, value in overrides.items():
            if value is not None:
                values[field] = value
                sources[field] = "--" + field.replace("_", "-")
        try:
            return cls(**values)
        except ConfigError as exc:  # say where the value came from
            raise ConfigError(sources.get(exc.name, exc.name), exc.value, exc.expected) from None


def _check_redis_url(url: str) -> None:
    """ConfigError naming what is wrong with a Redis URL: its scheme or its port."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unbalanced [ of an IPv6 host
        raise ConfigError("redis_url", url, f"a valid redis:// URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("redis_url", url, "a redis://, rediss:// or unix:// URL")
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if parts.scheme != "unix" and "@" in rest[len(authority) :]:
        # urllib would take the password's start for a host or port, and say so
        raise ConfigError(
            "redis_url",
            url,
            "a password with any '/', '?', '#' or '@' in it percent-encoded "
            "(%2F, %3F, %23, %40): a raw '/', '?' or '#' ends the host part",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        if not parts.hostname:  # redis://:password - what follows the colon is no port
            raise ConfigError(
                "redis_url", url, "a host after the password, such as redis://:PASSWORD@cache"
            ) from None
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ConfigError(
            "redis_url", url, f"a port from 1 to 65535 after the host (got port {port!r})"
        ) from None


PLACEHOLDER = re.compile(r"change[-_]me", re.IGNORECASE)
"""The placeholder of the shipped examples (cron/rotate-stats.env.example, the Kubernetes
secret in deploy/kubernetes/cronjob.yaml): a URL holding it was never edited."""
PLACEHOLDER_DOMAINS = ("example", "example.com", "example.net", "example.org")
"""Names reserved for examples (RFC 2606; ``redis.example`` in the example env file):
they never name a real server."""


def _refuse_placeholder(field: str, url: str) -> None:
    """ConfigError (exit 2) for a URL still holding an example's placeholder: the
    example env file unedited cost a 60 s "no leader" wait on a DNS failure."""
    if PLACEHOLDER.search(url):
        raise ConfigError(
            field,
            url,
            "a real URL, not the example's placeholder CHANGE-ME: set it in the environment "
            'file (/etc/rotate-stats/rotate-stats.env, README "Deployment", step 2)',
        )
    for host in url_hosts(url):
        name = host.lower().rstrip(".")
        if any(name == d or name.endswith("." + d) for d in PLACEHOLDER_DOMAINS):
            raise ConfigError(
                field,
                url,
                f"a real host, not the example's {host} (names under .example never "
                'resolve): set the URL in the environment file (README "Deployment", step 2)',
            )


def url_hosts(url: str) -> list[str]:
    """The host names a Redis or database URL names (none for ``unix://``, ``sqlite://``)."""
    if url.startswith(("rqlite://", "rqlites://")):
        try:
            return [host for host, _ in parse_database_url(url).hosts]
        except ConfigError:
            return []
    if url.startswith(("redis://", "rediss://")):
        try:
            host = urllib.parse.urlsplit(url).hostname
        except ValueError:
            return []
        return [host] if host else []
    return []


def _unknown_hint(name: str) -> str:
    """What to say about an unknown ``ROTATE_STATS_*`` variable: the closest known name."""
    if name in WRAPPER_VARIABLES:
        return (
            "no such variable: it belongs to the cron wrapper (cron/run-rotate-stats), "
            "which unsets it before starting the job; unset it too when running by hand"
        )
    close = difflib.get_close_matches(name, list(ENVIRONMENT), n=1, cutoff=0.6)
    if close:
        return f"a known variable: did you mean {close[0]}? (all are listed in --help)"
    return "a known variable (all are listed in --help and the README)"


MAX_SECRET_FILE_BYTES = 64 * 1024
"""A URL file larger than this is refused unread (it cannot be one URL)."""


def read_secret_file(variable: str, path: str) -> str:
    """The one line of the file ``variable`` names, stripped of surrounding blanks
    (a trailing newline, CRLF, spaces), like any variable's value.

    Errors name the variable and the path, never the content: a missing or
    unreadable file, anything but a regular file (a FIFO would block the open;
    symlinks are followed, as Kubernetes mounts secrets), a file over
    ``MAX_SECRET_FILE_BYTES``, one that is empty, not UTF-8, more than one line
    or holding a control character is a ConfigError.
    """

    def refuse(expected: str) -> ConfigError:
        return ConfigError(variable, path, expected)

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, then is refused
    except OSError as exc:
        raise refuse(f"a readable file holding the URL ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("a regular file holding the URL (this is a directory, FIFO or device)")
        if info.st_size > MAX_SECRET_FILE_BYTES:
            raise refuse(
                f"a file holding one URL, at most {MAX_SECRET_FILE_BYTES} bytes "
                f"(it has {info.st_size} bytes)"
            )
        data = os.read(fd, MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise refuse(f"a readable file holding the URL ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise refuse("a file holding the URL as UTF-8 text (it is not)") from None
    if not text:
        raise refuse("a file holding the URL (the file is empty)")
    lines = text.splitlines()
    if len(lines) > 1:
        raise refuse(f"a file holding one URL on one line (it has {len(lines)} lines)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise refuse("a file holding the URL without control characters (it has one)")
    return text


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
    if name.endswith("LOG_LEVEL"):
        return text.upper()
    return text.lower() if name.endswith("LOG_FORMAT") else text


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: ``kind`` is ``sqlite`` (with ``path``) or ``rqlite`` (``hosts``)."""

    kind: str
    path: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    user: str | None = None
    password: str | None = None
    tls: bool = False


_HOSTPORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_.-]+)):(?P<port>[0-9]{1,5})"
)


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``sqlite:///path`` or ``rqlite[s]://[user:password@]host:port[,host:port...]``."""
    expected = "sqlite:///path.db or rqlite[s]://[user:password@]host:port[,host:port...]"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("database URL", mask_url(url), expected)
    if scheme == "sqlite":
        path = urllib.parse.unquote(rest)
        if not path.startswith("/") or path == "/" or "?" in path or "#" in path:
            raise ConfigError(
                "database URL", mask_url(url), expected + " (three slashes, then a path)"
            )
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/x.db -> "/abs/x.db"
        return DatabaseUrl("sqlite", path=path[1:])
    if scheme not in ("rqlite", "rqlites"):
        raise ConfigError("database URL", mask_url(url), expected)
    userinfo, at, hostlist = rest.rstrip("/").rpartition("@")
    user = password = None
    if at:
        raw_user, colon, raw_password = userinfo.partition(":")
        user = urllib.parse.unquote(raw_user) or None
        password = urllib.parse.unquote(raw_password) if colon else None
    hosts = []
    for item in hostlist.split(","):
        match = _HOSTPORT.fullmatch(item.strip())
        if match is None or not 0 < int(match.group("port")) < 65536:
            raise ConfigError(
                "database URL", mask_url(url), expected + f" (bad host:port {item.strip()!r})"
            )
        hosts.append((match.group("v6") or match.group("name"), int(match.group("port"))))
    return DatabaseUrl(
        "rqlite", hosts=tuple(hosts), user=user, password=password, tls=scheme == "rqlites"
    )
