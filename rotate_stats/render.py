"""Text output of ``rotate``, ``check`` and ``status``: what an operator reads.

Dates are ISO dates (``earliest`` too, or "absent"), never raw unix dates or
``None``; counts added to an existing row are shown with ``+``; nothing says
"0 zero rows" (issue 10, item 11). JSON output is built from the reports'
``as_dict``, not from these lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .dates import iso
from .family import EVENTS
from .invocation import command
from .report import BadDate, DateState, RotationReport

if TYPE_CHECKING:
    from .checks import CheckReport, Status


def printable(text: str) -> str:
    """``text`` on one line with every character ``str.isprintable`` refuses (control
    characters, a newline, an escape, U+2028) shown as a Python escape (``\\x1b``):
    a breakdown key may be any text, and raw it could forge a line or drive the
    operator's terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """``printable`` line by line: the line breaks of ``text`` are kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def finding_line(f: Mapping[str, object]) -> str:
    """One finding (``Finding.as_dict()``) on one line: date, invariant, where, detail
    (a job type taken from a key is shown escaped, see ``printable``)."""
    where = " ".join(f"{k}={f[k]}" for k in ("event", "job_type") if f[k] is not None)
    return printable(f"{f['date']} {f['invariant']} {where}: {f['detail']}")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 date``, ``3 dates``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def earliest_text(value: int | str | None) -> str:
    """``earliest`` as an ISO date, or "absent" (never a raw unix date or None)."""
    if value is None or value == "":
        return "absent"
    if isinstance(value, str) and not value.isdigit():
        return repr(value)
    return iso(int(value))


def render_report(report: RotationReport) -> str:
    """Human-readable run summary: one line per date with data, totals, findings.

    Counts of a merged date are what was *added* to its row, shown with ``+``.
    """
    lines = []
    quiet = {DateState.ZERO_ROW: 0, DateState.UNCHANGED: 0}
    for o in report.outcomes:
        if o.state in quiet and not o.findings:
            quiet[o.state] += 1
            continue
        sign = "+" if o.state is DateState.MERGED else ""
        counts = " ".join(f"{e}={sign}{o.day.count(e)}" for e in EVENTS)
        extra = f"  [{o.detail}]" if o.detail else ""
        lines.append(f"{iso(o.unix_date)}  {o.state.value:<15} {counts}{extra}")
    head = "dry run: " if report.dry_run else ""
    span = (
        f"{iso(report.first_date)}..{iso(report.last_date)}"
        if report.first_date is not None and report.last_date is not None
        else "no dates"
    )
    quiet_parts = [
        plural(n, "zero row") if state is DateState.ZERO_ROW else f"{n} unchanged"
        for state, n in quiet.items()
        if n
    ]
    if report.first_date is None or report.last_date is None:
        summary = f"{head}no dates to rotate"
    else:
        summary = f"{head}{span}: {plural(len(report.outcomes), 'date')}"
    if quiet_parts:
        summary += f" ({', '.join(quiet_parts)})"
    before = earliest_text(report.earliest_before)
    if report.earliest_after is None:
        summary += f"; earliest {before}, unchanged"
    else:
        summary += f"; earliest {before} -> {earliest_text(report.earliest_after)}"
    lines.append(summary)
    lines += report.notes
    if report.bad_dates:
        lines.append(plural(len(report.bad_dates), "date") + " left in Redis with bad data:")
        lines += [f"bad data {iso(b.unix_date)}: {b.describe()}" for b in report.bad_dates]
    findings = report.findings
    lines.append("no invariant findings" if not findings else plural(len(findings), "finding"))
    lines += [finding_line(f.as_dict()) for f in findings]
    return "\n".join(lines)


def render_check(checked: CheckReport) -> str:
    """``check``'s text output: what was checked, then one line per finding."""
    span = f"{checked.first or 'the first row'} to {checked.last or 'the last row'}"
    head = f"checked {plural(checked.rows_checked, 'stored row')}"
    if checked.pending_checked:
        head += f" and {plural(checked.pending_checked, 'pending date')} in Redis"
    head += f", {span}: "
    head += "no findings" if not checked.findings else plural(len(checked.findings), "finding")
    return "\n".join([head, *(finding_line(f.as_dict()) for f in checked.findings)])


def some(items: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` items, and how many more ("none" when empty)."""
    if not items:
        return "none"
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def render_status(st: Status, database: str | None) -> str:
    """``status`` as an aligned listing: one line per item, a readable value each."""
    earliest = earliest_text(st.earliest)
    if st.earliest is not None:
        earliest += f" (unix date {st.earliest})"
    if st.earliest_held:
        earliest += f", held by {st.earliest_held}"
    if st.earliest_error:
        earliest = f"unusable: {st.earliest_error}"
    lock = "free"
    if st.lock_holder is not None:
        expires = (
            "no expiry"
            if st.lock_ttl_ms is None or st.lock_ttl_ms < 0
            else f"expires in {st.lock_ttl_ms / 1000:.1f}s"
        )
        lock = f"held by {st.lock_holder} ({expires})"
    orphaned = "none"
    if st.orphaned:
        keys = sum(len(k) for k in st.orphaned.values())
        dates = sorted(st.orphaned)
        orphaned = (
            f"{plural(keys, 'key')} for {plural(len(dates), 'date')}: "
            f"{some([iso(d) for d in dates])}"
        )
    refused = ", ".join(f"{k}={v}" for k, v in sorted(st.refused.items())) or "none"
    claims = [
        f"{iso(c.unix_date)} (idle {'?' if c.idle_seconds is None else c.idle_seconds}s"
        + (", stuck)" if c.stuck else ")")
        for c in st.claims
    ]
    items: list[tuple[str, str]] = [
        ("earliest", earliest),
        ("last stable date", iso(st.last_stable)),
        ("backlog", plural(st.backlog, "date") + _dates_list(st.backlog_list)),
        ("bad data", some([f"{iso(b.unix_date)} ({_where(b)})" for b in st.bad_dates])),
        ("lock", lock),
        ("claims", some(claims) if claims else "none"),
        ("orphaned keys", orphaned),
        ("refused writes", refused),
        ("unknown keys", some(st.unknown_keys)),
        ("durability", st.durability or "unknown"),
        ("eviction policy", st.maxmemory_policy or "unknown (CONFIG disabled)"),
    ]
    if database is None:
        items.append(("database", "skipped (no --database-url / ROTATE_STATS_DATABASE_URL given)"))
    else:
        pending = ", ".join(st.pending_migrations)
        items += [
            ("database", database),
            ("newest row", st.newest_row or "none"),
            (
                "pending migrations",
                f"{pending} (run `{command('migrate')}`)" if pending else "none",
            ),
        ]
    width = max(len(label) for label, _ in items)
    verdict = "healthy" if not st.problems else plural(len(st.problems), "problem")
    lines = [f"status: {verdict}"] + [f"  PROBLEM {p.check}: {p.detail}" for p in st.problems]
    return "\n".join(lines + [f"{label + ':':<{width + 1}} {value}" for label, value in items])


def _dates_list(dates: Sequence[int]) -> str:
    return f" with keys: {some([iso(d) for d in dates])}" if dates else " with keys"


def _where(bad: BadDate) -> str:
    where = bad.key if bad.field is None else f"{bad.key} field {bad.field!r}"
    return f"{where}: found {bad.value!r}"
