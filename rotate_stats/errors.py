"""Errors raised by rotate_stats. A leaf module: it imports nothing of ours.

::

    RotateStatsError            root; catch this to catch everything below
    ├── ConfigError             a setting, flag or URL is wrong (exit 2)
    ├── AmbiguousWrite          the recorder's increment was sent but not answered
    ├── ClockSkew               this host's clock and Redis's disagree (exit 1)
    ├── FenceNotMet             Redis did not confirm the claims durable in time (exit 1)
    ├── ReadNotProven           claims could not be read completely from one server (exit 1)
    ├── DataError               Redis or the table holds something we cannot use (exit 1)
    ├── LockHeld                another run holds the lock (exit 75)
    ├── NotMigrated             the database lacks migrations, or its SQLite file (exit 1)
    └── StoreError              the database failed or is unreachable (exit 1)

Every error keeps its facts as attributes and says what to do next. When one
is raised nothing has been lost: keys that were not committed are still in
Redis, and the database only ever sees whole batches.

The masking of secrets lives here too (``mask_text``, ``mask_url``), so that
``ConfigError`` masks whatever it echoes and no call site can forget to.
"""

from __future__ import annotations

import datetime as dt
import re

SECRET_NAME_PARTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL")
"""A variable or field whose name contains one of these has its whole value hidden."""

PLACEHOLDER = "PASSWORD"
"""The one password text left visible: messages show the URL form ``redis://:PASSWORD@host``."""
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>\S*)")
_QUERY_SECRET = re.compile(r"(?i)(?P<key>password|passwd|pwd|secret|token)=(?P<value>[^&\s]*)")
_BARE_USERINFO = re.compile(
    r"(?P<lead>^|[\s'\"(])(?P<user>[^\s'\"():/@]*):(?!//)(?P<password>[^\s@]+)@(?=\S)"
)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and errors.

    The whole string is taken as one URL, so a password holding blanks is hidden
    too. Works on URLs ``urllib`` cannot parse (several hosts, bad ports):
    whatever stands between ``user:`` and the last ``@`` is hidden, even when the
    password holds a ``/``, ``?`` or ``#`` (it errs towards hiding more).
    A ``user@`` without a password is kept (it is a user name); a URL without a
    host (``redis://:password``) keeps only its scheme. An ``http(s)`` URL also
    loses its path and query (``https://hc-ping.com/***``): a heartbeat URL's
    path is its secret.
    """
    if "://" not in url:
        return url if "@" not in url else "<hidden: not a URL>"
    if _SCHEME.match(url) is None:
        return mask_text(url)
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("http", "https"):
        return f"{scheme}://{_mask_http_rest(rest)}"
    userinfo, at, hosts = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password != PLACEHOLDER:
        rest = f"{user}:***@{hosts}"
    elif not at and rest.startswith(":"):  # no host: what follows the colon is a password
        rest = ":***"
    return _QUERY_SECRET.sub(lambda m: f"{m.group('key')}=***", f"{scheme}://{rest}")


def _mask_http_rest(rest: str) -> str:
    """``host[:port]`` of an http(s) URL's rest (after ``://``), with ``user:***@`` when
    it has a password and ``/***`` when anything follows the host."""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority) :]:  # a raw / ? or # in the password: hide it all
        return "***"
    userinfo, at, host = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***@{host}" if at and colon else authority
    return shown + ("/***" if rest[len(authority) :].strip("/") else "")


def mask_text(text: str) -> str:
    """``text`` with every URL password and ``password=`` query value hidden: for
    any message or log line that may echo a setting. (A bare ``user:password@host``
    is hidden only in a setting's value, ``mask_value``: in other text it is more
    likely data, such as a breakdown key an operator must find to repair it.)"""

    def one_url(match: re.Match[str]) -> str:
        rest = match.group("rest")
        userinfo, at, hosts = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and password != PLACEHOLDER:
            rest = f"{user}:***@{hosts}"
        return match.group("scheme") + rest

    return _QUERY_SECRET.sub(lambda m: f"{m.group('key')}=***", _URL.sub(one_url, text))


def _mask_bare_userinfo(text: str) -> str:
    def bare(match: re.Match[str]) -> str:
        if match.group("password") == PLACEHOLDER:
            return match.group(0)
        return f"{match.group('lead')}{match.group('user')}:***@"

    return _BARE_USERINFO.sub(bare, text)


def mask_value(name: str, value: object) -> object:
    """``value`` as safe to print in a message about ``name``: wholly hidden when the
    name says it is a secret, else with URL- and password-shaped parts hidden
    (``user:password@host`` without a scheme too)."""
    if value is None or value == "":
        return value
    if any(part in name.upper() for part in SECRET_NAME_PARTS):
        return "***"
    if isinstance(value, str) and _SCHEME.match(value.strip()):
        return mask_url(value.strip())  # one URL: blanks in its password are hidden too
    return _mask_bare_userinfo(mask_text(value)) if isinstance(value, str) else value


class RotateStatsError(Exception):
    """Root of every error rotate_stats raises on purpose."""


class ConfigError(RotateStatsError):
    """A setting, flag or URL is invalid: names it, the value and what was expected.

    The value is masked here, once for every caller (issue 10, item 2): a URL's
    password, a ``password=`` query value, and the whole value of a variable
    whose name says it is a secret never reach ``value`` or the message.
    """

    SHOWN = 200
    """Characters of a longer value shown (after masking), then its length."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = mask_value(name, value)
        if isinstance(self.value, str) and len(self.value) > self.SHOWN + 50:
            self.value = f"{self.value[: self.SHOWN]}... ({len(self.value)} characters)"
        self.expected = mask_text(expected)
        super().__init__(mask_text(f"{name}: got {self.value!r}, expected {self.expected}"))


class AmbiguousWrite(RotateStatsError):
    """An increment was sent to Redis but its answer was lost: it may or may not count.

    The recorder never resends it (a resend after a lost answer would count it
    twice); the caller decides - usually to log it and go on, since an event
    lost or counted once more is all that is at stake.
    """

    def __init__(self, key: str, amount: int, cause: BaseException) -> None:
        self.key = key
        self.amount = amount
        self.cause = cause
        super().__init__(
            f"{key}: increment of {amount} sent, but no answer ({cause}); it may or may not "
            "have been recorded, and it was not resent"
        )


class ClockSkew(RotateStatsError):
    """The job's clock and Redis's ``TIME`` differ by more than allowed; nothing done.

    Which dates are stable depends on the clock: a job clock a day ahead would
    rotate the real yesterday, and writers' legitimate increments would then be
    refused or land behind ``earliest``.
    """

    def __init__(self, local: float, server: float, allowed: float) -> None:
        self.local = local
        self.server = server
        self.allowed = allowed

        def show(t: float) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")

        super().__init__(
            f"this host's clock says {show(local)} but Redis TIME says {show(server)} "
            f"({local - server:+.0f}s, more than ROTATE_STATS_MAX_CLOCK_SKEW={allowed:g}s); "
            "nothing was done: fix the clock (NTP) on this host or on the Redis server"
        )


class FenceNotMet(RotateStatsError):
    """Redis did not confirm the batch's claims as durable (replicas / AOF) in time.

    Nothing was committed: the claims stay pending in Redis and the next run
    resumes them. Committing a claim Redis may still forget (a failover to a
    replica that never got it, a restart from an older snapshot) would let its
    counts be rotated a second time.
    """

    def __init__(self, fence: str, got: str, timeout_ms: int) -> None:
        self.fence = fence
        self.got = got
        super().__init__(
            f"durability fence not met: wanted {fence}, got {got} within {timeout_ms} ms; "
            "nothing was committed, the claims stay in Redis for the next run "
            "(check replication / AOF, or ROTATE_STATS_REDIS_FENCE)"
        )


class ReadNotProven(RotateStatsError):
    """The claims of a group could not be read completely from one Redis server.

    Nothing of the group was committed: its claims stay pending for the next run.
    Redis restarted or failed over during every read (``rotate._prove``).
    """

    def __init__(self, dates: list[str], rounds: int) -> None:
        self.dates = dates
        self.rounds = rounds
        shown = ", ".join(dates[:5]) + (", ..." if len(dates) > 5 else "")
        super().__init__(
            f"could not read the claims of {shown} completely from one Redis server in "
            f"{rounds} tries (Redis restarting or failing over during the run?); nothing of "
            "them was committed, their claims stay pending for the next run"
        )


class DataError(RotateStatsError):
    """Stored data cannot be rotated as is; nothing was changed for that date.

    ``key`` and ``field`` locate the culprit (``field`` is None for a whole key),
    ``value`` is what was found and ``expected`` what would have been accepted.
    """

    def __init__(
        self, key: str, field: str | None, value: object, expected: str, hint: str = ""
    ) -> None:
        self.key = key
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        where = key if field is None else f"{key} field {field!r}"
        message = f"{where}: found {value!r}, expected {expected}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ClaimBelowWatermark(DataError):
    """A claim whose sequence is at or below its date's watermark, unknown to the ledger:
    applied long ago (its entry pruned) or new, the job cannot tell; nothing committed
    for its date, its keys left (docs/OPERATIONS.md, "A claim below its date's
    watermark"). Not a bad value: no ``redis-cli`` repair applies."""


class LockHeld(RotateStatsError):
    """Another run holds the rotation lock; this run did nothing."""

    def __init__(self, key: str, holder: str | None, ttl_ms: int | None) -> None:
        self.key = key
        self.holder = holder
        self.ttl_ms = ttl_ms
        expires = "unknown" if ttl_ms is None or ttl_ms < 0 else f"{ttl_ms / 1000:.1f}s"
        super().__init__(
            f"another run holds the lock {key} (holder {holder!r}, expires in {expires}); "
            "nothing was done, try again later"
        )


class NotMigrated(RotateStatsError):
    """The database is missing migrations this version needs."""

    def __init__(
        self,
        pending: list[str],
        missing_file: str | None = None,
        migrate: str = "rotate-stats migrate",
    ) -> None:
        """``migrate`` is the command that migrates (``invocation.command("migrate")``)."""
        self.pending = pending
        self.missing_file = missing_file
        """The SQLite file that does not exist (only ``migrate`` creates one), or None."""
        if missing_file is not None:
            super().__init__(
                f"the SQLite database {missing_file} does not exist (only `migrate` creates "
                "one): check the path in ROTATE_STATS_DATABASE_URL / --database-url, or run "
                f"`{migrate}` to create it"
            )
            return
        super().__init__(
            f"the database is not migrated (pending: {', '.join(pending)}); run `{migrate}` first"
        )


class StoreError(RotateStatsError):
    """The database refused a request or could not be reached; the batch was not committed."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        self.detail = detail
        super().__init__(f"{where}: {detail}")


class UnresolvedHost(RotateStatsError):
    """A host name of the Redis or database URL does not resolve (DNS): refused at
    start, before any connection, naming the host (issue 17, item 4). Exit 1, like
    any unreachable server: a DNS outage may pass, a wrong name needs the URL fixed."""

    def __init__(self, what: str, host: str, detail: str) -> None:
        self.what = what
        self.host = host
        super().__init__(
            f"{what}: the host name {host!r} does not resolve ({detail}): check the name "
            "in the URL (is it still the example's?) and this host's DNS; nothing was done"
        )
