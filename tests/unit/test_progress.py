"""Progress of long walks: log lines off a terminal, a tqdm bar on one, nothing when short."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from rotate_stats.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_log_lines_every_interval_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress(io.StringIO(), min_total=10, interval=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="rotate_stats"):
        clock.t = 10
        progress(100, 1000)  # too soon for a line
        clock.t = 40
        progress(400, 1000)
        clock.t = 50
        progress(500, 1000)  # 10 s after the last line: none
        clock.t = 80
        progress(1000, 1000)  # the end always gets one
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "rotating: 400/1000 dates (40%), 10.0 dates/s, elapsed 40s, ETA 1m00s",
        "rotating: 1000/1000 dates (100%), 12.5 dates/s, elapsed 1m20s, ETA 0s",
    ]


def test_short_walks_show_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = Tty()
    progress = Progress(stream, min_total=100)
    with caplog.at_level(logging.INFO, logger="rotate_stats"):
        progress(2, 2)
    progress.close()
    assert caplog.records == [] and stream.getvalue() == ""


def test_a_bar_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    stream = Tty()
    progress = Progress(stream, min_total=10)
    with caplog.at_level(logging.INFO, logger="rotate_stats"):
        progress(31, 62)
        progress(62, 62)
    progress.close()
    out = stream.getvalue()
    assert "0/62" in out and "62/62" in out and "date/s" in out
    assert caplog.records == []  # the bar instead of log lines


def test_without_tqdm_a_terminal_gets_log_lines(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    stream = Tty()
    progress = Progress(stream, min_total=10)
    with caplog.at_level(logging.INFO, logger="rotate_stats"):
        progress(62, 62)
    assert stream.getvalue() == "" and "62/62 dates" in caplog.text
