"""cron/run-rotate-stats: the environment file, its own variables, the host lock, the log lines.

Most tests run the wrapper against a stub virtualenv whose ``rotate-stats`` prints
the ROTATE_STATS_* names it was given and its arguments, and exits with
``$STUB_EXIT``; one runs the real program.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rotate_stats.report import ExitCode
from tests.conftest import require_binary
from tests.deploy.common import (
    DEBIAN_PATH,
    IN_CI,
    ROOT,
    WRAPPER,
    reachable_copy,
    require_root,
)


def run(
    site: Path, *args: str, env_file: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env["PATH"] = DEBIAN_PATH
    env["ROTATE_STATS_ENV_FILE"] = str(site / "rotate-stats.env") if env_file is None else env_file
    env["ROTATE_STATS_VENV"] = str(site / "venv")
    env["ROTATE_STATS_FLOCK_FILE"] = str(site / "state/rotate-stats.lock")
    env.update(extra)
    return subprocess.run(
        [str(WRAPPER), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_runs_the_program_with_its_arguments_and_logs_start_and_exit(site: Path) -> None:
    result = run(site, "check", "--format", "json", STUB_EXIT="3")
    assert result.returncode == 3
    lines = result.stdout.splitlines()  # the job's output only
    assert "stub args: check --format json" in lines
    assert "stub cwd: /" in lines
    assert "rotate-stats:" not in result.stdout
    logged = result.stderr.splitlines()  # the wrapper's own lines
    assert len(logged) == 2, logged
    assert " rotate-stats: start (pid " in logged[0]
    assert logged[-1].endswith(
        "rotate-stats: exit 3 (invariant violations found in the checked rows: "
        "see the findings above)"
    )


def test_the_jobs_stdout_is_the_only_thing_on_stdout(site: Path) -> None:
    """Issue 17, item 5(c): ``run-rotate-stats status --format json | jq`` failed: the
    wrapper's start and exit lines were on stdout around the job's JSON. They are on
    stderr now (cron and the unit append both streams to the log)."""
    (site / "venv/bin/rotate-stats").write_text(
        '#!/bin/sh\necho \'{"healthy": true}\'\necho "a log line" >&2\n'
    )
    result = run(site, "status", "--format", "json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout) == {"healthy": True}
    assert "rotate-stats: start (pid" in result.stderr
    assert "a log line" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("rotate-stats: exit 0 (healthy)")
    failed = run(site, env_file=str(site / "missing.env"))  # the wrapper's own error too
    assert (failed.returncode, failed.stdout) == (2, "")
    assert "rotate-stats: ERROR: environment file" in failed.stderr


MEANINGS = {
    ("rotate", 0): "success, or nothing to do",
    ("rotate", 1): "runtime failure, nothing lost",
    ("rotate", 2): "usage error",
    ("rotate", 3): "done, but invariant violations were found",
    ("rotate", 75): "another run holds the Redis lock",
    ("check", 0): "no invariant violations in the checked rows",
    ("check", 1): "runtime failure, nothing lost",
    ("check", 3): "invariant violations found in the checked rows",
    ("status", 0): "healthy",
    ("status", 1): "unhealthy: a problem needs attention",
    ("status", 2): "usage error",
    ("status", 3): "unexpected from status",
    ("migrate", 0): "success: migrations applied, or already up to date",
    ("migrate", 1): "runtime failure, nothing lost",
    ("prune-ledger", 75): "a run holds the Redis lock; nothing pruned",
    ("demo", 0): "success, or nothing to do",
}
"""(command, exit code) -> how the wrapper's last line names it (its start)."""


@pytest.mark.parametrize(("command", "code"), list(MEANINGS))
def test_the_exit_line_names_the_code_as_the_command_means_it(
    site: Path, command: str, code: int
) -> None:
    """Issue 17, item 5(e): the wrapper called ``status``'s exit 1 (unhealthy) a
    "runtime failure", and any command's 3 "invariant violations": the meaning is now
    the command's own (README "Exit codes"). The command is found as the program finds
    it: after options and their values, ``rotate`` when none is named."""
    args = ["--redis-url", "redis://status:1/0", "--log-format=json", command]
    result = run(site, *args, "--format", "json", STUB_EXIT=str(code))
    assert result.returncode == code
    [last] = [ln for ln in result.stderr.splitlines() if " rotate-stats: exit " in ln]
    assert last.split(" rotate-stats: ", 1)[1].startswith(
        f"exit {code} ({MEANINGS[command, code]}"
    ), last
    if command == "rotate":  # named or not, the same meaning
        unnamed = run(site, "--date", "status", STUB_EXIT=str(code))
        assert f"exit {code} ({MEANINGS[command, code]}" in unnamed.stderr


def test_the_wrapper_knows_every_option_that_takes_a_value() -> None:
    """The wrapper finds the command after the options (``--format json status``): its
    list of options taking a value must be the program's."""
    import argparse

    from rotate_stats.cli import build_parser

    parser = build_parser()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    wanted = {
        flag
        for p in parsers
        for action in p._actions
        if action.nargs != 0
        for flag in action.option_strings
    }
    listed = re.search(r'^OPTIONS_WITH_VALUES=" (.*) "$', WRAPPER.read_text(), re.M)
    assert listed is not None
    assert set(listed.group(1).split()) == wanted


def test_the_wrappers_own_variables_do_not_reach_the_program(site: Path) -> None:
    """Defect 3: ROTATE_STATS_ENV_FILE / _VENV reached the program, which rejects them."""
    (site / "rotate-stats.env").write_text(
        "ROTATE_STATS_LOG_LEVEL=INFO\nROTATE_STATS_VENV=" + str(site / "venv") + "\n"
    )
    result = run(site)
    assert result.returncode == 0, result
    passed = [ln for ln in result.stdout.splitlines() if ln.startswith("stub env: ")]
    assert passed == ["stub env: ROTATE_STATS_LOG_LEVEL=INFO"]


def test_the_real_program_accepts_what_the_wrapper_passes(tmp_path: Path) -> None:
    """Defect 3 with the real program: before, it exited 2 naming ROTATE_STATS_VENV."""
    venv = Path(sys.prefix)
    if not (venv / "bin/rotate-stats").exists():
        (pytest.fail if IN_CI else pytest.skip)("the console script is not installed here")
    env_file = tmp_path / "rotate-stats.env"
    env_file.write_text(f"ROTATE_STATS_DATABASE_URL=sqlite:///{tmp_path}/stats.sqlite3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        PATH=DEBIAN_PATH,
        ROTATE_STATS_ENV_FILE=str(env_file),
        ROTATE_STATS_VENV=str(venv),
        ROTATE_STATS_FLOCK_FILE=str(tmp_path / "rotate-stats.lock"),
    )
    result = subprocess.run(
        [str(WRAPPER), "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "ROTATE_STATS_" not in result.stderr
    assert (tmp_path / "stats.sqlite3").exists()


def test_a_missing_environment_file_is_fatal_and_named(site: Path) -> None:
    """Defect 1: the wrapper skipped a missing file silently; the job then failed on a
    missing URL without a word about the file."""
    missing = site / "nowhere" / "rotate-stats.env"
    result = run(site, env_file=str(missing))
    assert result.returncode == 2
    assert f"environment file {missing} does not exist" in result.stderr
    assert "stub" not in result.stdout  # the job did not run


def test_an_empty_env_file_variable_runs_without_one(site: Path) -> None:
    result = run(site, env_file="")
    assert result.returncode == 0, result
    assert "environment file none" in result.stderr


def test_an_unreadable_environment_file_is_fatal_and_named(site: Path) -> None:
    """Defect 1: ``[ -r ]`` skipped a root-only file silently."""
    env_file = site / "rotate-stats.env"
    env_file.chmod(0o000)
    if os.geteuid() == 0:  # root reads anything: run as nobody
        require_binary("setpriv")
        (site / "state").chmod(0o777)
        result = _run_as_nobody(site)
    else:
        result = run(site)
    assert result.returncode == 2, result
    assert f"environment file {env_file} is not readable by " in result.stderr
    assert "expected a file owned root:rotate-stats with mode 0640" in result.stderr
    assert "stub" not in result.stdout


def _run_as_nobody(site: Path) -> subprocess.CompletedProcess[str]:
    """The wrapper as ``nobody``: a copy in ``site``, which anyone can reach (the
    checkout may be in /root or a 0700 directory, where nobody's exec gives 126)."""
    wrapper = reachable_copy(WRAPPER, site)
    env = {
        "PATH": DEBIAN_PATH,
        "ROTATE_STATS_ENV_FILE": str(site / "rotate-stats.env"),
        "ROTATE_STATS_VENV": str(site / "venv"),
        "ROTATE_STATS_FLOCK_FILE": str(site / "state/rotate-stats.lock"),
    }
    args = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(wrapper)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def test_the_environment_file_is_not_shell(site: Path) -> None:
    """NAME=value lines: a password with $, & or quotes arrives as written; one pair of
    surrounding quotes is removed; comments and blank lines are skipped."""
    (site / "rotate-stats.env").write_text(
        "# settings\n\n"
        "ROTATE_STATS_REDIS_URL=redis://:pa$HOME&ss'w@host:6379/0\n"
        'ROTATE_STATS_DATABASE_URL="sqlite:////x y.db"\n'
        "export ROTATE_STATS_STRICT='1'\r\n"
        "ROTATE_STATS_BATCH_SIZE=$(touch pwned)\n"
    )
    result = run(site)
    assert result.returncode == 0, result
    passed = [ln for ln in result.stdout.splitlines() if ln.startswith("stub env: ")]
    assert passed == [
        "stub env: ROTATE_STATS_BATCH_SIZE=$(touch pwned)",
        "stub env: ROTATE_STATS_DATABASE_URL=sqlite:////x y.db",
        "stub env: ROTATE_STATS_REDIS_URL=redis://:pa$HOME&ss'w@host:6379/0",
        "stub env: ROTATE_STATS_STRICT=1",
    ]
    assert not Path("/pwned").exists() and not (site / "pwned").exists()


def test_a_malformed_line_is_named_without_its_value(site: Path) -> None:
    (site / "rotate-stats.env").write_text("ROTATE_STATS_LOG_LEVEL=INFO\nredis://:secret@x\n")
    result = run(site)
    assert result.returncode == 2
    assert f"environment file {site / 'rotate-stats.env'} line 2: expected NAME=value" in (
        result.stderr
    )
    assert "secret" not in result.stdout + result.stderr


def test_a_missing_virtualenv_is_named(site: Path) -> None:
    result = run(site, ROTATE_STATS_VENV=str(site / "novenv"))
    assert result.returncode == 2
    assert f"{site / 'novenv/bin/rotate-stats'} is missing" in result.stderr


def test_a_run_skipped_by_the_host_lock_says_so_and_exits_75(site: Path) -> None:
    """Defect 8: a run skipped by ``flock -n`` exited 1 and logged nothing."""
    lock = site / "state/rotate-stats.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        result = run(site)
    assert result.returncode == int(ExitCode.LOCKED)
    assert (
        f"rotate-stats: skipped: another run on this host holds the lock {lock}; "
        "nothing done (exit 75)"
    ) in result.stderr
    assert "stub" not in result.stdout
    assert run(site).returncode == 0  # released: the next run goes ahead


def test_the_host_lock_is_held_while_the_program_runs(site: Path) -> None:
    program = site / "venv/bin/rotate-stats"
    lock = site / "state/rotate-stats.lock"
    program.write_text(f"#!/bin/sh\nif flock -n {lock} true; then echo free; else echo held; fi\n")
    result = run(site)
    assert "held" in result.stdout.splitlines(), result.stdout


def test_an_unwritable_lock_file_is_named(site: Path) -> None:
    target = site / "no-such-dir" / "rotate-stats.lock"
    result = run(site, ROTATE_STATS_FLOCK_FILE=str(target))
    assert result.returncode == 2
    assert f"cannot create the host lock file {target} as " in result.stderr


def test_a_run_stopped_by_sigterm_says_so(site: Path) -> None:
    """systemd's TimeoutStartSec sends SIGTERM to the wrapper and the job: the log's last
    line says the run was stopped, not nothing at all."""
    proc, started = _start(site, "#!/bin/sh\ntouch STARTED\nexec sleep 60\n")
    with proc:
        while not started.exists():  # the job is running
            assert proc.poll() is None
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGTERM)  # like systemd: every process of the unit
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert stdout.rstrip().endswith(
        "stopped by SIGTERM (a timeout, a shutdown or by hand): nothing is lost, "
        "the next run picks up its claims (exit 143)"
    ), stdout


def test_a_failing_flock_is_not_mistaken_for_a_held_lock(site: Path) -> None:
    """Before, any failure of ``flock -n`` (missing, too large an environment, a bad
    descriptor) was logged as "another run holds the lock" with exit 75, which the
    unit counts as success: the job never ran and nothing said so."""
    fake = site / "fake-bin"
    fake.mkdir()
    (fake / "flock").write_text("#!/bin/sh\necho 'flock: bad file descriptor' >&2\nexit 66\n")
    (fake / "flock").chmod(0o755)
    result = run(site, PATH=f"{fake}:{DEBIAN_PATH}")
    assert result.returncode == 2, result.stderr
    lock = site / "state/rotate-stats.lock"
    assert f"cannot take the host lock {lock} (flock exit 66)" in result.stderr
    assert "skipped" not in result.stderr and "stub" not in result.stdout


def test_a_lock_file_left_by_a_root_run_does_not_stop_the_service_user(site: Path) -> None:
    """Running the wrapper once as root (instead of ``runuser -u rotate-stats``) left a
    root-owned lock file that every later scheduled run could not open for writing
    (exit 2 each night). flock needs only a read descriptor."""
    require_root()
    require_binary("setpriv")
    (site / "state").chmod(0o777)
    os.chown(site / "rotate-stats.env", 0, 65534)  # root:<nobody's group>, 0640
    lock = site / "state/rotate-stats.lock"
    lock.write_text("")
    lock.chmod(0o644)  # root's, as a root run leaves it
    result = _run_as_nobody(site)
    assert result.returncode == 0, result.stderr
    assert "stub args:" in result.stdout


def _start(site: Path, program: str) -> tuple[subprocess.Popen[str], Path]:
    started = site / "started"
    (site / "venv/bin/rotate-stats").write_text(program.replace("STARTED", str(started)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        PATH=DEBIAN_PATH,
        ROTATE_STATS_ENV_FILE="",
        ROTATE_STATS_VENV=str(site / "venv"),
        ROTATE_STATS_FLOCK_FILE=str(site / "state/rotate-stats.lock"),
    )
    proc = subprocess.Popen(
        [str(WRAPPER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the log: both streams
        text=True,
        start_new_session=True,
    )
    return proc, started


def test_sigterm_to_the_wrapper_alone_stops_the_job_and_says_so(site: Path) -> None:
    """``kill <wrapper pid>`` (by hand, ``timeout``): before, the job ran on to its end
    and the wrapper then logged "stopped by SIGTERM" whatever the job had done."""
    proc, started = _start(
        site,
        # One process (a shell's background sleep could miss a TERM sent while it is
        # still being forked, and hold the output open).
        f"#!{sys.executable}\nimport pathlib, signal, sys, time\n"
        "def stop(*_):\n    print('job stopped by TERM', flush=True)\n    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\npathlib.Path('STARTED').touch()\n"
        "time.sleep(60)\nprint('job finished')\n",
    )
    with proc:
        try:
            while not started.exists():
                assert proc.poll() is None
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)  # the wrapper only
            stdout, _ = proc.communicate(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever is left of the run
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143
    lines = stdout.splitlines()
    assert "job stopped by TERM" in lines and "job finished" not in lines
    assert lines[-1].endswith("(exit 143)") and "stopped by SIGTERM" in lines[-1]


def test_a_job_killed_by_a_signal_is_named_in_the_log(site: Path) -> None:
    """SIGKILL (the OOM killer, systemd after TimeoutStopSec) used to read "unexpected"."""
    program = site / "venv/bin/rotate-stats"
    program.write_text("#!/bin/sh\nkill -KILL $$\n")
    result = run(site)
    assert result.returncode == 137
    assert result.stderr.splitlines()[-1].endswith(
        "exit 137 (killed by SIGKILL: out of memory, or stopped after ignoring SIGTERM; "
        "nothing is lost, the next run picks up its claims)"
    ), result.stdout


def _cron(site: Path, log: Path, *, path: str = DEBIAN_PATH) -> subprocess.CompletedProcess[bytes]:
    """The cron entry's own command (paths pointed here), run by /bin/sh as cron does."""
    [command] = [
        line.split(None, 6)[6]
        for line in (WRAPPER.parent / "rotate-stats.cron").read_text().splitlines()
        if line[:1].isdigit()
    ]
    command = command.replace("/opt/rotate-stats/cron/run-rotate-stats", str(WRAPPER))
    command = command.replace("/var/log/rotate-stats/rotate.log", str(log))
    env = {
        "PATH": path,
        "ROTATE_STATS_ENV_FILE": str(site / "rotate-stats.env"),
        "ROTATE_STATS_VENV": str(site / "venv"),
        "ROTATE_STATS_FLOCK_FILE": str(site / "state/rotate-stats.lock"),
    }
    return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, timeout=60)


def test_the_cron_command_puts_the_jobs_stdout_and_stderr_in_the_log(site: Path) -> None:
    log = site / "rotate.log"
    (site / "venv/bin/rotate-stats").write_text("#!/bin/sh\necho to stdout\necho to stderr >&2\n")
    result = _cron(site, log)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    lines = log.read_text().splitlines()
    assert "rotate-stats: start (pid" in lines[0]
    assert lines[1:3] == ["to stdout", "to stderr"]
    assert lines[3].endswith("rotate-stats: exit 0 (success, or nothing to do)")


@pytest.mark.parametrize(
    ("exit_code", "reported"), [(0, False), (75, False), (1, True), (3, True), (2, True)]
)
def test_a_failed_cron_run_logs_one_error_line_to_syslog(
    site: Path, exit_code: int, reported: bool
) -> None:
    """Cron sends the entry's output by mail, and the entry sends all of it to the log
    file: a failed run (or one whose log file cannot be written) alerted nobody. Like
    the unit's OnFailure= notifier, it now logs one line at priority err, tagged
    rotate-stats-failure; exit 75 (skipped) is not a failure."""
    fake = site / "fake-bin"
    fake.mkdir()
    calls = site / "logger-calls"
    (fake / "logger").write_text(f'#!/bin/sh\nprintf "%s|" "$@" >>{calls}\necho >>{calls}\n')
    (fake / "logger").chmod(0o755)
    (site / "venv/bin/rotate-stats").write_text(f"#!/bin/sh\nexit {exit_code}\n")
    log = site / "rotate.log"
    result = _cron(site, log, path=f"{fake}:{DEBIAN_PATH}")
    assert result.returncode == exit_code  # the wrapper's, for whoever runs the line
    if not reported:
        assert not calls.exists()
        return
    assert calls.read_text() == (
        f"-t|rotate-stats-failure|-p|user.err|rotate-stats failed (exit {exit_code}): "
        f"see {log} and docs/OPERATIONS.md|\n"
    )


def test_a_cron_run_whose_log_cannot_be_written_is_reported(site: Path) -> None:
    fake = site / "fake-bin"
    fake.mkdir()
    calls = site / "logger-calls"
    (fake / "logger").write_text(f'#!/bin/sh\nprintf "%s|" "$@" >>{calls}\n')
    (fake / "logger").chmod(0o755)
    log = site / "no-such-dir" / "rotate.log"
    result = _cron(site, log, path=f"{fake}:{DEBIAN_PATH}")
    assert b"cannot create" in result.stderr  # mailed by cron where mail works
    assert f"rotate-stats failed (exit 2): see {log}" in calls.read_text()


def test_the_jobs_output_reaches_the_log_in_the_order_it_was_written(site: Path) -> None:
    """Python buffers stdout when it is a file: the job's summary (stdout) landed after
    its log lines (stderr), or not at all when the run was killed."""
    (site / "venv/bin/rotate-stats").write_text(
        f"#!{sys.executable}\nimport sys\n"
        "print('summary 1')\nprint('log line', file=sys.stderr)\nprint('summary 2')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATE_STATS_", "PYTHON"))}
    env.update(
        PATH=DEBIAN_PATH,
        ROTATE_STATS_ENV_FILE="",
        ROTATE_STATS_VENV=str(site / "venv"),
        ROTATE_STATS_FLOCK_FILE=str(site / "state/rotate-stats.lock"),
    )
    log = site / "rotate.log"
    with log.open("ab") as out:
        subprocess.run([str(WRAPPER)], env=env, stdout=out, stderr=out, timeout=60, check=True)
    lines = log.read_text().splitlines()
    assert lines[1:4] == ["summary 1", "log line", "summary 2"], lines


def test_an_environment_file_others_can_read_is_reported(site: Path) -> None:
    """It holds passwords: mode 0644 (``cp`` instead of ``install -m 0640``) runs, but
    the log says so, with the command that fixes it."""
    env_file = site / "rotate-stats.env"
    env_file.chmod(0o644)
    result = run(site)
    assert result.returncode == 0
    assert (
        f"rotate-stats: WARNING: environment file {env_file} has mode 0644: other users "
        f"can read the passwords in it (chmod 0640 {env_file})"
    ) in result.stderr
    env_file.chmod(0o640)
    assert "WARNING" not in run(site).stderr


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_of_the_program_is_passed_through(site: Path, code: ExitCode) -> None:
    """systemd's SuccessExitStatus=75 and the CronJob's podFailurePolicy see the
    program's own status, not the wrapper's."""
    result = run(site, STUB_EXIT=str(int(code)))
    assert result.returncode == int(code)
    assert (
        result.stderr.splitlines()[-1].split(" rotate-stats: ")[1].startswith(f"exit {int(code)} (")
    )


def test_ctrl_c_on_a_run_by_hand_stops_the_job(site: Path) -> None:
    """Ctrl-C sends SIGINT to the terminal's whole process group. The job runs in the
    background, where SIGINT is ignored: the wrapper stops it with SIGTERM."""
    proc, started = _start(
        site,
        f"#!{sys.executable}\nimport pathlib, time\npathlib.Path('STARTED').touch()\n"
        "time.sleep(60)\nprint('job finished')\n",
    )
    with proc:
        try:
            while not started.exists():
                assert proc.poll() is None
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGINT)
            stdout, _ = proc.communicate(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "job finished" not in stdout
    assert stdout.rstrip().endswith("(exit 130)") and "stopped by SIGINT" in stdout, stdout


def test_the_job_is_told_the_command_its_hints_name(site: Path) -> None:
    """Issue 17, item 4: every repair hint said `python -m rotate_stats`, which the
    deployed host cannot run (the service's venv is not on root's PATH). The wrapper
    exports ROTATE_STATS_COMMAND: itself, behind runuser for a service user; an
    environment file's own value is kept."""
    result = run(site)
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("stub command: ")]
    wrapper = str(WRAPPER.resolve())
    expected = wrapper if os.getuid() == 0 else f"runuser -u {getpass.getuser()} -- {wrapper}"
    assert line == f"stub command: {expected}"
    (site / "rotate-stats.env").write_text(
        "ROTATE_STATS_COMMAND=kubectl exec job -- rotate-stats\n"
    )
    result = run(site)
    assert "stub command: kubectl exec job -- rotate-stats" in result.stdout.splitlines()


def test_the_tests_that_run_as_nobody_pass_from_a_checkout_nobody_can_enter() -> None:
    """Issue 17, item 6: cloned into /root (or any 0700 directory), ``./scripts/test``
    failed: the tests that run the wrapper as ``nobody`` ran it from the checkout,
    which nobody can enter (exit 126, "Permission denied", instead of 2). They now run
    a copy in a directory anyone can reach. Pinned by running them from a copy of this
    checkout in a fresh 0700 directory, as root."""
    require_root()
    require_binary("setpriv")
    private = Path(tempfile.mkdtemp(prefix="rotate-stats-private-"))  # mode 0700
    try:
        assert private.stat().st_mode & 0o077 == 0
        checkout = private / "checkout"
        shutil.copytree(ROOT, checkout, ignore=_COPY_IGNORE, symlinks=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        env["PYTHONPATH"] = str(checkout)
        selected = "unreadable_environment_file or lock_file_left_by_a_root_run"
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider"]
            + ["-q", "-k", selected, "tests/deploy/test_wrapper.py"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        shutil.rmtree(private)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", ".hypothesis", "*.sqlite3"
)


def test_a_virtualenv_python_the_service_user_cannot_run_is_named(site: Path) -> None:
    """Issue 17, item 4: a virtualenv made by a python3 in root's home (a pyenv shim)
    links its interpreter there; the service user's runs exited 126 ("Permission
    denied") without a word about why. The wrapper names it and the fix."""
    require_root()
    require_binary("setpriv")
    (site / "state").chmod(0o777)
    os.chown(site / "rotate-stats.env", 0, 65534)
    private = Path(tempfile.mkdtemp(prefix="rotate-stats-root-home-"))  # mode 0700
    try:
        (private / "python3").symlink_to(sys.executable)
        (site / "venv/bin/python").symlink_to(private / "python3")
        result = _run_as_nobody(site)
    finally:
        shutil.rmtree(private)
    assert result.returncode == 2, result
    assert f"{site / 'venv/bin/python'} is not executable by " in result.stderr
    assert "run the README's install block again" in result.stderr
    assert "stub" not in result.stdout
