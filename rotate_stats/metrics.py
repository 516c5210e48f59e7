"""A run's metrics in the Prometheus text exposition format (issue 10, #15).

Written for node_exporter's textfile collector: the whole file is replaced
atomically (a temporary file in the same directory, then ``os.replace``), so
the collector never reads half a file. Pure apart from the file itself.

Metrics (all gauges; one file describes the last run):

==========================================  =============================================
rotate_stats_last_run_timestamp_seconds     when the last run finished
rotate_stats_last_success_timestamp_seconds when a run last succeeded (exit 0 or 3),
                                            carried over from the previous file otherwise
rotate_stats_last_exit_code                 the last run's exit code
rotate_stats_duration_seconds               how long the last run took
rotate_stats_dates{state}                   dates of the last run, by state
rotate_stats_findings{invariant}            invariant findings of the last run
rotate_stats_bad_dates                      dates the last run left in Redis with bad data
rotate_stats_bad_date{date,key,field,...}   1 per such date: where the bad value is, what
                                            it is, and the commands that repair it
rotate_stats_backlog_days                   stable dates still in Redis after the run
rotate_stats_pending_claims                 claims still in Redis after the run
rotate_stats_refused_writes                 late writes the recorder refused, ever
==========================================  =============================================

The last three are left out when the run did not get as far as reading Redis.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SUCCESS_EXIT_CODES = frozenset({0, 3})
"""Exit codes that count as a success: the job did its work (3: and found violations in
the data, reported by ``rotate_stats_findings``)."""

PREFIX = "rotate_stats_"


@dataclass(frozen=True)
class RunMetrics:
    """What the metrics file says about one run."""

    finished_at: float
    exit_code: int
    duration_seconds: float
    last_success: float | None = None
    """Set from ``finished_at`` on success; otherwise the previous file's value."""
    dates: Mapping[str, int] = field(default_factory=dict)
    findings: Mapping[str, int] = field(default_factory=dict)
    backlog_days: int | None = None
    pending_claims: int | None = None
    refused_writes: int | None = None
    bad_dates: Sequence[Mapping[str, str]] = ()
    """Per bad date, its labels: date, key, field, value, expected, repair."""


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


def render(m: RunMetrics) -> str:
    """The text exposition: HELP and TYPE once per metric, then its samples."""
    lines: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {PREFIX}{name} {help_text}")
        lines.append(f"# TYPE {PREFIX}{name} gauge")
        lines.extend(f"{PREFIX}{name}{labels} {_number(value)}" for labels, value in samples)

    metric(
        "last_run_timestamp_seconds",
        "Unix time the last rotation run finished.",
        [("", m.finished_at)],
    )
    if m.last_success is not None:
        metric(
            "last_success_timestamp_seconds",
            "Unix time a rotation run last succeeded (exit code 0 or 3).",
            [("", m.last_success)],
        )
    metric("last_exit_code", "Exit code of the last rotation run.", [("", m.exit_code)])
    metric("duration_seconds", "Seconds the last rotation run took.", [("", m.duration_seconds)])
    metric(
        "dates",
        "Dates the last rotation run handled, by state.",
        [(f'{{state="{escape_label(k)}"}}', v) for k, v in sorted(m.dates.items())],
    )
    metric(
        "findings",
        "Invariant findings of the last rotation run, by invariant.",
        [(f'{{invariant="{escape_label(k)}"}}', v) for k, v in sorted(m.findings.items())],
    )
    metric(
        "bad_dates",
        "Dates the last rotation run left in Redis with bad data (exit 1 until repaired).",
        [("", len(m.bad_dates))],
    )
    if m.bad_dates:
        metric(
            "bad_date",
            "A date the last run left in Redis with bad data: key, field, value, repair.",
            [
                ("{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in b.items()) + "}", 1)
                for b in m.bad_dates
            ],
        )
    if m.backlog_days is not None:
        metric(
            "backlog_days",
            "Stable dates still in Redis after the last run.",
            [("", m.backlog_days)],
        )
    if m.pending_claims is not None:
        metric(
            "pending_claims",
            "Claims still in Redis after the last run (a failed commit leaves them).",
            [("", m.pending_claims)],
        )
    if m.refused_writes is not None:
        metric(
            "refused_writes",
            "Late writes the recorder refused since the refusal counter was created.",
            [("", m.refused_writes)],
        )
    return "\n".join(lines) + "\n"


_LAST_SUCCESS = re.compile(
    rf"^{PREFIX}last_success_timestamp_seconds(?:\{{\}})?\s+(\S+)(?:\s+\S+)?$", re.MULTILINE
)


def read_last_success(path: str) -> float | None:
    """``rotate_stats_last_success_timestamp_seconds`` from an earlier file, if any.

    Anything but a regular file (a FIFO would block the open forever), an
    unreadable, corrupt or hand-edited file, or a value that is not a finite
    number gives None: the run's own result is what matters.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            text = f.read(1 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    match = _LAST_SUCCESS.search(text)
    if match is None:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


STALE_TEMP_SECONDS = 600.0
"""A temporary file of ours older than this was left by a killed run: removed."""


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (readers see the old or the new file).

    The temporary file starts with a dot and ends in ``.tmp``, so the textfile
    collector (which reads ``*.prom``) never picks it up; it is removed on failure,
    and those a killed run left behind are removed by the next write (once older
    than ``STALE_TEMP_SECONDS``: a younger one may be a concurrent run's).
    """
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp", text=True
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the collector runs as another user
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _remove_stale_temporaries(directory: str, name: str) -> None:
    pattern = os.path.join(glob.escape(directory), f".{glob.escape(name)}.*.tmp")
    limit = time.time() - STALE_TEMP_SECONDS
    for leftover in glob.glob(pattern, include_hidden=True):
        try:
            if os.lstat(leftover).st_mtime < limit:
                os.unlink(leftover)
        except OSError:  # gone already, or not ours to remove: the write goes on
            pass


def write_metrics(path: str, m: RunMetrics) -> RunMetrics:
    """Write ``m`` to ``path``; a failed run carries the last success time over from
    the file it replaces. Returns what was written."""
    if m.exit_code in SUCCESS_EXIT_CODES:
        m = _with_success(m, m.finished_at)
    else:
        m = _with_success(m, read_last_success(path))
    write_atomically(path, render(m))
    return m


def _with_success(m: RunMetrics, when: float | None) -> RunMetrics:
    return dataclasses.replace(m, last_success=when)
