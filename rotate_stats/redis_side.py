"""Everything the job does in Redis: the lock, claims, release, and reading.

Each multi-key step is one Lua script (one ``.lua`` file each, next to this
module), so it is atomic with respect to writers' HINCRBYs. ``Script``
objects from ``register_script`` run by EVALSHA and reload themselves on
NOSCRIPT, so a restarted Redis (empty script cache) is handled.

Redis is single-threaded: a long command stalls every client. So no command
this module sends does work proportional to a hash's width beyond a fixed
bound. Claims are RENAMEs (O(1) per key), release UNLINKs (the memory is freed
off the main thread), claim hashes are read with HGETALL only up to
``READ_CHUNK`` fields and with HSCAN chunks (``SCAN_CHUNK``) beyond, values are validated here
in Python, and a give-back moves at most ``GIVE_BACK_BUDGET`` fields per step.
Claim and release scripts take at most ``DATES_PER_CALL`` dates each; a batch
pipelines several calls in one round trip.

Not for Redis Cluster: a claim or release touches the keys of many dates in
one script, which Cluster only allows within one hash slot.
"""

from __future__ import annotations

import importlib.resources
import re
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from . import family
from .errors import ConfigError, DataError, FenceNotMet
from .invariants import DayCounts

DATES_PER_CALL = 16
"""Dates per claim or release script call: about 30 O(1) commands each."""
READ_CHUNK = 1000
"""Hashes up to this many fields are read with one HGETALL (about 1 ms in Redis)."""
SCAN_CHUNK = 500
"""Fields per HSCAN call on wider hashes."""
SCAN_PIPELINE = 4
"""HSCAN calls (of different keys) per round trip."""
GIVE_BACK_BUDGET = 500
"""Field operations per give-back step (give_back.lua)."""

_INT = re.compile(r"0|-?[1-9][0-9]*")
"""Canonical decimal integers, as Redis writes them (no "-0", no leading zeros)."""


@dataclass(frozen=True)
class Scripts:
    """The Lua scripts, registered once per client."""

    claim: Script
    release: Script
    give_back: Script
    lock_refresh: Script
    lock_release: Script
    record: Script
    prove: Script


_SCRIPTS: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()


def scripts_for(client: redis.Redis) -> Scripts:
    """The client's registered scripts (loaded from the package on first use)."""
    found = _SCRIPTS.get(client)
    if found is None:
        files = importlib.resources.files("rotate_stats")

        common = files.joinpath("_common.lua").read_text("utf-8")

        def load(name: str) -> Script:
            # the shared helpers first: Lua scripts cannot import one another
            text = files.joinpath(f"{name}.lua").read_text("utf-8")
            return client.register_script(common + "\n" + text)

        found = Scripts(
            claim=load("claim"),
            release=load("release"),
            give_back=load("give_back"),
            lock_refresh=load("lock_refresh"),
            lock_release=load("lock_release"),
            record=load("record"),
            prove=load("prove"),
        )
        _SCRIPTS[client] = found
    return found


_MIN_I64, _MAX_I64 = -(2**63), 2**63 - 1


def parse_count(key: str, field: str, raw: bytes | str) -> int:
    """A hash value as a signed 64-bit integer; DataError naming key and field otherwise."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not _INT.fullmatch(text):
        digits = re.fullmatch(r"-?[0-9]+", text) is not None  # "007", "-0": not as Redis writes
        expected = "a decimal integer without leading zeros" if digits else "a decimal integer"
        raise DataError(key, field, text, expected)
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise DataError(key, field, text, "an integer that fits in 64 bits")
    return value


def _decode_field(key: str, raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(key, repr(raw), raw, "a UTF-8 field name") from None


def parse_hash(key: str, flat: Sequence[Any] | Mapping[Any, Any]) -> dict[str, int]:
    """An HGETALL reply (flat list or dict) as field -> int, validated.

    Fast path (millions of values on a wide backlog): ``int()`` and a check that
    the value is written exactly as Redis writes that integer; anything else goes
    through ``parse_count`` for its error.
    """
    pairs = flat.items() if isinstance(flat, Mapping) else zip(flat[::2], flat[1::2], strict=True)
    out: dict[str, int] = {}
    for raw_field, raw_value in pairs:
        name = _decode_field(key, raw_field)
        if "\x00" in name:  # SQLite's JSON functions would cut the key there
            raise DataError(key, name, raw_value, "a field name without NUL characters")
        try:
            value = int(raw_value)
        except (TypeError, ValueError):
            value = None
        canonical = (
            value is not None
            and _MIN_I64 <= value <= _MAX_I64
            and (b"%d" % value if isinstance(raw_value, bytes) else str(value)) == raw_value
        )
        out[name] = value if canonical else parse_count(key, name, raw_value)  # type: ignore[assignment]
    return out


def day_from_hashes(keys: Sequence[str], hashes: Sequence[Any]) -> DayCounts:
    """Counts hash + breakdown hashes (in family order) as validated DayCounts."""
    counts = parse_hash(keys[0], hashes[0])
    for name in counts:
        if name not in family.EVENTS:
            raise DataError(keys[0], name, str(counts[name]), "a field named after an event")
    breakdowns = {
        event: parse_hash(key, flat)
        for event, key, flat in zip(family.EVENTS, keys[1:], hashes[1:], strict=True)
    }
    return DayCounts(counts, {e: bd for e, bd in breakdowns.items() if bd})


@dataclass(frozen=True)
class Fence:
    """How a batch's claims are made durable before they are committed.

    ``replicas``: WAIT for that many replicas; ``aof``: WAITAOF on the primary's
    own AOF. ``description`` says what is used; ``warning`` what is not covered.
    """

    replicas: int = 0
    aof: bool = False
    description: str = "none"
    warning: str = ""

    @property
    def active(self) -> bool:
        return self.replicas > 0 or self.aof


NO_DURABILITY = (
    "Redis has neither a replica nor AOF with WAITAOF: if it crashes or fails over, rotated "
    "claims it forgot come back as live counts and are rotated again (README: Redis "
    "requirements)"
)


@dataclass(frozen=True)
class Claim:
    """What the claim script found for one date, and what was read of it.

    ``state`` is ``pending`` (an earlier run's claim), ``claimed`` (cut now) or
    ``empty`` (no keys at all, ``claim_id`` is ""). ``owner`` is the prefix of
    the claim call that returned it: the pick-up marker a give-back must find
    (absent, or this value). ``lengths`` are the distinct fields read per claim
    hash and ``sources`` the identities of the servers the cut and the read
    came from (``prove`` checks both before a commit).
    """

    unix_date: int
    state: str
    claim_id: str
    day: DayCounts
    owner: str = ""
    lengths: tuple[int, ...] = ()
    sources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Cut:
    """A date's claim as the claim script left it, before anything was read.

    ``lengths`` are the HLENs of the seven claim hashes (counts, then breakdowns).
    """

    unix_date: int
    state: str
    claim_id: str
    lengths: tuple[int, ...] = (0,) * family.KEYS_PER_DATE
    owner: str = ""
    """The claim call's prefix (see ``Claim.owner``)."""
    identity: str = ""
    """The server that answered the claim call (``server_identity``)."""

    @property
    def fields(self) -> int:
        return sum(self.lengths)


@dataclass(frozen=True)
class Reading:
    """What ``read`` got: per cut its counts (or the error naming a bad value) and the
    distinct fields read per claim hash; and the identities of the servers that
    answered (more than one: the read spanned a restart or a failover)."""

    days: list[DayCounts | DataError]
    lengths: list[tuple[int, ...]]
    identities: frozenset[str]


@dataclass(frozen=True)
class Proof:
    """What the server about to be fenced holds of the claims about to be committed.

    ``identity`` is that server's (``server_identity``); ``missing`` maps a date
    whose claim is not there to the claim id found instead ("" when none);
    ``incomplete`` lists the dates whose claim hashes hold more (or fewer) fields
    than were read. The fence ran on the same connection, after the proof.
    """

    identity: str
    missing: dict[int, str]
    incomplete: frozenset[int]


PROOF_DATES_PER_CALL = 64
"""Dates per proof script call: a GET and up to 8 HLENs each, O(1): well under a ms."""

_IDENTITY_FIELDS = (("server", "run_id"), ("replication", "master_replid"))


def server_identity(replies: Sequence[Any]) -> str:
    """``run_id/master_replid`` from the replies to ``INFO server`` and ``INFO
    replication`` ("" where INFO is unavailable: fakeredis, a renamed command).

    A restarted server has a new ``run_id``; a promoted replica (or a primary
    that was made a replica and back, losing its data to a full sync) a new
    ``master_replid``: either way, not the server that answered before.
    """
    parts = []
    for reply, (_, name) in zip(replies, _IDENTITY_FIELDS, strict=True):
        value = reply.get(name, "") if isinstance(reply, dict) else ""
        parts.append(_text(value) if isinstance(value, (bytes, str)) else str(value))
    return "/".join(parts) if any(parts) else ""


def _probe(pipe: Any) -> None:
    """Append the identity commands to a pipeline (read by ``_execute``)."""
    for section, _ in _IDENTITY_FIELDS:
        pipe.execute_command("INFO", section)


def _execute(pipe: Any) -> tuple[list[Any], str]:
    """Run a pipeline that ends with ``_probe``: (the other replies, server identity).

    A pipeline runs on one connection, so on one server process (redis-py resends
    a whole pipeline on a new connection after a connection error): the identity
    names the server every reply came from. An error reply other than the probe's
    raises.
    """
    replies = pipe.execute(raise_on_error=False)
    mine, probe = replies[: -len(_IDENTITY_FIELDS)], replies[-len(_IDENTITY_FIELDS) :]
    for reply in mine:
        if isinstance(reply, Exception):
            raise reply
    return mine, server_identity(probe)


def _check_fence(fence: Fence, replies: Sequence[Any], timeout_ms: int) -> None:
    """FenceNotMet unless the WAITAOF / WAIT replies (in that order) meet the fence."""
    replies = list(replies)
    got: list[str] = []
    met = True
    if fence.aof:
        fsynced = int(replies.pop(0)[0]) >= 1
        met = met and fsynced
        got.append(f"local AOF {'fsynced' if fsynced else 'not fsynced'}")
    if fence.replicas:
        acked = int(replies.pop(0))
        met = met and acked >= fence.replicas
        got.append(f"{acked} replica(s)")
    if not met:
        raise FenceNotMet(fence.description, ", ".join(got), timeout_ms)


def refuse_replica(side: RedisSide) -> None:
    """ConfigError when the server is a replica: a URL naming a replica by mistake.

    Every write would fail with READONLY halfway through (or, on a writable
    replica, land where the primary's next sync erases it). Said at start,
    naming the primary the replica follows, before anything is touched.
    """
    replication = side.info("replication")
    role = _text(str(replication.get("role", "")))
    if role in ("slave", "replica"):
        primary = f"{replication.get('master_host', '?')}:{replication.get('master_port', '?')}"
        raise ConfigError(
            "Redis URL",
            f"a replica (role {role}, following {primary})",
            "the primary: the job writes (claims, releases, the lock); point "
            "ROTATE_STATS_REDIS_URL (or --redis-url) at the primary or at an address that "
            "always reaches it (Sentinel-managed VIP, proxy)",
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class RedisSide:
    """The job's view of one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.scripts = scripts_for(client)

    # -- earliest ---------------------------------------------------------------------------

    def read_earliest(self) -> int | None:
        """``earliest`` as a unix date, None when absent; DataError when not a date."""
        key = family.EARLIEST_KEY
        try:
            raw = self.client.get(key)
        except redis.ResponseError as exc:
            kind = _text(self.client.type(key))
            raise DataError(key, None, f"a {kind}", "a string holding a unix date") from exc
        if raw is None:
            return None
        text = _text(raw)
        if not _INT.fullmatch(text) or len(text) > 8 or not 0 <= int(text) <= family.MAX_UNIX_DATE:
            raise DataError(
                key,
                None,
                text,
                f"a unix date (whole days since 1970-01-01, 0 to {family.MAX_UNIX_DATE})",
            )
        return int(text)

    # -- durability ---------------------------------------------------------------------------

    def info(self, section: str) -> dict[str, Any]:
        """An INFO section; {} where INFO is unavailable (fakeredis, renamed commands)."""
        try:
            reply: dict[str, Any] = self.client.info(section)
        except redis.ResponseError:
            return {}
        return reply

    def resolve_fence(self, setting: str) -> Fence:
        """The fence for ``ROTATE_STATS_REDIS_FENCE`` (auto, none, aof, replicas:N).

        ``auto`` waits for every connected replica and, where the server has
        WAITAOF (Redis 7.2+, Valkey) and AOF is on, for the local AOF fsync; AOF
        with ``appendfsync always`` needs no wait. ConfigError when an explicit
        fence cannot be honoured by this server.
        """
        if setting == "none":
            return Fence(description="none (ROTATE_STATS_REDIS_FENCE=none)", warning=NO_DURABILITY)
        replication = self.info("replication")
        persistence = self.info("persistence")
        server = self.info("server")
        replicas = int(replication.get("connected_slaves", 0))
        aof_on = int(persistence.get("aof_enabled", 0)) == 1
        version = tuple(int(x) for x in str(server.get("redis_version", "0")).split(".")[:2])
        has_waitaof = version >= (7, 2)
        if setting.startswith("replicas:"):
            wanted = int(setting.split(":", 1)[1])
            return Fence(replicas=wanted, description=f"WAIT {wanted} replica(s)")
        if setting == "aof":
            if not (aof_on and has_waitaof):
                raise ConfigError(
                    "ROTATE_STATS_REDIS_FENCE",
                    setting,
                    "a server with WAITAOF (Redis 7.2+ or Valkey) and appendonly yes "
                    f"(this one: version {'.'.join(map(str, version))}, "
                    f"appendonly {'yes' if aof_on else 'no'})",
                )
            return Fence(aof=True, description="WAITAOF (local AOF fsync)")
        parts = [f"WAIT {replicas} replica(s)"] if replicas else []
        use_aof = aof_on and has_waitaof
        if use_aof:
            parts.append("WAITAOF (local AOF fsync)")
        elif aof_on and self.config("appendfsync") == "always":
            parts.append("AOF appendfsync always (no wait needed)")
        description = "auto: " + (" + ".join(parts) if parts else "nothing available")
        warning = "" if parts else NO_DURABILITY
        return Fence(replicas=replicas, aof=use_aof, description=description, warning=warning)

    def config(self, name: str) -> str | None:
        """A CONFIG GET value, or None where CONFIG is disabled (managed services)."""
        try:
            reply = self.client.config_get(name)
        except redis.ResponseError:
            return None
        value = reply.get(name) if isinstance(reply, dict) else None
        return _text(value) if value is not None else None

    def server_time(self) -> float:
        """Redis ``TIME`` as seconds since the epoch."""
        seconds, micros = self.client.time()
        return int(seconds) + int(micros) / 1e6

    # -- lock -------------------------------------------------------------------------------

    def acquire_lock(self, token: str, ttl_ms: int) -> bool:
        """Take the lock for ``ttl_ms`` unless another run holds it.

        A SET resent by the client after a lost answer finds the lock taken by
        its own first attempt: holding our token, it is ours.
        """
        if self.client.set(family.LOCK_KEY, token, nx=True, px=ttl_ms):
            return True
        return self.lock_holder()[0] == token

    def refresh_lock(self, token: str, ttl_ms: int) -> bool:
        """Extend the lock if this token still holds it."""
        return bool(self.scripts.lock_refresh(keys=[family.LOCK_KEY], args=[token, ttl_ms]))

    def release_lock(self, token: str) -> bool:
        """Delete the lock if this token still holds it."""
        return bool(self.scripts.lock_release(keys=[family.LOCK_KEY], args=[token]))

    def lock_holder(self) -> tuple[str | None, int | None]:
        """(token, milliseconds left) of the current holder, (None, None) when free."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(family.LOCK_KEY)
        pipe.pttl(family.LOCK_KEY)
        raw, ttl = pipe.execute()
        return (None, None) if raw is None else (_text(raw), int(ttl))

    # -- claim / release / restore --------------------------------------------------------

    def cut(
        self, dates: Sequence[int], run_id: str, floor: int = 0
    ) -> tuple[list[Cut], dict[int, DataError]]:
        """Claim the dates (RENAMEs only, one round trip); returns the cuts and, per date
        left untouched because a key has the wrong type, its error.

        A new claim's id is ``{run_id}.{random}/{date}/{sequence}``, the sequence
        drawn inside the script: a resent call (a client retry after a lost answer)
        cannot cut a second claim under an id the ledger has seen. The script first
        raises the sequence counter to ``floor`` (the highest sequence the database
        has seen for this family, ``database.sequence_floor``), so a counter that a
        restart from an old snapshot moved back still draws sequences above every
        pruned ledger entry's watermark.
        """
        # Unique per call, not per run: one run may claim a date twice (its retry
        # pass), and the ledger must see two different claims then.
        prefix = f"{run_id}.{uuid.uuid4().hex[:16]}"
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(dates), DATES_PER_CALL):
            chunk = dates[start : start + DATES_PER_CALL]
            keys: list[str] = []
            for d in chunk:
                keys += family.live_keys(d) + family.claim_keys(d)
                keys += [family.claim_id_key(d), family.claim_picked_key(d)]
            keys.append(family.CLAIM_SEQUENCE_KEY)
            self.scripts.claim(keys=keys, args=[len(chunk), prefix, floor, *chunk], client=pipe)
        _probe(pipe)
        calls, identity = _execute(pipe)
        replies = [r for chunk in calls for r in chunk]
        cuts: list[Cut] = []
        invalid: dict[int, DataError] = {}
        for d, reply in zip(dates, replies, strict=True):
            state = _text(reply[0])
            if state == "invalid":
                key, name, value, expected = (_text(x) for x in reply[1:5])
                invalid[d] = DataError(key, name or None, value, expected)
            elif state == "empty":
                cuts.append(Cut(d, state, "", owner=prefix, identity=identity))
            else:
                lengths = tuple(int(x) for x in reply[2:])
                cuts.append(Cut(d, state, _text(reply[1]), lengths, prefix, identity))
        return cuts, invalid

    def read(self, cuts: Sequence[Cut]) -> Reading:
        """Each cut's claim hashes, validated: its DayCounts, or the DataError that
        names the first bad key and field. Bounded reads (see the module docstring).

        Nothing here proves the read complete: a read that spanned two server
        processes (an HSCAN cursor resumed on a restarted or promoted server skips
        fields) shows as several ``identities``, and ``prove`` compares the fields
        read with the claim hashes on the server about to be fenced.
        """
        keys = [family.claim_keys(c.unix_date) for c in cuts]
        lengths = [c.lengths for c in cuts]
        hashes, identities = self._read_hashes(keys, lengths)
        days: list[DayCounts | DataError] = []
        for i, cut in enumerate(cuts):
            try:
                days.append(day_from_hashes(keys[i], hashes[i]) if cut.claim_id else DayCounts())
            except DataError as exc:
                days.append(exc)
        read_lengths = [tuple(len(h) for h in group) for group in hashes]
        return Reading(days, read_lengths, identities)

    def _read_hashes(
        self, keys: Sequence[Sequence[str]], lengths: Sequence[Sequence[int]]
    ) -> tuple[list[list[dict[bytes, bytes]]], frozenset[str]]:
        """HGETALL of every small hash in one round trip; HSCAN chunks for wide ones.
        Also the identities of the servers that answered (one per round trip)."""
        out: list[list[dict[bytes, bytes]]] = [[{} for _ in group] for group in keys]
        identities: set[str] = set()
        pipe = self.client.pipeline(transaction=False)
        small: list[tuple[int, int]] = []
        for i, (group, sizes) in enumerate(zip(keys, lengths, strict=True)):
            for j, (key, size) in enumerate(zip(group, sizes, strict=True)):
                if 0 < size <= READ_CHUNK:
                    pipe.hgetall(key)
                    small.append((i, j))
        if small:
            _probe(pipe)
            replies, identity = _execute(pipe)
            identities.add(identity)
            for (i, j), reply in zip(small, replies, strict=True):
                out[i][j] = reply
        # Wide hashes: HSCAN chunks of SCAN_CHUNK fields, SCAN_PIPELINE keys' next
        # chunks per round trip (Redis runs one client's pipeline back to back, so
        # this bounds how long other clients wait). A claim hash no longer changes:
        # HSCAN returns each field at least once (a duplicate has the same value) -
        # on one server process; a cursor resumed on another skips fields, which
        # the identities and the proof's field count catch.
        wide = [
            (i, j, key)
            for i, (group, sizes) in enumerate(zip(keys, lengths, strict=True))
            for j, (key, size) in enumerate(zip(group, sizes, strict=True))
            if size > READ_CHUNK
        ]
        cursors = dict.fromkeys(((i, j) for i, j, _ in wide), 0)
        while wide:
            step = wide[:SCAN_PIPELINE]
            pipe = self.client.pipeline(transaction=False)
            for i, j, key in step:
                pipe.hscan(key, cursors[i, j], count=SCAN_CHUNK)
            _probe(pipe)
            replies, identity = _execute(pipe)
            identities.add(identity)
            for (i, j, key), (cursor, fields) in zip(step, replies, strict=True):
                out[i][j].update(fields)
                cursors[i, j] = int(cursor)
                if not cursor:
                    wide.remove((i, j, key))
        return out, frozenset(identities)

    def claim(self, dates: Sequence[int], run_id: str) -> tuple[list[Claim], DataError | None]:
        """Claim and read the dates; returns the claims and the first date's error.

        A date whose key has the wrong type is left untouched; a date claimed but
        unparsable is given back whole (unless another run picked it up since).
        Either way the batch's other dates go on.
        """
        cuts, errors = self.cut(dates, run_id)
        claims = self.take(cuts, errors)
        first = min(errors) if errors else None
        return claims, errors[first] if first is not None else None

    def take(self, cuts: Sequence[Cut], errors: dict[int, DataError]) -> list[Claim]:
        """Read the cuts; the unparsable ones are given back and their errors added."""
        claims: list[Claim] = []
        reading = self.read(cuts)
        for cut, day, lengths in zip(cuts, reading.days, reading.lengths, strict=True):
            if isinstance(day, DataError):
                errors[cut.unix_date] = self.give_back_unparsable(cut, day)
            else:
                sources = reading.identities | {cut.identity}
                claims.append(
                    Claim(cut.unix_date, cut.state, cut.claim_id, day, cut.owner, lengths, sources)
                )
        return claims

    def give_back_unparsable(self, cut: Cut, exc: DataError) -> DataError:
        """Give back a claim no run can parse, whole; the error to report, naming the live
        key where the bad value now is.

        No run can have committed it (a commit needs a complete, proven read, which
        would have met the same value). Like every give-back it honours the pick-up
        marker: a claim another run picked up since is left to that run, which may
        be reading it.
        """
        d = cut.unix_date
        outcome = self.restore(Claim(d, cut.state, cut.claim_id, DayCounts(), cut.owner))
        if outcome == "restored":  # name the live key, where the value now is
            live = dict(zip(family.claim_keys(d), family.live_keys(d), strict=True))
            return DataError(
                live.get(exc.key, exc.key),
                exc.field,
                exc.value,
                exc.expected,
                "the date was left in Redis; fix or delete that field, then run again",
            )
        return DataError(
            exc.key,
            exc.field,
            exc.value,
            exc.expected,
            f"it could not be given back to the live keys ({outcome}); it stays claimed "
            f"under {family.claim_id_key(d)}",
        )

    def prove(self, claims: Sequence[Claim], fence: Fence, token: str, timeout_ms: int) -> Proof:
        """Prove that the server about to be fenced holds these claims as they were read,
        then fence: one pipeline, so one connection and one server process.

        Per claim, ``prove.lua`` compares the claim id and the length of each claim
        hash with what was read (O(1) per key; ``PROOF_DATES_PER_CALL`` dates per
        call) and writes the fence key; ``WAIT`` / ``WAITAOF`` follow on the same
        connection, so the fence covers the proven claims on that very server.
        Having replicas proves nothing by itself: after a failover behind one
        address, a promoted replica that never got a claim has its counts in its
        live keys, and committing the claim would count them twice.

        Raises FenceNotMet when the fence is not met in ``timeout_ms``.
        """
        pipe = self.client.pipeline(transaction=False)
        ttl = max(timeout_ms * 2, 60_000)
        calls = 0
        for start in range(0, len(claims), PROOF_DATES_PER_CALL):
            chunk = claims[start : start + PROOF_DATES_PER_CALL]
            keys: list[str] = []
            args: list[str | int] = [len(chunk), token, ttl]
            for claim in chunk:
                hashes = family.claim_keys(claim.unix_date)
                keys += [family.claim_id_key(claim.unix_date), *hashes]
                lengths = claim.lengths or (0,) * len(hashes)
                args += [claim.claim_id, len(hashes), *lengths]
            keys.append(family.FENCE_KEY)
            self.scripts.prove(keys=keys, args=args, client=pipe)
            calls += 1
        if not calls:  # nothing to prove: still fence every write so far
            pipe.set(family.FENCE_KEY, token, px=ttl)
        if fence.aof:
            pipe.execute_command("WAITAOF", 1, 0, timeout_ms)  # type: ignore[no-untyped-call]
        if fence.replicas:
            pipe.execute_command("WAIT", fence.replicas, timeout_ms)  # type: ignore[no-untyped-call]
        _probe(pipe)
        replies, identity = _execute(pipe)
        verdicts = [v for reply in replies[:calls] for v in reply]
        missing: dict[int, str] = {}
        incomplete: set[int] = set()
        for claim, verdict in zip(claims, verdicts, strict=True):
            code = int(verdict[0])
            if code == 0:
                missing[claim.unix_date] = _text(verdict[1])
            elif code == 2:
                incomplete.add(claim.unix_date)
        _check_fence(fence, replies[calls if calls else 1 :], timeout_ms)
        return Proof(identity, missing, frozenset(incomplete))

    def release(self, dates: Sequence[int], claim_ids: Sequence[str]) -> tuple[list[bool], str]:
        """Delete committed claims and advance earliest; returns (released, earliest after).

        Calls of ``DATES_PER_CALL`` dates run in order in one pipeline: each moves
        ``earliest`` only from its own first date, so a date still blocked in one
        call holds ``earliest`` for the later calls too.
        """
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(dates), DATES_PER_CALL):
            chunk = dates[start : start + DATES_PER_CALL]
            ids = claim_ids[start : start + DATES_PER_CALL]
            keys: list[str] = []
            for d in chunk:
                keys += family.claim_keys(d) + [family.claim_id_key(d)] + family.live_keys(d)
                keys.append(family.claim_picked_key(d))
            keys.append(family.EARLIEST_KEY)
            self.scripts.release(keys=keys, args=[len(chunk), *ids, *chunk], client=pipe)
        released: list[bool] = []
        earliest = ""
        for flags, after in pipe.execute():
            released += [bool(x) for x in flags]
            earliest = _text(after)
        return released, earliest

    def restore(self, claim: Claim | Cut) -> str:
        """Give a claim back to the live keys (adding counts), in bounded steps.

        Refused once another run picked the claim up (the pick-up marker is set and
        is not ``claim.owner``): that run may be reading or committing it.
        Returns "restored", "changed" (not the expected claim any more), "picked up
        by another run", or why a value made a step refuse. Each step moves fields
        whole (give_back.lua): however it ends, every count is in exactly one place.
        """
        d = claim.unix_date
        keys = [
            *family.claim_keys(d),
            family.claim_id_key(d),
            *family.live_keys(d),
            family.EARLIEST_KEY,
            family.claim_picked_key(d),
        ]
        while True:
            args: list[str | int] = [claim.claim_id, d, claim.owner, GIVE_BACK_BUDGET]
            reply = self.scripts.give_back(keys=keys, args=args)
            code = int(reply[0])
            if code == 2:
                continue
            if code == 1:
                return "restored"
            if code == 0:
                return "changed"
            if code == -1:
                return "picked up by another run"
            key, name, value, expected = (_text(x) for x in reply[1:5])
            return f"{key} field {name!r} holds {value!r}, expected {expected}"

    # -- read-only views ---------------------------------------------------------------------

    def peek(self, dates: Sequence[int]) -> list[tuple[DayCounts, DayCounts | None]]:
        """(live counts, pending claim or None) per date, read without changing anything;
        DataError for the first date with bad data."""
        out: list[tuple[DayCounts, DayCounts | None]] = []
        for found in self.peek_each(dates):
            if isinstance(found, DataError):
                raise found
            out.append(found)
        return out

    def peek_each(
        self, dates: Sequence[int]
    ) -> list[tuple[DayCounts, DayCounts | None] | DataError]:
        """``peek`` per date: a date with bad data (a key of the wrong type, a value that
        is not a 64-bit integer) gives its DataError, and the other dates are read."""
        pipe = self.client.pipeline(transaction=False)
        for d in dates:
            for key in family.live_keys(d) + family.claim_keys(d):
                pipe.type(key)
                pipe.hlen(key)
            pipe.exists(family.claim_id_key(d))
        replies = pipe.execute(raise_on_error=False)  # HLEN of a non-hash: named below
        width = 2 * 2 * family.KEYS_PER_DATE + 1
        keys: list[list[str]] = []
        lengths: list[list[int]] = []
        pending: list[bool] = []
        bad: dict[int, DataError] = {}
        for i, d in enumerate(dates):
            chunk = replies[i * width : (i + 1) * width]
            names = family.live_keys(d) + family.claim_keys(d)
            for name, kind in zip(names, chunk[0:-1:2], strict=True):
                if _text(kind) not in ("hash", "none") and d not in bad:
                    bad[d] = DataError(name, None, f"a {_text(kind)}", "a hash")
            keys.append(names)
            lengths.append([0 if d in bad else int(x) for x in chunk[1:-1:2]])
            pending.append(bool(chunk[-1]))
        hashes, _ = self._read_hashes(keys, lengths)
        out: list[tuple[DayCounts, DayCounts | None] | DataError] = []
        for d, found, has_claim in zip(dates, hashes, pending, strict=True):
            if d in bad:
                out.append(bad[d])
                continue
            n = family.KEYS_PER_DATE
            try:
                live = day_from_hashes(family.live_keys(d), found[:n])
                claimed = day_from_hashes(family.claim_keys(d), found[n:])
            except DataError as exc:
                out.append(exc)
                continue
            out.append((live, claimed if has_claim else None))
        return out

    def scan_dated_keys(self) -> dict[int, list[str]]:
        """Every live or claim stats key, by date (SCAN: O(keyspace))."""
        return self.scan_keys()[0]

    def scan_keys(self) -> tuple[dict[int, list[str]], list[str]]:
        """(stats keys by date, unknown keys of the namespaces that name a date), one SCAN."""
        found: dict[int, list[str]] = {}
        unknown: list[str] = []
        for pattern in (family.LIVE_PATTERN, family.CLAIM_PATTERN):
            for raw in self._scan(pattern):
                key = _text(raw)
                parsed = family.parse_dated_key(key)
                if parsed is None:
                    continue
                if parsed[1]:
                    found.setdefault(parsed[0], []).append(key)
                else:
                    unknown.append(key)
        return found, sorted(unknown)

    def claim_ids(self) -> set[str]:
        """The ids of every claim in Redis now (SCAN of the claim namespace)."""
        keys = [_text(k) for k in self._scan(family.CLAIM_PATTERN) if _text(k).endswith(":id")]
        out: set[str] = set()
        for start in range(0, len(keys), 1000):
            values = self.client.mget(keys[start : start + 1000])
            out.update(_text(v) for v in values if v is not None)
        return out

    def existing(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` exist now (pipelined EXISTS, 1,000 per round trip)."""
        out: set[str] = set()
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                pipe.exists(key)
            out.update(k for k, n in zip(chunk, pipe.execute(), strict=True) if n)
        return out

    def _scan(self, pattern: str) -> Iterator[bytes | str]:
        yield from self.client.scan_iter(match=pattern, count=1000)

    def refusals(self) -> dict[str, int]:
        """Recorder refusals so far: ``{unix_date}:{event}`` -> increments refused."""
        return parse_hash(family.REFUSED_KEY, self.client.hgetall(family.REFUSED_KEY))
