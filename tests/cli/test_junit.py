"""``check --format junit``: JUnit XML with one test case per date and invariant
(issue 10, item 20); parsed back with ``xml.etree``."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable
from rotate_stats.invariants import Invariant
from tests.cli.test_cli import Run, run
from tests.helpers import foreign_write

__all__ = ["run"]

GOOD = ("2024-04-02", 0.0, 2, '{"sync":2}', 0, "{}", 2, '{"sync":2}', 2, '{"sync":2}',
        2, '{"sync":2}', 0, "{}")  # fmt: skip
BAD = (
    "2024-04-01",
    0.0,
    2,
    '{"sync":2}',
    0,
    "{}",
    2,
    '{"sync":2}',
    2,
    '{"sync":2}',
    1,
    '{"sync":1}',
    0,
    "{}",
)  # fmt: skip  (completed + failed != started)


@pytest.fixture
def env(run: Run, tmp_path: Path) -> dict[str, str]:
    env = {"ROTATE_STATS_DATABASE_URL": f"sqlite:///{tmp_path}/stats.sqlite3"}
    assert run("migrate", env=env).returncode == 0
    import sqlite3

    conn = sqlite3.connect(tmp_path / "stats.sqlite3")
    marks = ", ".join("?" for _ in family.COLUMNS)
    with conn:
        for row in (GOOD, BAD):
            conn.execute(
                f"INSERT INTO {family.TABLE} ({', '.join(family.COLUMNS)}) VALUES ({marks})", row
            )
    conn.close()
    return env


def _suite(text: str) -> ET.Element:
    assert text.startswith("<?xml")
    suite = ET.fromstring(text)
    assert suite.tag == "testsuite"
    return suite


def test_one_case_per_date_and_invariant(run: Run, env: dict[str, str]) -> None:
    result = run("check", "--format", "junit", env=env)
    assert result.returncode == 3
    suite = _suite(result.stdout)
    cases = suite.findall("testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {
        (d, i.value) for d in ("2024-04-01", "2024-04-02") for i in Invariant
    }
    assert len(cases) == 2 * len(Invariant) == int(suite.get("tests", ""))
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("2024-04-01", Invariant.START_SPLIT.value),
                      ("2024-04-01", Invariant.PER_TYPE.value)}  # fmt: skip
    assert int(suite.get("failures", "")) == len(failed)
    assert suite.get("errors") == "0"
    per_type = next(
        c for c in cases
        if c.get("classname") == "2024-04-01" and c.get("name") == Invariant.PER_TYPE.value
    ).find("failure")  # fmt: skip
    assert per_type is not None and "job_type=sync" in (per_type.text or "")


def test_a_clean_range_has_no_failures(run: Run, env: dict[str, str]) -> None:
    result = run("check", "--from", "2024-04-02", "--format", "junit", env=env)
    assert result.returncode == 0
    suite = _suite(result.stdout)
    assert suite.get("tests") == str(len(Invariant)) and suite.get("failures") == "0"
    assert suite.find("testcase/failure") is None


def test_pending_dates_are_cases_too(
    run: Run, env: dict[str, str], redis_client: redis.Redis
) -> None:
    d = last_stable(time.time()) - 1
    foreign_write(redis_client, d, "requested", "sync", 3)  # never queued: invariant 3
    redis_client.set(family.EARLIEST_KEY, d)
    suite = _suite(run("check", "--pending", "--from", iso(d), "--format", "junit", env=env).stdout)
    classes = {c.get("classname") for c in suite.findall("testcase")}
    assert classes == {iso(d), iso(d + 1)}  # d and the last stable date, both pending
    failed = {c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None}
    assert Invariant.QUEUE_SPLIT.value in failed


def test_an_error_is_an_errored_suite(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    result = run(
        "check", "--format", "junit", env={"ROTATE_STATS_DATABASE_URL": f"sqlite:///{path}"}
    )
    assert result.returncode == 1
    suite = _suite(result.stdout)
    assert suite.get("errors") == "1" and suite.get("tests") == "1"
    error = suite.find("testcase/error")
    assert error is not None and "migrate" in (error.get("message") or "")


CONTROL_KEY = "sy\x01n\x1bc\ufffe\x7f"
"""A breakdown key with characters XML 1.0 cannot hold (U+0001, U+001B, U+FFFE)."""


def _xml_1_0_valid(text: str) -> bool:
    """True when every character is allowed by XML 1.0's ``Char`` production."""
    return all(
        c in "\t\n\r"
        or 0x20 <= ord(c) <= 0xD7FF
        or 0xE000 <= ord(c) <= 0xFFFD
        or 0x10000 <= ord(c) <= 0x10FFFF
        for c in text
    )


def test_control_characters_in_a_key_stay_a_valid_document(
    run: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    """A breakdown key holding control characters (any text can be a Redis field
    name) is a grammar finding (invariant 7) and a per-type one; its report must
    still be a well-formed XML 1.0 document, with the characters shown escaped."""
    import json
    import sqlite3
    from xml.dom import minidom
    from xml.parsers import expat

    row = list(GOOD)
    row[0] = "2024-04-03"
    row[6] = 2
    row[7] = json.dumps({CONTROL_KEY: 2})  # queued, by an unknown job type
    conn = sqlite3.connect(tmp_path / "stats.sqlite3")
    marks = ", ".join("?" for _ in family.COLUMNS)
    with conn:
        conn.execute(
            f"INSERT INTO {family.TABLE} ({', '.join(family.COLUMNS)}) VALUES ({marks})", row
        )
    conn.close()
    result = run("check", "--from", "2024-04-03", "--format", "junit", env=env)
    assert result.returncode == 3, result.stderr
    assert _xml_1_0_valid(result.stdout)
    suite = _suite(result.stdout)  # xml.etree
    parser = expat.ParserCreate("UTF-8")
    parser.Parse(result.stdout.encode("utf-8"), True)  # strict: raises on any bad char
    minidom.parseString(result.stdout.encode("utf-8")).unlink()
    failed = {c.get("name"): c.find("failure") for c in suite.findall("testcase")}
    grammar = failed[Invariant.GRAMMAR.value]
    assert grammar is not None
    text = (grammar.text or "") + (grammar.get("message") or "")
    assert "\\x01" in text and "\\x1b" in text  # visible, not dropped


def test_the_document_survives_a_non_utf8_terminal(
    run: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    """CI runners do not all speak UTF-8 (PYTHONIOENCODING, a latin-1 locale): the
    document is pure ASCII (character references), whatever the keys hold."""
    import json
    import sqlite3

    row = list(GOOD)
    row[0] = "2024-04-03"
    row[6] = 2
    row[7] = json.dumps({"sync✓ž": 2})
    conn = sqlite3.connect(tmp_path / "stats.sqlite3")
    marks = ", ".join("?" for _ in family.COLUMNS)
    with conn:
        conn.execute(
            f"INSERT INTO {family.TABLE} ({', '.join(family.COLUMNS)}) VALUES ({marks})", row
        )
    conn.close()
    env = {**env, "PYTHONIOENCODING": "latin-1"}
    result = run("check", "--from", "2024-04-03", "--format", "junit", env=env)
    assert result.returncode == 3, result.stderr
    assert result.stdout.isascii()
    suite = _suite(result.stdout)
    failure = next(
        c.find("failure") for c in suite.findall("testcase") if c.find("failure") is not None
    )
    assert failure is not None and "sync✓ž" in (failure.text or "")
