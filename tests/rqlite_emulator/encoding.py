"""Wire formats of the rqlite HTTP API: request bodies in, JSON values out.

Covers, from ``/work/shared/reference/rqlite-http-api.md``:

- §2 request bodies (``rp`` ``ParseRequest``/``makeParameter``, v8's streaming decoder):
  statements as strings or ``[sql, params...]`` arrays, exact number decoding, ``x'..'``
  strings as BLOBs, byte arrays; unpaired surrogate escapes become U+FFFD as in Go;
- §4 value encoding (Go driver ``nextSyncLocked`` + ``db`` ``normalizeRowParameters``):
  ``boolean`` columns, ``date``/``datetime``/``timestamp`` conversion to RFC 3339, BLOBs in
  text-like columns as strings, type inference for expression columns;
- Go's ``encoding/json`` output: floats in Go's shortest format (``2.0`` prints as ``2``,
  exponent form below 1e-6 and from 1e21), ``<``/``>``/``&`` escaped, each byte of invalid
  UTF-8 as ``\\ufffd``, ``pretty`` indenting.

Not covered: ``freshness_strict`` timestamps, ``qualify_columns``, ``/db/sql`` rewriting.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

ParamValue = None | bool | int | float | str | bytes
RowValue = None | bool | int | float | str | bytes
JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
TIME_TYPES = frozenset({"date", "datetime", "timestamp"})
ZERO_TIME = "0001-01-01T00:00:00Z"


class BodyError(Exception):
    """The request body is unusable; the server answers 400 with ``str(exc)`` (§2)."""


class UnsupportedValue(Exception):
    """A value Go's JSON encoder refuses (±Inf): the server answers 500."""


class TimeRangeError(Exception):
    """A date column value outside the years Go can print (a per-statement error)."""


@dataclass(frozen=True)
class Param:
    """One bound parameter; ``name`` is ``""`` for a positional one."""

    name: str
    value: ParamValue


@dataclass
class Statement:
    """One element of a §2 request body."""

    sql: str
    params: list[Param] = field(default_factory=list)


class _JSONFloat(float):
    """A JSON number that is not an int64; keeps its source text for error messages."""

    text: str

    def __new__(cls, text: str) -> _JSONFloat:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid JSON constant {name}")


_DECODER = json.JSONDecoder(parse_float=_JSONFloat, parse_constant=_reject_constant)
_WHITESPACE = " \t\n\r"
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _go_text(text: str) -> str:
    """Go's JSON decoder turns an unpaired ``\\ud800``-style escape into U+FFFD."""
    return _SURROGATE_RE.sub("\ufffd", text)


def _go_value(value: object) -> object:
    if isinstance(value, str):
        return _go_text(value)
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    if isinstance(value, dict):
        return {_go_text(k): _go_value(v) for k, v in value.items()}
    return value


class _Tokens:
    """Just enough of Go's ``json.Decoder`` (``Token``/``More``/``Decode``) for ``rp``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        """The next non-space character, or "" at the end."""
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self) -> object:
        """Decode one whole JSON value; any syntax error is ``invalid JSON body``."""
        self.peek()
        try:
            value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        except ValueError as exc:
            raise BodyError("invalid JSON body") from exc
        return _go_value(value)

    def more(self) -> bool:
        """``Decoder.More``: another element follows (not ``]``, ``}`` or the end)."""
        return self.peek() not in ("]", "}", "")

    def comma(self, first: bool) -> None:
        """The separator Go's decoder expects before every element but the first."""
        if not first:
            if self.peek() != ",":
                raise BodyError("invalid JSON body")
            self.pos += 1

    def close(self) -> None:
        """Consume the ``]`` that ends an array (``More`` said no more elements)."""
        if self.peek() != "]":
            raise BodyError("invalid JSON body")
        self.pos += 1


def parse_body(raw: bytes, *, plain_text: bool = False) -> list[Statement]:
    """Parse a request body (§2) as v8's streaming ``rp`` ``ParseRequest`` does.

    The body is read token by token: the first token must be ``[`` (another valid token,
    ``{`` included, is ``invalid request``; no token at all is ``invalid JSON body``), each
    element is converted before the next one is read (so the first problem wins), and
    nothing after the closing ``]`` is read. Raises BodyError with rqlite's message.
    """
    if plain_text:
        return [Statement(raw.decode("utf-8", "replace"))]
    tokens = _Tokens(raw.decode("utf-8", "replace"))
    first = tokens.peek()
    if first != "[":
        if first != "{":
            tokens.value()  # a syntax error here is "invalid JSON body"
        raise BodyError("invalid request")
    tokens.pos += 1
    stmts: list[Statement] = []
    while tokens.more():
        tokens.comma(not stmts)
        head = tokens.peek()
        if head == "[":
            tokens.pos += 1
            items: list[object] = []
            while tokens.more():
                tokens.comma(not items)
                items.append(tokens.value())
            tokens.close()
            if not items or not isinstance(items[0], str):
                raise BodyError("invalid request")
            stmt = Statement(items[0])
            for item in items[1:]:
                if isinstance(item, dict):
                    stmt.params.extend(_make_param(k, v) for k, v in item.items())
                else:
                    stmt.params.append(_make_param("", item))
            stmts.append(stmt)
        elif head == "{":
            raise BodyError("invalid request")
        else:
            element = tokens.value()
            if not isinstance(element, str):
                raise BodyError("invalid request")
            stmts.append(Statement(element))
    tokens.close()
    if not stmts:
        raise BodyError("no statements")
    return stmts


def _go_type_name(value: object) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "<nil>"
    return "json.Number"


def _make_param(name: str, value: object) -> Param:
    """``rp`` ``makeParameter``: how one JSON value binds."""
    if isinstance(value, bool) or value is None:
        return Param(name, value)
    if isinstance(value, _JSONFloat):
        if math.isinf(value):
            raise BodyError(f"invalid number {value.text}")
        return Param(name, float(value))
    if isinstance(value, int):
        return Param(name, value if INT64_MIN <= value <= INT64_MAX else float(value))
    if isinstance(value, str):
        blob = parse_hex(value)
        return Param(name, value if blob is None else blob)
    if isinstance(value, list):
        out = bytearray()
        for item in value:
            if isinstance(item, _JSONFloat):
                raise BodyError(f"unsupported type {item.text}")
            if isinstance(item, bool) or not isinstance(item, int):
                raise BodyError(f"unsupported type {_go_type_name(item)}")
            if not 0 <= item <= 255:
                raise BodyError(f"unsupported type {item}")
            out.append(item)
        return Param(name, bytes(out))
    raise BodyError(f"unsupported type {_go_type_name(value)}")


def parse_hex(text: str) -> bytes | None:
    """``db`` ``ParseHex``: ``x'0A0b'`` (after trimming spaces) is a BLOB, else None."""
    t = text.strip()
    if len(t) < 3 or t[0] not in "xX" or t[1] != "'" or t[-1] != "'":
        return None
    digits = t[2:-1]
    if not all(c in "0123456789abcdefABCDEF" for c in digits):
        return None
    try:
        return binascii.unhexlify(digits)
    except binascii.Error:
        return None


# --- values read from SQLite (§4) -------------------------------------------------------

_TEXT_PREFIXES = ("varchar", "varying character", "nchar", "native character", "nvarchar", "clob")


def is_text_type(decltype: str) -> bool:
    """``db`` ``isTextType``: a BLOB in such a column is returned as a string."""
    return decltype in ("text", "json", "") or decltype.startswith(_TEXT_PREFIXES)


def inferred_type(value: RowValue) -> str:
    """``db`` ``populateEmptyTypes``: the type name given to an expression column."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, bytes):
        return "blob"
    if isinstance(value, str):
        return "text"
    return ""


def _rfc3339(when: dt.datetime, nanos: int, offset_seconds: int) -> str:
    """Go's ``Time.MarshalText`` (RFC 3339 with trailing zeros of the fraction dropped)."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if len(text) != 19:  # strftime pads years differently on some platforms
        text = f"{when.year:04d}" + text[text.index("-") :]
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if offset_seconds == 0:
        return text + "Z"
    sign = "-" if offset_seconds < 0 else "+"
    minutes = abs(offset_seconds) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def unix_to_rfc3339(value: int) -> str:
    """An INTEGER in a date column: Unix seconds, or milliseconds beyond ±1e12 (UTC)."""
    if value > 10**12 or value < -(10**12):
        nanos_total = value * 1_000_000
        nanos_total = (nanos_total - INT64_MIN) % 2**64 + INT64_MIN  # Go's int64 wrap-around
        seconds, nanos = divmod(nanos_total, 10**9)
    else:
        seconds, nanos = value, 0
    try:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise TimeRangeError("Time.MarshalText: year outside of range [0,9999]") from exc
    return _rfc3339(when, nanos, 0)


_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?(?:([+-])(\d{2}):(\d{2}))?)?)?"
)


def text_to_rfc3339(text: str) -> str:
    """TEXT in a date column, parsed with the Go driver's layouts; unparsable → zero time."""
    m = _TIME_RE.fullmatch(text.removesuffix("Z"))
    if m is None:
        return ZERO_TIME
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    if sign is not None and (int(off_h) > 24 or int(off_m) > 60):
        return ZERO_TIME
    try:
        when = dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return ZERO_TIME
    nanos = int(frac[:9].ljust(9, "0")) if frac else 0
    offset = 0
    if sign is not None:
        offset = (int(off_h) * 3600 + int(off_m) * 60) * (-1 if sign == "-" else 1)
    return _rfc3339(when, nanos, offset)


# --- JSON output like Go's encoding/json ------------------------------------------------


def go_float(value: float) -> str:
    """Format a float64 the way Go's ``encoding/json`` does."""
    if math.isnan(value) or math.isinf(value):
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        raise UnsupportedValue(f"json: unsupported value: {shown}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = repr(value).split("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_GO_ESCAPES["\u2029"] = "\\u2029"
_ESCAPE_RE = re.compile("[<>&\u2028\u2029\udc80-\udcff]")


def _go_string(text: str) -> str:
    """A JSON string as Go writes it. Text read from SQLite is decoded with
    ``surrogateescape``: each byte that is not valid UTF-8 is one ``\\udcXX`` here, and Go
    writes each such byte as the escape ``\\ufffd``."""
    encoded = json.dumps(text, ensure_ascii=False)
    return _ESCAPE_RE.sub(lambda m: _GO_ESCAPES.get(m.group(0), "\\ufffd"), encoded)


def dumps(value: JSONValue, *, indent: int | None = None) -> str:
    """Serialise like Go's ``json.Marshal`` (or ``MarshalIndent`` with ``indent`` spaces)."""
    parts: list[str] = []
    _encode(value, parts, indent, 0)
    return "".join(parts)


def _encode(value: JSONValue, out: list[str], indent: int | None, level: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, dict):
        _encode_items([(k, v) for k, v in value.items()], "{}", out, indent, level)
    elif isinstance(value, list):
        _encode_items([(None, v) for v in value], "[]", out, indent, level)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _encode_items(
    items: list[tuple[str | None, JSONValue]],
    brackets: str,
    out: list[str],
    indent: int | None,
    level: int,
) -> None:
    if not items:
        out.append(brackets)
        return
    out.append(brackets[0])
    for i, (key, item) in enumerate(items):
        if i:
            out.append(",")
        if indent is not None:
            out.append("\n" + " " * (indent * (level + 1)))
        if key is not None:
            out.append(_go_string(key) + (": " if indent is not None else ":"))
        _encode(item, out, indent, level + 1)
    if indent is not None:
        out.append("\n" + " " * (indent * level))
    out.append(brackets[1])


def blob_json(value: bytes, as_array: bool) -> JSONValue:
    """A BLOB value: base64 with padding, or (``blob_array``) a list of byte values."""
    if as_array:
        return list(value)
    return base64.b64encode(value).decode("ascii")
