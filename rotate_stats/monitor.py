"""One CLI run as monitoring sees it: the metrics file and the heartbeat (issue 10 #15).

``RunMonitor`` is made before anything else can fail (so a usage error is in the
metrics too), is shown the report when there is one, and at the end writes the
metrics file and pings the heartbeat. Neither can change the run's exit code:
a failure to write or ping is logged.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from . import family
from .dates import iso, last_stable
from .errors import ConfigError, mask_text
from .health import backlog_dates
from .heartbeat import ping, url_problem
from .invariants import Invariant
from .metrics import SUCCESS_EXIT_CODES, RunMetrics, write_metrics
from .render import printable
from .report import EXIT_MEANINGS, BadDate, DateState, ExitCode, RotationReport

log = logging.getLogger("rotate_stats")

METRICS_FILE_VARIABLE = "ROTATE_STATS_METRICS_FILE"
HEARTBEAT_URL_VARIABLE = "ROTATE_STATS_HEARTBEAT_URL"

_MORE = re.compile(r"^\.\.\. and ([0-9]+) more ")
"""The summary finding ``report.aggregate`` puts after the first few of a group."""


MAX_CHECKED_DAYS = 3660
"""The longest span of dates whose keys the metrics look up after a run."""


class RunMonitor:
    """Collects what the metrics file and the heartbeat report about one run."""

    def __init__(
        self,
        metrics_file: str | None,
        heartbeat_url: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics_file = metrics_file
        self.heartbeat_url = heartbeat_url
        self.clock = clock
        self.started = clock()
        self.report: RotationReport | None = None
        self.backlog_days: int | None = None
        self.pending_claims: int | None = None
        self.refused_writes: int | None = None

    @classmethod
    def from_environment(
        cls, metrics_file: str | None, environ: Mapping[str, str]
    ) -> RunMonitor | None:
        """From ``--metrics-file`` (or ``ROTATE_STATS_METRICS_FILE``) and
        ``ROTATE_STATS_HEARTBEAT_URL``; None when neither is set.

        Raises ConfigError when the metrics file's directory does not exist or is
        not writable: said at once, not discovered after the run.
        """
        path = metrics_file or environ.get(METRICS_FILE_VARIABLE, "").strip() or None
        url = environ.get(HEARTBEAT_URL_VARIABLE, "").strip() or None
        if path is not None:
            name = "--metrics-file" if metrics_file else METRICS_FILE_VARIABLE
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
                raise ConfigError(name, path, "a file in an existing, writable directory")
            if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
                # a symlink would be replaced by a plain file (and following one would
                # let whoever writes the directory aim the job at any of its files)
                raise ConfigError(
                    name,
                    path,
                    "a regular file or none yet (not a symlink, directory or FIFO): "
                    "give the real path",
                )
        problem = None if url is None else url_problem(url)
        if problem is not None:
            raise ConfigError(
                HEARTBEAT_URL_VARIABLE,
                "***",  # its path is the secret
                f"an http:// or https:// URL with a host, such as https://hc-ping.com/UUID "
                f"({problem})",
            )
        return cls(path, url) if path or url else None

    def observe(self, report: RotationReport, client: Any) -> None:
        """Take the report, and read what is left in Redis after the run."""
        self.report = report
        try:
            self._read_redis(report, client)
        except Exception as exc:  # monitoring never breaks the run; the metric is left out
            log.warning("metrics: could not read Redis after the run: %s", exc)

    def _read_redis(self, report: RotationReport, client: Any) -> None:
        from .redis_side import RedisSide  # redis is loaded by now: the run used it

        side = RedisSide(client)
        self.refused_writes = sum(side.refusals().values())
        if report.first_date is not None and report.last_date is not None:
            dates = range(report.first_date, report.last_date + 1)
            self.pending_claims = len(side.existing([family.claim_id_key(d) for d in dates]))
        else:
            self.pending_claims = 0 if report.error is None else None
        earliest = side.read_earliest()
        stable = last_stable(report.started_at)  # the run's own view of "now"
        # status's rule: the stable dates from earliest on that have keys - looked up
        # only over a span a run would walk (a garbage earliest such as 0 would mean
        # 20,000 dates of EXISTS after every run; such a span is its own backlog)
        span = 0 if earliest is None else max(0, stable - earliest + 1)
        if span > MAX_CHECKED_DAYS:
            self.backlog_days = span
            return
        waiting = [] if earliest is None else list(range(earliest, stable + 1))
        keys = {d: family.live_keys(d) + family.claim_keys(d) for d in waiting}
        have = side.existing([k for ks in keys.values() for k in ks])
        keyed = [d for d, ks in keys.items() if any(k in have for k in ks)]
        self.backlog_days = len(backlog_dates(keyed, earliest, stable))

    def metrics(self, exit_code: int) -> RunMetrics:
        """What the metrics file will say."""
        finished = self.clock()
        dates = dict.fromkeys((s.value for s in DateState), 0)
        findings = dict.fromkeys((i.value for i in Invariant), 0)
        bad: list[dict[str, str]] = []
        if self.report is not None:
            bad = [_labels(b) for b in self.report.bad_dates]
            dates.update(Counter(o.state.value for o in self.report.outcomes))
            for f in self.report.findings:  # the summary finding of a group counts its rest
                more = _MORE.match(f.detail)
                findings[f.invariant.value] += int(more.group(1)) if more else 1
        return RunMetrics(
            finished_at=finished,
            exit_code=exit_code,
            duration_seconds=round(max(0.0, finished - self.started), 3),
            dates=dates,
            findings=findings,
            backlog_days=self.backlog_days,
            pending_claims=self.pending_claims,
            refused_writes=self.refused_writes,
            bad_dates=bad,
        )

    def finish(self, exit_code: int) -> None:
        """Write the metrics file and ping the heartbeat. Never raises."""
        if self.metrics_file is not None:
            try:
                write_metrics(self.metrics_file, self.metrics(exit_code))
            except Exception as exc:  # noqa: BLE001 - disk full, a bug: the exit code stands
                log.error("metrics file %s not written: %s", self.metrics_file, exc)
        if self.heartbeat_url is not None and exit_code != ExitCode.LOCKED:
            # 75: another run holds the lock and will ping when it is done
            try:
                ping(self.heartbeat_url, exit_code in SUCCESS_EXIT_CODES, self.summary(exit_code))
            except Exception as exc:  # noqa: BLE001 - ping never raises; if it did, the code stands
                log.error("heartbeat not sent: %s", type(exc).__name__)

    def summary(self, exit_code: int) -> str:
        """One line for the heartbeat's body: exit code, dates, error (masked and
        escaped: it goes to a third party)."""
        try:
            meaning = EXIT_MEANINGS[ExitCode(exit_code)]
        except ValueError:
            meaning = "stopped by a signal" if exit_code > 128 else "unknown"
        text = f"rotate_stats exit {exit_code} ({meaning})"
        report = self.report
        if report is not None:
            if report.first_date is not None and report.last_date is not None:
                text += f"; {iso(report.first_date)}..{iso(report.last_date)}"
            text += f"; {len(report.outcomes)} date(s), {len(report.findings)} finding(s)"
            if report.error:
                text += f"; error: {report.error}"
        return printable(mask_text(text))


LABEL_CHARACTERS = 500
"""A bad date's label values are cut to this many characters (a value may be any text)."""


def _labels(bad: BadDate) -> dict[str, str]:
    """A bad date as metric labels: masked, printable, bounded."""
    values = {
        "date": iso(bad.unix_date),
        "key": bad.key,
        "field": "" if bad.field is None else bad.field,
        "value": bad.value,
        "expected": bad.expected,
        "repair": bad.repair,
    }
    return {k: printable(mask_text(v))[:LABEL_CHARACTERS] for k, v in values.items()}
