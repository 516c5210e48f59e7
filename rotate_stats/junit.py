"""``check --format junit``: JUnit XML for CI (issue 10, item 20).

One ``testsuite`` named ``rotate_stats check``; one ``testcase`` per checked
date and invariant (``classname`` the date, ``name`` the invariant), with a
``failure`` element per finding's test case listing every finding of it. A
``check`` that could not run at all is one test case with an ``error``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .checks import CheckReport
from .dates import iso
from .invariants import Finding, Invariant

SUITE = "rotate_stats check"

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character XML 1.0 cannot hold (its ``Char`` production), even as a reference."""


def render_junit(report: CheckReport) -> str:
    """The report as a JUnit XML document (ASCII text: character references for the
    rest; with declaration)."""
    by_case: dict[tuple[int, Invariant], list[Finding]] = {}
    for f in report.findings:
        by_case.setdefault((f.unix_date, f.invariant), []).append(f)
    dates = sorted(report.dates_checked | {d for d, _ in by_case})
    suite = ET.Element("testsuite", name=SUITE)
    failures = 0
    for d in dates:
        for invariant in Invariant:
            case = ET.SubElement(suite, "testcase", classname=iso(d), name=invariant.value)
            found = by_case.get((d, invariant))
            if found:
                failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{len(found)} finding(s): {found[0].detail}",
                    type=invariant.value,
                )
                failure.text = "\n".join(_finding_text(f) for f in found)
    suite.set("tests", str(len(dates) * len(Invariant)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    return _document(suite)


def render_junit_error(message: str, exit_code: int) -> str:
    """A suite with one errored test case: ``check`` could not run (exit ``exit_code``)."""
    suite = ET.Element("testsuite", name=SUITE, tests="1", failures="0", errors="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="rotate_stats", name="check")
    error = ET.SubElement(case, "error", message=message, type=f"exit {exit_code}")
    error.text = message
    return _document(suite)


def _finding_text(f: Finding) -> str:
    parts = [iso(f.unix_date), f.invariant.value]
    parts += [
        f"{k}={v}" for k, v in (("event", f.event), ("job_type", f.job_type)) if v is not None
    ]
    numbers = "" if f.expected is None else f" (expected {f.expected}, got {f.actual})"
    return f"{' '.join(parts)}: {f.detail}{numbers}"


def xml_safe(text: str) -> str:
    """``text`` with each character XML 1.0 forbids shown as a Python escape
    (``\\x01``, ``\\ufffe``): a breakdown key may be any text, and a report with
    such a character in it would not parse at all."""
    return _NOT_XML.sub(lambda m: ascii(m.group(0))[1:-1], text)


def _document(suite: ET.Element) -> str:
    for element in suite.iter():
        if element.text:
            element.text = xml_safe(element.text)
        for name, value in element.attrib.items():
            element.set(name, xml_safe(value))
    ET.indent(suite)
    # ASCII with character references: the same document whatever stdout's encoding
    document: bytes = ET.tostring(suite, encoding="us-ascii", xml_declaration=True)
    return document.decode("ascii")
