"""The wrapper's environment file, attacked like an operator would: edited on Windows,
copied from a shell profile, commented inline, with a stray PATH= line.

The rules (README "Deployment" step 2, cron/rotate-stats.env.example): NAME=value
lines, nothing expanded; blanks around the name, the ``=`` and an unquoted value are
dropped; one pair of quotes around the whole value is removed, what is between them
kept as written; ``#`` starts a comment only at the start of a line; ``export `` is
allowed; only ``ROTATE_STATS_*`` names, each once; UTF-8, with or without a byte
order mark, LF or CRLF. Anything else stops the run (exit 2) with a message naming
the file and the line, never the value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.test_wrapper import run

SECRET = "hunter2"


def passed(stdout: str) -> list[str]:
    """The ROTATE_STATS_* variables the stub program received, sorted."""
    prefix = "stub env: "
    return [ln.removeprefix(prefix) for ln in stdout.splitlines() if ln.startswith(prefix)]


def load(site: Path, content: bytes) -> tuple[int, str, str]:
    """Exit code, everything written (the stub's lines on stdout, the wrapper's on
    stderr, as the log file has them) and stderr alone."""
    (site / "rotate-stats.env").write_bytes(content)
    result = run(site)
    return result.returncode, result.stdout + result.stderr, result.stderr


def test_crlf_line_endings_and_a_byte_order_mark_are_read_as_written(site: Path) -> None:
    """A file saved by a Windows editor: UTF-8 with a BOM and CRLF on every line. The
    BOM used to make line 1 "not NAME=value"."""
    content = (
        "\ufeffROTATE_STATS_LOG_LEVEL=INFO\r\n"
        "# the Redis of production\r\n"
        "\r\n"
        "ROTATE_STATS_REDIS_URL='redis://:p\u00e4ss@h:6379/0'\r\n"
        "ROTATE_STATS_STRICT=1"  # no newline after the last line
    ).encode()
    code, stdout, _ = load(site, content)
    assert code == 0, stdout
    assert passed(stdout) == [
        "ROTATE_STATS_LOG_LEVEL=INFO",
        "ROTATE_STATS_REDIS_URL=redis://:p\u00e4ss@h:6379/0",
        "ROTATE_STATS_STRICT=1",
    ]


def test_blanks_around_name_equals_and_value_are_dropped_quotes_keep_theirs(site: Path) -> None:
    """A blank after a closing quote used to keep the quotes in the value (an invisible
    editing slip that turns a URL into a bad scheme); ``NAME = value`` was refused."""
    code, stdout, _ = load(
        site,
        b"  ROTATE_STATS_LOG_LEVEL = INFO  \n"
        b'ROTATE_STATS_REDIS_URL= "redis://:a b@h:6379/0" \t\n'
        b"export   ROTATE_STATS_STRICT='1'  \n"
        b'ROTATE_STATS_BATCH_SIZE=" 7 "\n',
    )
    assert code == 0, stdout
    assert passed(stdout) == [
        "ROTATE_STATS_BATCH_SIZE= 7 ",
        "ROTATE_STATS_LOG_LEVEL=INFO",
        "ROTATE_STATS_REDIS_URL=redis://:a b@h:6379/0",
        "ROTATE_STATS_STRICT=1",
    ]


def test_an_equals_sign_a_hash_or_a_quote_inside_a_value_is_kept(site: Path) -> None:
    code, stdout, _ = load(
        site,
        b"ROTATE_STATS_REDIS_URL=redis://:a=b#c@h:6379/0?x=1\n"
        b'ROTATE_STATS_DATABASE_URL="rqlite://u:it\'s #1@h:4001"\n'
        b"ROTATE_STATS_HEARTBEAT_URL='say \"hi\"'\n"
        b"ROTATE_STATS_LOG_FORMAT=a\"b'\n",
    )
    assert code == 0, stdout
    assert passed(stdout) == [
        "ROTATE_STATS_DATABASE_URL=rqlite://u:it's #1@h:4001",
        'ROTATE_STATS_HEARTBEAT_URL=say "hi"',
        "ROTATE_STATS_LOG_FORMAT=a\"b'",
        "ROTATE_STATS_REDIS_URL=redis://:a=b#c@h:6379/0?x=1",
    ]


def test_an_empty_value_is_passed_empty(site: Path) -> None:
    """The program treats an empty value as not set (a URL) or off (a flag)."""
    code, stdout, _ = load(site, b"ROTATE_STATS_STRICT=\nROTATE_STATS_LOG_LEVEL=''\n")
    assert code == 0, stdout
    assert passed(stdout) == ["ROTATE_STATS_LOG_LEVEL=", "ROTATE_STATS_STRICT="]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        pytest.param(
            b"# x\nROTATE_STATS_REDIS_URL=redis://:hunter2@h:6379/0  # production\n",
            2,
            "a comment after a value: '#' starts a comment only at the start of a line "
            "(quote the value if the '#' is part of it)",
            id="comment-after-value",
        ),
        pytest.param(
            b'ROTATE_STATS_REDIS_URL="redis://:hunter2@h:6379/0\n',
            1,
            "ROTATE_STATS_REDIS_URL: the quote that opens the value does not close it "
            "at the end of the line",
            id="unclosed-quote",
        ),
        pytest.param(
            b"ROTATE_STATS_REDIS_URL=redis://:x@a:6379/0\n"
            b"ROTATE_STATS_LOG_LEVEL=INFO\n"
            b"ROTATE_STATS_REDIS_URL=redis://:hunter2@b:6379/0\n",
            3,
            "ROTATE_STATS_REDIS_URL is already set on line 1 (one line per name: "
            "delete or comment out the other)",
            id="duplicate-name",
        ),
        pytest.param(
            b"ROTATE_STATS_ENV_FILE=/etc/rotate-stats/other.env\n",
            1,
            "ROTATE_STATS_ENV_FILE has no effect here (the file is already chosen)",
            id="env-file-inside-itself",
        ),
        pytest.param(
            b"redis_url hunter2\n",
            1,
            "expected NAME=value",
            id="no-equals",
        ),
        pytest.param(
            b"ROTATE_STATS_REDIS_URL=redis://:hunter2\xe9@h:6379/0\n",
            1,
            "not UTF-8 text (save the file as UTF-8)",
            id="latin-1",
        ),
        pytest.param(
            "ROTATE_STATS_REDIS_URL=redis://:hunter2@h:6379/0\r\n".encode("utf-16"),
            1,
            "not UTF-8 text (save the file as UTF-8)",
            id="utf-16-from-powershell",
        ),
        pytest.param(
            b"ROTATE_STATS_LOG_LEVEL=INFO\nROTATE_STATS_REDIS_URL=redis://:hunter2"
            + b"x" * 200_000
            + b"@h:6379/0\n",
            2,
            "longer than 8192 bytes",
            id="very-long-line",
        ),
    ],
)
def test_a_bad_line_stops_the_run_naming_file_and_line_never_the_value(
    site: Path, content: bytes, line: int, reason: str
) -> None:
    code, stdout, stderr = load(site, content)
    assert code == 2, stdout
    env_file = site / "rotate-stats.env"
    assert f"rotate-stats: ERROR: environment file {env_file} line {line}: {reason}" in stdout
    assert SECRET not in stdout + stderr
    assert "stub" not in stdout  # the job did not run
    assert len(stdout) < 2000


@pytest.mark.parametrize(
    "name", ["PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONSTARTUP", "HOME", "rotate_stats_strict"]
)
def test_only_the_jobs_own_settings_may_be_set(site: Path, name: str) -> None:
    """A settings file must not be able to change the job's PATH, preload a library or
    add Python code; a lower-case name is a typo the program would ignore."""
    code, stdout, _ = load(site, f"ROTATE_STATS_LOG_LEVEL=INFO\n{name}=/tmp/{SECRET}\n".encode())
    assert code == 2, stdout
    assert (
        f"environment file {site / 'rotate-stats.env'} line 2: {name} is not a ROTATE_STATS_* "
        "setting: the file sets the job's settings only"
    ) in stdout
    assert SECRET not in stdout
    assert "stub" not in stdout


def test_path_in_the_environment_file_cannot_replace_the_tools_the_wrapper_runs(
    site: Path,
) -> None:
    """Before, ``PATH=`` in the file was exported before the wrapper ran ``flock``."""
    evil = site / "evil"
    evil.mkdir()
    marker = site / "evil-ran"
    (evil / "flock").write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    (evil / "flock").chmod(0o755)
    code, _, _ = load(site, f"PATH={evil}\n".encode())
    assert code == 2
    assert not marker.exists()
