"""HTTP-level conventions of rqlite: query parameters, durations, Basic auth.

- §1: flags count by presence, the first value of a repeated key wins, and some keys are
  validated before routing (``qp`` ``NewQueryParams``): Go durations, integers, ``q=``.
  Query strings are decoded like Go's ``url.ParseQuery`` (``+`` is a space, a bad ``%``
  escape or a ``;`` is an error).
- §8: the ``-auth`` credentials file, user ``"*"``, permission ``all``, and
  ``CredentialsStore.AA`` (no 403: every failure is a 401).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS["h"] = 3600.0
_DURATION_RE = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)")
_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

LEVELS = ("none", "weak", "linearizable", "strong", "auto")


class ParamError(Exception):
    """A query string rqlite rejects with 400 before routing; ``str(exc)`` is the body."""


def parse_duration(text: str) -> float | None:
    """A Go ``time.ParseDuration`` string in seconds, or None when it is not one."""
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        return None
    total = sum(float(num) * _UNITS[unit] for num, unit in _PART_RE.findall(m.group(2)))
    return -total if m.group(1) == "-" else total


def _unescape(text: str) -> str:
    """Go's ``url.QueryUnescape``."""
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", "surrogateescape")
    while i < len(raw):
        c = raw[i]
        if c == ord("%"):
            pair = raw[i + 1 : i + 3]
            try:
                if len(pair) != 2 or not pair.isalnum():
                    raise ValueError
                out += binascii.unhexlify(pair)
            except (ValueError, binascii.Error):
                bad = raw[i : i + 3].decode("utf-8", "replace")
                raise ParamError(f"invalid URL escape {json.dumps(bad)}") from None
            i += 3
            continue
        out.append(ord(" ") if c == ord("+") else c)
        i += 1
    return out.decode("utf-8", "replace")


class QueryParams:
    """The parsed query string of one request."""

    def __init__(self, raw_query: str) -> None:
        self.raw = raw_query
        self._values: dict[str, str] = {}
        first_error: ParamError | None = None
        for part in raw_query.split("&"):
            if not part:
                continue
            if ";" in part:
                first_error = first_error or ParamError("invalid semicolon separator in query")
                continue
            key, _, value = part.partition("=")
            try:
                key, value = _unescape(key), _unescape(value)
            except ParamError as exc:
                first_error = first_error or exc
                continue
            self._values.setdefault(key, value)
        if first_error is not None:
            raise first_error
        self._validate()

    def _validate(self) -> None:
        if "freshness_strict" in self._values and "freshness" not in self._values:
            raise ParamError("freshness_strict requires freshness")
        for key in ("timeout", "freshness", "db_timeout", "linearizable_timeout"):
            if key in self._values and parse_duration(self._values[key]) is None:
                raise ParamError(f"{key} is not a valid duration")
        for key in ("retries", "trailing_logs"):
            if key in self._values and not re.fullmatch(r"[-+]?\d+", self._values[key]):
                raise ParamError(f"{key} is not a valid integer")
        if "q" in self._values and self._values["q"] == "":
            raise ParamError("query parameter not set")

    def has(self, key: str) -> bool:
        """Flags count by presence, whatever their value (§1)."""
        return key in self._values

    def get(self, key: str, default: str = "") -> str:
        return self._values.get(key, default)

    def level(self) -> str:
        """``LevelFromString``: unknown or missing is ``weak``; ``auto`` is ``weak`` on a voter."""
        level = self._values.get("level", "").lower()
        if level not in LEVELS or level == "auto":
            return "weak"
        return level

    def timeout(self, default: float = 30.0) -> float:
        value = parse_duration(self._values.get("timeout", ""))
        return default if value is None else value


@dataclass(frozen=True)
class Credential:
    """One entry of the ``-auth`` file."""

    username: str
    password: str
    perms: frozenset[str]


class Credentials:
    """rqlite's ``CredentialsStore`` with its ``AA`` check."""

    ALL_USERS = "*"

    def __init__(self, entries: list[Credential]) -> None:
        self._passwords = {e.username: e.password for e in entries}
        self._perms: dict[str, set[str]] = {}
        for e in entries:
            self._perms.setdefault(e.username, set()).update(e.perms)

    @classmethod
    def from_file(cls, path: str) -> Credentials:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if not isinstance(doc, list):
            raise ValueError(f"{path}: the credentials file must hold a JSON list")
        entries = [
            Credential(
                str(item["username"]),
                str(item.get("password", "")),
                frozenset(item.get("perms", ())),
            )
            for item in doc
        ]
        return cls(entries)

    def _has_any(self, username: str, *perms: str) -> bool:
        granted = self._perms.get(username, set())
        return any(p in granted for p in perms)

    def allowed(self, authorization: str | None, perm: str) -> bool:
        """True when the ``Authorization`` header value grants ``perm`` (§8)."""
        if self._has_any(self.ALL_USERS, perm, "all"):
            return True
        username, password = parse_basic_auth(authorization)
        if not username:
            return False
        if self._passwords.get(username) != password or username not in self._passwords:
            return False
        return self._has_any(username, perm, "all")


def parse_basic_auth(header: str | None) -> tuple[str, str]:
    """Go's ``Request.BasicAuth``: ("", "") when absent or malformed."""
    if not header or len(header) < 6 or header[:6].lower() != "basic ":
        return "", ""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return "", ""
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else ("", "")
