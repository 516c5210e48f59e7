"""Acceptance: the README's deployment steps, followed literally, give a job that works.

The blocks of README "Deployment" marked ``# deploy: NAME`` are run exactly as
written, as root, by ``bash -e`` with Debian's root PATH, from a copy of this
checkout. Two things differ from a real host, both through variables the
README and the wrapper document rather than by rewriting the commands:

- ``DESTDIR`` is a temporary directory, so files land under it instead of ``/``;
  ``SERVICE_USER`` is a throwaway user (created by the README's ``useradd``
  on this machine, deleted afterwards): a real ``rotate-stats`` is left alone.
- Because the files are under ``DESTDIR``, the wrapper is told where they are
  with its own variables (``ROTATE_STATS_ENV_FILE``, ``ROTATE_STATS_VENV``,
  ``ROTATE_STATS_FLOCK_FILE``), and in the cron entry's command the paths
  ``/opt/…`` and ``/var/log/…`` get the ``DESTDIR`` prefix (the only textual
  rewrite; logrotate's config gets the same, and the throwaway user's name).

Step 2 (editing the environment file) is done by the test: it writes the URLs of
a redis-server it started and of an SQLite file in the state directory. The
systemd steps (``systemctl``) are not run: there is no systemd here; the units
are checked by ``test_units.py``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rotate_stats import family
from rotate_stats.dates import iso, last_stable
from rotate_stats.recorder import Recorder
from tests.conftest import RedisServer, redis_binary, require_binary
from tests.deploy.common import (
    DEBIAN_PATH,
    IN_CI,
    ROOT,
    deploy_blocks,
    require_root,
    shared_temp_dir,
)

pytestmark = [pytest.mark.redis_server, pytest.mark.timeout(300)]

IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", ".hypothesis", "*.sqlite3"
)


class Host:
    """A temporary root (``DESTDIR``), a checkout copy and a throwaway service user."""

    def __init__(self) -> None:
        self.base = shared_temp_dir("rotate-stats-deploy-")  # the service user reaches it
        self.destdir = self.base / "root"
        self.destdir.mkdir(mode=0o755)
        self.checkout = self.base / "checkout"
        shutil.copytree(ROOT, self.checkout, ignore=IGNORE, symlinks=True)
        # Root's own python3 first in PATH, as a pyenv shim in /root puts it: a python3
        # in a directory only root can enter (issue 17, item 4). A virtualenv made by it
        # gives the service user exit 126; the install block must not use it.
        self.root_home = self.base / "root-home"
        shims = self.root_home / ".pyenv/shims"
        shims.mkdir(parents=True)
        self.root_home.chmod(0o700)
        (shims / "python3").symlink_to("/usr/bin/python3")
        self.shims = shims
        self.user = f"rs-test-{os.getpid() % 100000}"
        self.env_file = self.destdir / "etc/rotate-stats/rotate-stats.env"
        self.log_file = self.destdir / "var/log/rotate-stats/rotate.log"
        self.state = self.destdir / "var/lib/rotate-stats"

    def env(self) -> dict[str, str]:
        """A root shell's environment plus the documented variables (module docstring)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        env.update(PATH=f"{self.shims}:{DEBIAN_PATH}", DESTDIR=str(self.destdir))
        env.update(SERVICE_USER=self.user)
        env["ROTATE_STATS_ENV_FILE"] = str(self.env_file)
        env["ROTATE_STATS_VENV"] = str(self.destdir / "opt/rotate-stats/.venv")
        env["ROTATE_STATS_FLOCK_FILE"] = str(self.state / "rotate-stats.lock")
        return env

    def run_block(
        self, name: str, *, prefix: tuple[str, ...] = (), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        block = deploy_blocks()[name]
        result = subprocess.run(
            [*prefix, "bash", "-e", "-c", block],
            cwd=self.checkout,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        if check:
            assert result.returncode == 0, f"block {name!r}:\n{result.stdout}\n{result.stderr}"
        return result

    def cron_command(self) -> str:
        """The command of the installed cron entry, with DESTDIR's paths."""
        entry = (self.destdir / "etc/cron.d/rotate-stats").read_text()
        lines = [ln for ln in entry.splitlines() if ln.strip() and not ln.startswith("#")]
        jobs = [ln for ln in lines if not re.match(r"^[A-Z_]+=", ln)]
        assert len(jobs) == 1, jobs
        fields = jobs[0].split(None, 6)
        assert fields[5] == "rotate-stats", "the cron entry runs as rotate-stats"
        command = fields[6]
        for top in ("/opt/", "/var/log/"):
            command = command.replace(top, f"{self.destdir}{top}")
        return command

    def run_as_service_user(self, command: str) -> subprocess.CompletedProcess[str]:
        """``command`` by /bin/sh as the service user, as cron runs an entry: cron's
        few variables (PATH and SHELL from the entry's file), plus the wrapper's."""
        env = {k: v for k, v in self.env().items() if k.startswith("ROTATE_STATS_")}
        home = pwd.getpwnam(self.user).pw_dir
        env.update(PATH=DEBIAN_PATH, SHELL="/bin/sh", HOME=home, LOGNAME=self.user)
        return subprocess.run(
            ["runuser", "-u", self.user, "--", "/bin/sh", "-c", command],
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def remove(self) -> None:
        if _user_exists(self.user):
            subprocess.run(["userdel", self.user], check=False, capture_output=True)
        if subprocess.run(["getent", "group", self.user], capture_output=True).returncode == 0:
            subprocess.run(["groupdel", self.user], check=False, capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def host() -> Iterator[Host]:
    require_root()
    for binary in ("runuser", "useradd", "userdel", "flock"):
        require_binary(binary)
    if not Path("/usr/bin/python3").exists():
        (pytest.fail if IN_CI else pytest.skip)("Debian's /usr/bin/python3 is missing")
    made = Host()
    assert not _user_exists(made.user), f"{made.user} exists already"
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def redis_for_host(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path)
    yield server
    server.stop()


def _edit_env_file(host: Host, redis_url: str) -> None:
    """Step 2, as an operator would: the URLs replace the CHANGE-ME lines."""
    database = host.state / "stats.sqlite3"
    lines = []
    for line in host.env_file.read_text().splitlines():
        if line.startswith("ROTATE_STATS_REDIS_URL="):
            line = f"ROTATE_STATS_REDIS_URL={redis_url}"
        elif line.startswith("ROTATE_STATS_DATABASE_URL="):
            line = f"ROTATE_STATS_DATABASE_URL=sqlite:///{database}"
        lines.append(line)
    with host.env_file.open("w") as handle:  # in place: owner and mode stay
        handle.write("\n".join(lines) + "\n")


def test_readme_deployment_followed_literally_runs_the_job_as_the_service_user(
    host: Host, redis_for_host: RedisServer
) -> None:
    """Issue 17, item 4: root's PATH finds a python3 in root's home first (``Host``);
    the install block used it, and every run as the service user exited 126. It
    uses /usr/bin/python3 now."""
    host.run_block("install")
    venv = host.destdir / "opt/rotate-stats/.venv"
    assert "home = /usr/bin\n" in (venv / "pyvenv.cfg").read_text()

    # What the install block promised (README's table): user, owners, modes.
    account = pwd.getpwnam(host.user)
    assert account.pw_shell == "/usr/sbin/nologin" and account.pw_uid < 1000  # --system
    assert account.pw_dir == "/var/lib/rotate-stats"  # cron's working directory
    env_stat = host.env_file.stat()
    assert stat.S_IMODE(env_stat.st_mode) == 0o640
    assert (env_stat.st_uid, env_stat.st_gid) == (0, account.pw_gid)
    for directory in (host.log_file.parent, host.state):
        info = directory.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (account.pw_uid, 0o750), directory
    log_stat = host.log_file.stat()  # made by the install: a unit would make it root's
    assert (log_stat.st_uid, stat.S_IMODE(log_stat.st_mode)) == (account.pw_uid, 0o640)
    venv_program = host.destdir / "opt/rotate-stats/.venv/bin/rotate-stats"
    assert os.access(venv_program, os.X_OK)
    for unit in ("rotate-stats.service", "rotate-stats.timer", "rotate-stats-failure@.service"):
        assert (host.destdir / "etc/systemd/system" / unit).is_file(), unit
    assert (host.destdir / "etc/logrotate.d/rotate-stats").is_file()

    _edit_env_file(host, redis_for_host.url)
    first = host.run_block("first run")
    logged = first.stderr  # the wrapper's lines (the job's output is on stdout)
    assert "exit 0 (healthy)" in logged and "rotate-stats: ERROR" not in logged, logged

    # Data to rotate: one event chain on a stable date, through the writers' API.
    client = redis.Redis(port=redis_for_host.port)
    try:
        date = last_stable(time.time()) - 1
        for event in ("requested", "queued", "started", "completed"):
            assert Recorder(client).record(date, event, "greeting")
        host.run_block("cron")
        command = host.cron_command()
        scheduled = host.run_as_service_user(command)
        assert scheduled.returncode == 0, (scheduled.stdout, scheduled.stderr)
        assert not client.exists(family.counts_key(date))  # rotated: the keys are gone
    finally:
        client.close()
    log = host.log_file.read_text()
    assert re.search(r"rotate-stats: start \(pid \d+, user " + re.escape(host.user), log), log
    assert log.rstrip().endswith("rotate-stats: exit 0 (success, or nothing to do)"), log
    assert host.log_file.stat().st_uid == account.pw_uid  # appended by the service user
    with sqlite3.connect(host.state / "stats.sqlite3") as db:
        row = db.execute(
            "SELECT requested, completed FROM journal_chat_job_stats WHERE retrieved_for = ?",
            (iso(date),),
        ).fetchone()
    db.close()
    assert row == (1, 1)

    # The log rotates (logrotate reads the installed config; paths and user as installed).
    require_binary("logrotate")
    config = (host.destdir / "etc/logrotate.d/rotate-stats").read_text()
    config = config.replace("/var/log/", f"{host.destdir}/var/log/")
    config = config.replace("rotate-stats rotate-stats", f"{host.user} {host.user}")
    config_file = host.base / "logrotate.conf"
    config_file.write_text(config)
    rotated = subprocess.run(
        ["logrotate", "--force", "--state", str(host.base / "logrotate.state"), str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert (host.log_file.parent / "rotate.log.1").read_text() == log
    fresh = host.log_file.stat()
    assert (fresh.st_uid, stat.S_IMODE(fresh.st_mode)) == (account.pw_uid, 0o640)

    # Unreadable environment file (wrong group, then no permissions at all): the
    # run fails loudly, naming the file, and does not run the job.
    for group, mode in ((0, 0o640), (account.pw_gid, 0o000)):
        os.chown(host.env_file, 0, group)
        host.env_file.chmod(mode)
        host.log_file.write_text("")
        failed = host.run_as_service_user(command)
        assert failed.returncode == 2, (failed.stdout, failed.stderr)
        message = host.log_file.read_text()
        assert f"environment file {host.env_file} is not readable by {host.user}" in message
        assert "rotate-stats: start" not in message


def test_readme_install_block_is_idempotent_an_upgrade_keeps_the_settings(
    host: Host,
) -> None:
    """docs/OPERATIONS.md "Upgrade": run the install block again; the edited file stays."""
    host.run_block("install")
    host.env_file.write_text("ROTATE_STATS_LOG_LEVEL=DEBUG\n")  # an operator's edit
    host.env_file.chmod(0o600)  # and a mode gone wrong
    host.run_block("install")
    assert host.env_file.read_text() == "ROTATE_STATS_LOG_LEVEL=DEBUG\n"
    assert stat.S_IMODE(host.env_file.stat().st_mode) == 0o640
    assert host.env_file.stat().st_gid == pwd.getpwnam(host.user).pw_gid


def test_readme_install_block_refuses_a_python_older_than_3_11(host: Host) -> None:
    """Issue 17, item 4: /usr/bin/python3 older than 3.11 (a Debian 11 host) is named
    with the version found, before anything is installed. Run in a mount namespace
    where /usr/bin/python3 is a stand-in that says it is 3.9."""
    require_binary("unshare")
    fake = host.base / "python3.9"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in -V|--version) echo "Python 3.9.2"; exit 0 ;; esac\n'
        'case "$*" in *version_info*) exit 1 ;; esac\n'
        "echo unexpected >&2; exit 3\n"
    )
    fake.chmod(0o755)
    probe = subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        (pytest.fail if IN_CI else pytest.skip)(f"no mount namespaces: {probe.stderr.strip()}")
    mount = f'mount --bind {fake} /usr/bin/python3 && exec "$@"'
    result = host.run_block(
        "install", prefix=("unshare", "--mount", "sh", "-c", mount, "sh"), check=False
    )
    assert result.returncode != 0
    assert (
        "ERROR: rotate-stats needs Python 3.11 or later as /usr/bin/python3, found: Python 3.9.2"
    ) in result.stderr, result.stderr
    assert not _user_exists(host.user)  # stopped before anything was made
    assert not (host.destdir / "opt").exists()
