"""The metrics file: Prometheus text format, atomic replacement, last success carried over."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rotate_stats.metrics import (
    RunMetrics,
    escape_label,
    read_last_success,
    render,
    write_atomically,
    write_metrics,
)

Sample = tuple[str, dict[str, str], float]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], list[Sample]]:
    """A strict little parser of the text format: (name -> (help, type), samples).

    Fails on anything the format does not allow: a sample before its TYPE, a TYPE
    twice, a bad label escape, a value that is not a float, a missing final newline.
    """
    assert text.endswith("\n")
    meta: dict[str, tuple[str, str]] = {}
    helps: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and name not in helps
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            assert name not in meta, f"TYPE twice for {name}"
            assert not any(s[0] == name for s in samples), f"TYPE after samples of {name}"
            meta[name] = (helps.get(name, ""), kind)
        else:
            match = _SAMPLE.match(line)
            assert match is not None, f"not a sample line: {line!r}"
            name = match.group("name")
            assert name in meta, f"sample of {name} before its TYPE"
            labels: dict[str, str] = {}
            raw = match.group("labels") or ""
            pos = 0
            while pos < len(raw):
                label = _LABEL.match(raw, pos)
                assert label is not None, f"bad labels {raw!r}"
                value = label.group(2)
                labels[label.group(1)] = (
                    value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
                )
                pos = label.end()
            samples.append((name, labels, float(match.group("value"))))
    assert set(helps) == set(meta), "every metric has HELP and TYPE"
    return meta, samples


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and lab == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


METRICS = RunMetrics(
    finished_at=1_800_000_000.5,
    exit_code=3,
    duration_seconds=12.25,
    last_success=1_800_000_000.5,
    dates={"inserted": 2, "zero-row": 1, "merged": 0},
    findings={"7-grammar": 4, "3-failed_to_queue+queued=requested": 1},
    backlog_days=0,
    pending_claims=0,
    refused_writes=17,
)


def test_render_is_valid_text_format() -> None:
    meta, samples = parse_exposition(render(METRICS))
    assert all(kind == "gauge" and help_text for help_text, kind in meta.values())
    assert value(samples, "rotate_stats_last_run_timestamp_seconds") == 1_800_000_000.5
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == 1_800_000_000.5
    assert value(samples, "rotate_stats_last_exit_code") == 3
    assert value(samples, "rotate_stats_duration_seconds") == 12.25
    assert value(samples, "rotate_stats_dates", state="zero-row") == 1
    assert value(samples, "rotate_stats_dates", state="merged") == 0
    assert value(samples, "rotate_stats_findings", invariant="7-grammar") == 4
    key = "3-failed_to_queue+queued=requested"
    assert value(samples, "rotate_stats_findings", invariant=key) == 1
    assert value(samples, "rotate_stats_backlog_days") == 0
    assert value(samples, "rotate_stats_pending_claims") == 0
    assert value(samples, "rotate_stats_refused_writes") == 17


def test_label_values_are_escaped() -> None:
    tricky = 'a"b\\c\nd'
    assert escape_label(tricky) == 'a\\"b\\\\c\\nd'
    text = render(RunMetrics(1.0, 0, 0.0, dates={tricky: 1}))
    _, samples = parse_exposition(text)
    assert value(samples, "rotate_stats_dates", state=tricky) == 1


def test_facts_not_read_are_left_out() -> None:
    meta, _ = parse_exposition(render(RunMetrics(1.0, 1, 0.5)))
    assert "rotate_stats_backlog_days" not in meta
    assert "rotate_stats_pending_claims" not in meta
    assert "rotate_stats_last_success_timestamp_seconds" not in meta


def test_failed_run_carries_the_last_success_over(tmp_path: Path) -> None:
    path = str(tmp_path / "rotate_stats.prom")
    write_metrics(path, RunMetrics(1000.0, 0, 1.0))
    assert read_last_success(path) == 1000.0
    write_metrics(path, RunMetrics(2000.0, 1, 1.0))
    _, samples = parse_exposition(Path(path).read_text())
    assert value(samples, "rotate_stats_last_success_timestamp_seconds") == 1000.0
    assert value(samples, "rotate_stats_last_run_timestamp_seconds") == 2000.0
    assert value(samples, "rotate_stats_last_exit_code") == 1
    write_metrics(path, RunMetrics(3000.0, 3, 1.0))  # violations: the job did its work
    assert read_last_success(path) == 3000.0


def test_first_run_failing_has_no_last_success(tmp_path: Path) -> None:
    path = str(tmp_path / "rotate_stats.prom")
    write_metrics(path, RunMetrics(2000.0, 1, 1.0))
    assert read_last_success(path) is None


@pytest.mark.parametrize("garbage", ["", "rotate_stats_last_success_timestamp_seconds NaN\n"])
def test_unreadable_old_file_gives_no_last_success(tmp_path: Path, garbage: str) -> None:
    path = tmp_path / "m.prom"
    path.write_text(garbage)
    assert read_last_success(str(path)) is None


def test_write_is_atomic_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rotate_stats.prom"
    path.write_text("old\n")
    write_atomically(str(path), "new\n")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["rotate_stats.prom"]
    assert path.stat().st_mode & 0o777 == 0o644

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomically(str(path), "newer\n")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["rotate_stats.prom"]
