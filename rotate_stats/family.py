"""What the journal chat job stats family is: events, Redis keys, table and grammar.

Every Redis key name this project touches is built here and nowhere else.
Pure: no I/O imports.

Live keys are the ones writers increment (seed 002, "Stats namespace").
Claim keys are ours: a run renames a date's live keys to claim keys before
reading them, so writes arriving afterwards land in fresh live keys. Claims
live under their own prefix so that nothing that scans or writes the live
namespace ever mistakes them for live data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

EVENTS: tuple[str, ...] = (
    "requested",
    "failed_to_queue",
    "queued",
    "started",
    "completed",
    "failed",
)
"""Event names: the fields of the counts hash and the columns of the table, in order."""

TYPED_EVENTS = frozenset({"requested", "queued", "started", "completed"})
"""Events whose breakdown is keyed by job type alone."""

REASONED_EVENTS = frozenset({"failed_to_queue", "failed"})
"""Events whose breakdown is keyed ``{type}:{reason}``."""

JOB_TYPES = frozenset({"greeting", "system_chat", "reflection_question", "sync", "summarize"})
"""Documented job types (seed 000)."""

TOLERATED_JOB_TYPES = frozenset({"unknown"})
"""Emitted by existing writers when the type could not be determined; accepted by the grammar."""

FAILED_TO_QUEUE_REASONS = frozenset(
    {
        "locked",
        "user_not_found",
        "encryption_failed",
        "journal_entry_not_found",
        "journal_entry_item_not_found",
        "decryption_failed",
        "bad_state",
    }
)
RATELIMIT_RESOURCES = frozenset({"user_queued_jobs", "total_queued_jobs"})
_RATELIMITED = re.compile(r"ratelimited:(?P<resource>[a-z_]+):(?P<at>[0-9]+):(?P<limit>[0-9]+)")

NAME = "journal_chat_jobs"
"""The family's name: its rows in the job's own tables (ledger, watermarks) carry it."""
TABLE = "journal_chat_job_stats"
CLAIMS_TABLE = "rotate_stats_applied_claims"
WATERMARKS_TABLE = "rotate_stats_claim_watermarks"
"""Per (family, date), the highest claim sequence whose ledger entry was pruned."""
MIGRATIONS_TABLE = "rotate_stats_migrations"
COLUMNS: tuple[str, ...] = (
    "retrieved_for",
    "retrieved_at",
    *(col for event in EVENTS for col in (event, f"{event}_breakdown")),
)
"""Table columns except ``id``, in schema order (seed 000)."""

LIVE_PREFIX = "stats:journal_chat_jobs:daily"
OWN_PREFIX = "rotate_stats:journal_chat_jobs"
EARLIEST_KEY = f"{LIVE_PREFIX}:earliest"
LOCK_KEY = f"{OWN_PREFIX}:lock"
REFUSED_KEY = f"{OWN_PREFIX}:refused"
"""Hash ``{unix_date}:{event}`` -> increments the recorder refused because the date was rotated."""
FENCE_KEY = f"{OWN_PREFIX}:fence"
"""Written right before WAIT/WAITAOF so that the wait covers every earlier write."""
CLAIM_SEQUENCE_KEY = f"{OWN_PREFIX}:claim_sequence"
"""A counter the claim script increments for every claim it cuts (part of the id)."""

LIVE_PATTERN = f"{LIVE_PREFIX}:*"
CLAIM_PATTERN = f"{OWN_PREFIX}:claim:*"
_DATED_KEY = re.compile(
    rf"^(?P<ns>{re.escape(LIVE_PREFIX)}|{re.escape(OWN_PREFIX)}:claim):(?P<date>-?[0-9]+)"
    r"(?P<rest>:.*)?$",
    re.DOTALL,
)
_KNOWN_SUFFIXES = frozenset(["", *(f":extra:{event}" for event in EVENTS)])
MAX_UNIX_DATE = 2_932_896
"""9999-12-31, the last date ``retrieved_for`` (YYYY-MM-DD) can name."""

KEYS_PER_DATE = 1 + len(EVENTS)
"""Hashes per date and side: the counts hash and one breakdown hash per event."""


def counts_key(unix_date: int) -> str:
    """The live counts hash of a date: event -> count."""
    return f"{LIVE_PREFIX}:{unix_date}"


def extra_key(unix_date: int, event: str) -> str:
    """The live breakdown hash of one event of a date: breakdown key -> count."""
    return f"{LIVE_PREFIX}:{unix_date}:extra:{event}"


def live_keys(unix_date: int) -> list[str]:
    """Counts hash then the breakdown hashes in EVENTS order."""
    return [counts_key(unix_date), *(extra_key(unix_date, e) for e in EVENTS)]


def claim_keys(unix_date: int) -> list[str]:
    """Claim-side twins of :func:`live_keys`, same order."""
    base = f"{OWN_PREFIX}:claim:{unix_date}"
    return [base, *(f"{base}:extra:{e}" for e in EVENTS)]


def claim_picked_key(unix_date: int) -> str:
    """Marker set when a run picks the date's claim up as pending (see restore.lua)."""
    return f"{OWN_PREFIX}:claim:{unix_date}:picked"


def claim_id_key(unix_date: int) -> str:
    """String holding the id of the date's current claim; absent when there is none."""
    return f"{OWN_PREFIX}:claim:{unix_date}:id"


_SEQUENCE = re.compile(r"/([0-9]+)\Z")
_MAX_SEQUENCE = 2**63 - 1


def claim_sequence(claim_id: str) -> int | None:
    """The sequence a claim id ends with (``.../{date}/{sequence}``, drawn by claim.lua),
    or None for an id of another shape. Read as migration 0003's SQL backfill reads it:
    SQLite's CAST clamps a number past 64 bits to 2^63 - 1."""
    match = _SEQUENCE.search(claim_id)
    if match is None:
        return None
    digits = match.group(1).lstrip("0") or "0"
    return _MAX_SEQUENCE if len(digits) > 19 else min(int(digits), _MAX_SEQUENCE)


def date_of_key(key: str) -> int | None:
    """The unix date a live or claim stats key belongs to; None for any other key."""
    parsed = parse_dated_key(key)
    return parsed[0] if parsed is not None and parsed[1] else None


def parse_dated_key(key: str) -> tuple[int, bool] | None:
    """``(date, known)`` for a key of the live or claim namespace that names a date.

    ``known`` is False for a key this job does not know (a suffix such as
    ``:extra:cancelled``, or a date outside 1970-01-01..9999-12-31): reported,
    never rotated. None for keys that name no date (``earliest``, the lock...).
    """
    match = _DATED_KEY.match(key)
    if match is None:
        return None
    digits, rest = match.group("date"), match.group("rest") or ""
    date = int(digits) if len(digits) <= 8 else -1  # int() of 5,000 digits would raise
    claim_side = match.group("ns") != LIVE_PREFIX
    known = rest in _KNOWN_SUFFIXES or (claim_side and rest in (":id", ":picked"))
    return date, known and 0 <= date <= MAX_UNIX_DATE


def breakdown_type(event: str, breakdown: str) -> str:
    """The job type a breakdown key counts: the key itself or its prefix before ``:``."""
    if event in REASONED_EVENTS:
        return breakdown.split(":", 1)[0]
    return breakdown


@functools.lru_cache(maxsize=1 << 16)  # the same keys come back date after date
def grammar_problem(event: str, breakdown: str) -> str | None:
    """Why a breakdown key does not follow the grammar of DESIGN §3, or None if it does."""
    if event in REASONED_EVENTS:
        job_type, sep, reason = breakdown.partition(":")
        if not sep or not reason:
            return "expected {type}:{reason}"
    else:
        job_type, reason = breakdown, ""
    if job_type not in JOB_TYPES and job_type not in TOLERATED_JOB_TYPES:
        return f"unknown job type {job_type!r}"
    if event == "failed_to_queue" and reason not in FAILED_TO_QUEUE_REASONS:
        match = _RATELIMITED.fullmatch(reason)
        if match is None:
            return f"unknown failed_to_queue reason {reason!r}"
        if match.group("resource") not in RATELIMIT_RESOURCES:
            return f"unknown ratelimit resource {match.group('resource')!r}"
    return None


def sorted_types(breakdowns: Iterable[tuple[str, dict[str, int]]]) -> list[str]:
    """Every job type that appears in the given (event, breakdown) pairs, sorted."""
    types = {breakdown_type(event, key) for event, bd in breakdowns for key in bd}
    return sorted(types)
