"""Generated backlogs: one valid day of counts of a given breakdown width, copied to N dates.

Width W is the number of fields of each *reasoned* breakdown hash
(``failed`` and ``failed_to_queue``, keyed ``{type}:{reason}``): the grammar
lets only those grow, since the four *typed* breakdowns are keyed by job type
and there are five documented types. So a date holds 6 + 4 x min(W, 5) + 2 x W
fields over its 7 hashes (W = 5: every hash has 5 breakdown fields).

Reasons are spread over the five types; ``failed`` reasons are free-form
(``{type}:llm_error_{r}``), ``failed_to_queue`` ones are rate-limit reasons
(``{type}:ratelimited:user_queued_jobs:{r}:10``), which the grammar accepts for
any number. Per type, ``started = completed + failed``, ``queued = started``
and ``requested = failed_to_queue + queued``; counts are the breakdown sums, so
every invariant holds (checked with ``rotate_stats.invariants`` when built)
and the job commits the dates without findings.

Seeding: each of the 7 hashes is written once with HSET (10,000 fields per
command) under a scratch key and DUMPed; every date then gets a RESTORE of
each blob, pipelined. A backlog of 3,650 dates x 100 fields seeds in well
under a second, and every run sees identical data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from rotate_stats import family
from rotate_stats.invariants import DayCounts, check_day

SCRATCH = "bench:template"
HSET_FIELDS = 10_000
PIPELINE_BYTES = 8 << 20


@dataclass(frozen=True)
class DayTemplate:
    """One date's hashes: the counts hash, then the breakdown hashes in EVENTS order."""

    width: int
    hashes: tuple[dict[str, int], ...]
    blobs: list[bytes] = field(default_factory=list, compare=False)

    @property
    def counts(self) -> dict[str, int]:
        return self.hashes[0]

    @property
    def fields(self) -> int:
        """Fields over all 7 hashes of one date."""
        return sum(len(h) for h in self.hashes)


def day_template(width: int) -> DayTemplate:
    """A valid day with ``width`` fields in each reasoned breakdown (see the module doc)."""
    if width < 1:
        raise ValueError("width must be at least 1")
    types = sorted(family.JOB_TYPES)
    failed: dict[str, int] = {}
    failed_to_queue: dict[str, int] = {}
    for r in range(width):
        job_type = types[r % len(types)]
        failed[f"{job_type}:llm_error_{r}"] = 1 + r % 3
        failed_to_queue[f"{job_type}:ratelimited:user_queued_jobs:{r}:10"] = 1 + r % 2
    typed: dict[str, dict[str, int]] = {e: {} for e in family.TYPED_EVENTS}
    for i, job_type in enumerate(types[: min(width, len(types))]):
        f = sum(v for k, v in failed.items() if k.startswith(job_type + ":"))
        q = sum(v for k, v in failed_to_queue.items() if k.startswith(job_type + ":"))
        completed = 10 + i
        started = completed + f
        typed["completed"][job_type] = completed
        typed["started"][job_type] = started
        typed["queued"][job_type] = started
        typed["requested"][job_type] = q + started
    breakdowns = {**typed, "failed": failed, "failed_to_queue": failed_to_queue}
    counts = {e: sum(breakdowns[e].values()) for e in family.EVENTS}
    findings = check_day(0, DayCounts(counts, breakdowns))
    if findings:
        raise AssertionError(f"generated day violates an invariant: {findings[0]}")
    return DayTemplate(width, (counts, *(breakdowns[e] for e in family.EVENTS)))


def prepare(client: redis.Redis, template: DayTemplate) -> None:
    """DUMP the template's hashes into ``template.blobs`` (once per server)."""
    if template.blobs:
        return
    for i, mapping in enumerate(template.hashes):
        key = f"{SCRATCH}:{i}"
        client.delete(key)
        items = list(mapping.items())
        for start in range(0, len(items), HSET_FIELDS):
            client.hset(key, mapping=dict(items[start : start + HSET_FIELDS]))
        blob = client.dump(key)
        assert isinstance(blob, bytes)
        template.blobs.append(blob)
        client.delete(key)


def seed(client: redis.Redis, template: DayTemplate, dates: Sequence[int]) -> None:
    """FLUSHALL, then the template's hashes for every date and ``earliest`` = the first."""
    prepare(client, template)
    client.flushall()
    pipe = client.pipeline(transaction=False)
    queued = 0
    for d in dates:
        for key, blob in zip(family.live_keys(d), template.blobs, strict=True):
            pipe.restore(key, 0, blob)
            queued += len(blob) + len(key)
        if queued > PIPELINE_BYTES:
            pipe.execute()
            queued = 0
    pipe.set(family.EARLIEST_KEY, dates[0])
    pipe.execute()
