"""Adversarial cases for the metrics file (issue 10, #15): what is at its path
(a FIFO, a symlink, a directory), leftovers of a killed run, a corrupt or
hand-edited earlier file, a directory gone mid-run, a run dying of a bug."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rotate_stats import cli
from rotate_stats.errors import ConfigError
from rotate_stats.metrics import RunMetrics, read_last_success, write_metrics
from rotate_stats.monitor import RunMonitor
from tests.unit.test_metrics import parse_exposition, value


def _in_subprocess(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a hang ends in TimeoutExpired, not a stuck suite."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_fifo_at_the_metrics_path_does_not_hang_the_run(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the last success of a
    failed run must not be read from one (it would hang the job after its work)."""
    fifo = tmp_path / "m.prom"
    os.mkfifo(fifo)
    result = _in_subprocess(
        f"from rotate_stats.metrics import read_last_success as r; print(r({str(fifo)!r}))"
    )
    assert result.returncode == 0 and result.stdout.strip() == "None", result.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_what_is_not_a_regular_file_is_refused_at_start(tmp_path: Path, kind: str) -> None:
    """A symlink would be replaced by a plain file at the first run (its target never
    updated again); following it would let whoever can write the directory make the
    job overwrite any file it can write. Either way: say so before the run."""
    path = tmp_path / "m.prom"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        (tmp_path / "target.prom").write_text("")
        path.symlink_to(tmp_path / "target.prom")
    with pytest.raises(ConfigError) as info:
        RunMonitor.from_environment(None, {"ROTATE_STATS_METRICS_FILE": str(path)})
    assert "ROTATE_STATS_METRICS_FILE" in str(info.value) and "regular file" in str(info.value)
    with pytest.raises(ConfigError, match="--metrics-file"):
        RunMonitor.from_environment(str(path), {})


def test_a_killed_runs_temporary_files_are_cleaned_up(tmp_path: Path) -> None:
    """A run killed between writing its temporary file and renaming it leaves
    ``.m.prom.XXXX.tmp`` behind (the collector ignores it: not ``*.prom``); the next
    run removes those older than a few minutes, and leaves a concurrent run's alone."""
    path = tmp_path / "m.prom"
    old = tmp_path / ".m.prom.abc123.tmp"
    fresh = tmp_path / ".m.prom.def456.tmp"
    other = tmp_path / ".other.prom.abc123.tmp"
    for leftover in (old, fresh, other):
        leftover.write_text("half a fi")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))
    write_metrics(str(path), RunMetrics(1000.0, 0, 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.prom", fresh.name, other.name])


def test_two_runs_finishing_together_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    code = (
        "from rotate_stats.metrics import RunMetrics, write_metrics\n"
        "for i in range(200):\n"
        f"    write_metrics({str(path)!r}, RunMetrics(1000.0 + i, i % 2, 1.0))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["m.prom"]
    _, samples = parse_exposition(path.read_text())
    assert value(samples, "rotate_stats_last_run_timestamp_seconds") == 1199.0


@pytest.mark.parametrize(
    "old",
    [
        "rotate_stats_last_success_timestamp_seconds 1e999\n",
        "rotate_stats_last_success_timestamp_seconds -inf\n",
        "rotate_stats_last_success_timestamp_seconds 12abc\n",
        "rotate_stats_last_success_timestamp_seconds 1_700_000_000\n",
        "rotate_stats_last_success_timestamp_seconds{} \n",
        "\xff\xfe garbage \x00\n",
        "rotate_stats_last_success_timestamp_seconds " + "9" * 5000 + "\n",
    ],
)
def test_a_corrupt_or_hand_edited_old_file_never_breaks_the_run(tmp_path: Path, old: str) -> None:
    path = tmp_path / "m.prom"
    path.write_bytes(old.encode("utf-8", "surrogateescape"))
    found = read_last_success(str(path))
    assert found is None or 0 <= found < 1e12
    write_metrics(str(path), RunMetrics(2000.0, 1, 1.0))
    meta, samples = parse_exposition(path.read_text())  # strictly valid whatever was there
    if found is None:
        assert "rotate_stats_last_success_timestamp_seconds" not in meta
    assert value(samples, "rotate_stats_last_exit_code") == 1


def test_the_directory_gone_mid_run_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "textfile"
    directory.mkdir()
    monitor = RunMonitor.from_environment(str(directory / "m.prom"), {})
    assert monitor is not None
    directory.rmdir()
    with caplog.at_level(logging.ERROR, logger="rotate_stats"):
        monitor.finish(0)
    assert "not written" in caplog.text and str(directory / "m.prom") in caplog.text


def test_a_run_dying_of_a_bug_still_writes_its_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception (a bug) still leaves exit code 1 in the metrics file:
    otherwise the file keeps saying the previous run's 0 until the staleness alert."""
    path = tmp_path / "m.prom"
    write_metrics(str(path), RunMetrics(1000.0, 0, 1.0))

    def bug(*_: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMAND_FUNCTIONS, "rotate", bug)
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["--metrics-file", str(path)], env)
    _, samples = parse_exposition(path.read_text())
    assert value(samples, "rotate_stats_last_exit_code") == 1
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == 1000.0


def test_the_temporary_file_is_never_one_the_collector_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """node_exporter's textfile collector reads ``*.prom`` in its directory: the
    temporary file (left behind if the run is killed before the rename) must not
    match, or half a file would be exported."""
    import fnmatch

    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_metrics(str(tmp_path / "rotate_stats.prom"), RunMetrics(1.0, 0, 1.0))
    assert len(seen) == 1 and seen[0].startswith(".rotate_stats.prom.")
    assert not fnmatch.fnmatch(seen[0], "*.prom") and seen[0].endswith(".tmp")


def test_any_failure_to_write_the_metrics_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import rotate_stats.monitor as monitor_module

    def broken(*_: object) -> None:
        raise ValueError("a bug in rendering")

    monkeypatch.setattr(monitor_module, "write_metrics", broken)
    with caplog.at_level(logging.ERROR, logger="rotate_stats"):
        RunMonitor(str(tmp_path / "m.prom"), None).finish(0)
    assert "not written" in caplog.text and "a bug in rendering" in caplog.text
