"""Merge several ``benchmarks.perf`` result files: per figure, the median and the range.

    .venv/bin/python -m benchmarks.summarize benchmarks/results/quick-before-*.json

On a shared, noisy machine one run proves little: run the same profile a few
times and report the median with its min-max range (ratios are computed within
each run, then summarised). Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Key = tuple[str, int, int, float, int]
Values = dict[Key, dict[str, list[float]]]
Metric = Callable[[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None], float | None]


def _seconds(run: dict[str, Any] | None) -> float | None:
    return None if run is None or run["problem"] else float(run["seconds"])


def _cpu(run: dict[str, Any] | None) -> float | None:
    return None if run is None or run["problem"] else float(run["redis"]["redis_cpu_net_s"])


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _redis(name: str, run: dict[str, Any] | None) -> float | None:
    return None if run is None else float(run["redis"][name])


METRICS: dict[str, Metric] = {
    "rotate_stats s": lambda j, pd, fl: _seconds(j),
    "per-date s": lambda j, pd, fl: _seconds(pd),
    "floor s": lambda j, pd, fl: _seconds(fl),
    "per-date / rotate_stats": lambda j, pd, fl: _div(_seconds(pd), _seconds(j)),
    "rotate_stats / floor": lambda j, pd, fl: _div(_seconds(j), _seconds(fl)),
    "Redis CPU rotate_stats / floor": lambda j, pd, fl: _div(_cpu(j), _cpu(fl)),
    "longest command ms: rotate_stats": lambda j, pd, fl: _redis("slowlog_max_ms", j),
    "longest command ms: floor": lambda j, pd, fl: _redis("slowlog_max_ms", fl),
    "worst PING ms: rotate_stats": lambda j, pd, fl: _redis("worst_ping_ms", j),
    "worst PING ms: per-date": lambda j, pd, fl: _redis("worst_ping_ms", pd),
    "peak RSS MB: rotate_stats": lambda j, pd, fl: float(j["peak_rss_mb"]),
}
TIME_TABLE = list(METRICS)[:6]
STALL_TABLE = list(METRICS)[6:]


def collect(files: Sequence[Path]) -> tuple[Values, list[dict[str, Any]]]:
    """Per case, every metric's value in each file; and the files' own data."""
    values: Values = {}
    loaded = []
    for path in files:
        data = json.loads(path.read_text())
        loaded.append(data)
        shapes: dict[tuple[str, int, int, float], dict[str, dict[str, Any]]] = {}
        for r in data["runs"]:
            if r["method"] != "rotate_stats":
                key = (r["backend"], r["dates"], r["width"], r["rtt_ms"])
                shapes.setdefault(key, {})[r["method"]] = r
        for j in data["runs"]:
            if j["method"] != "rotate_stats":
                continue
            around = shapes.get((j["backend"], j["dates"], j["width"], j["rtt_ms"]), {})
            case: Key = (j["backend"], j["dates"], j["width"], j["rtt_ms"], j["batch_size"])
            per_case = values.setdefault(case, {})
            for name, metric in METRICS.items():
                value = metric(j, around.get("per-date"), around.get("floor"))
                if value is not None:
                    per_case.setdefault(name, []).append(value)
    return values, loaded


def _number(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def cell(name: str, samples: list[float] | None) -> str:
    if not samples:
        return "—"
    unit = "×" if "/" in name and "ms" not in name else ""
    median = _number(statistics.median(samples)) + unit
    if len(samples) == 1:
        return median
    return f"{median} ({_number(min(samples))}–{_number(max(samples))})"


def render(values: Values, loaded: list[dict[str, Any]]) -> str:
    revs = sorted({d.get("code", {}).get("rev", "?")[:12] for d in loaded})
    loads = [d["machine"]["loadavg"][0] for d in loaded]
    lines = [
        f"{len(loaded)} run(s) of rotate_stats at {', '.join(revs)}; load average (1 min) at "
        f"the start of each: {', '.join(f'{x:.1f}' for x in loads)}. "
        "Each cell: median (min–max) over the runs.",
    ]
    for title, names in (("Time", TIME_TABLE), ("Stalls and memory", STALL_TABLE)):
        lines += [
            "",
            f"#### {title}",
            "",
            "| backend | dates × width | RTT ms | batch | " + " | ".join(names) + " |",
            "|---|---|---|---|" + "---|" * len(names),
        ]
        for (backend, dates, width, rtt, batch), metrics in values.items():
            cells = " | ".join(cell(n, metrics.get(n)) for n in names)
            lines.append(f"| {backend} | {dates:,} × {width:,} | {rtt:g} | {batch} | {cells} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="result JSON files of benchmarks.perf")
    args = parser.parse_args(argv)
    print(render(*collect(args.files)))


if __name__ == "__main__":
    main()
