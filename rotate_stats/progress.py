"""Progress of a long walk (issue 10 #19): a bar on a terminal, log lines elsewhere.

On a TTY, tqdm (imported only then) draws dates done / total, the rate and the
ETA on stderr. Anywhere else (cron, systemd, a pipe) a log line every
``interval`` seconds says the same. Short walks (fewer than ``min_total``
dates, a normal night's run) show nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("rotate_stats")

MIN_TOTAL = 100
"""Walks of fewer dates than this show no progress (a nightly run has one or two)."""
INTERVAL = 30.0
"""Seconds between progress log lines when stderr is not a terminal."""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """A ``progress(done, total)`` callback for ``RotateOptions.progress``; ``close()``
    it when the walk is over (it may stop before ``done == total``)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        what: str = "rotating",
        min_total: int = MIN_TOTAL,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.what = what
        self.min_total = min_total
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_line = self.started
        self.done = 0
        self._bar: Any = None
        self._tty = _isatty(stream)

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        if self._tty and self._bar is None:
            self._bar = _tqdm(self.stream, total, self.what)
            self._tty = self._bar is not None  # without tqdm: log lines
        if self._bar is not None:
            self._bar.update(done - self.done)
            self.done = done
            if done >= total:
                self.close()
            return
        self.done = done
        now = self.clock()
        if done < total and now - self.last_line < self.interval:
            return
        self.last_line = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = _duration((total - done) / rate) if rate > 0 and done < total else "0s"
        log.info(
            "%s: %d/%d dates (%d%%), %.1f dates/s, elapsed %s, ETA %s",
            self.what,
            done,
            total,
            100 * done // total,
            rate,
            _duration(elapsed),
            eta,
        )

    def close(self) -> None:
        """End the bar (a no-op for log lines, or when nothing was shown)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def _tqdm(stream: TextIO, total: int, what: str) -> Any:
    """A tqdm bar, or None when tqdm is not installed (then: log lines)."""
    try:
        from tqdm import tqdm  # only on a terminal: it costs import time
    except ImportError:
        return None
    return tqdm(total=total, desc=what, unit="date", file=stream, dynamic_ncols=True)
