"""The schedule: systemd units (verify, security score, calendar) and the cron entry.

``systemd-analyze verify`` insists that ExecStart's binary exists; the wrapper is
only at /opt/rotate-stats/cron/run-rotate-stats once deployed, so the units are
verified as copies in a temporary directory with that one path pointing at this
checkout's wrapper. Everything else is verified as written.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import require_binary
from tests.deploy.common import (
    CRON,
    DEPLOY,
    IN_CI,
    WRAPPER,
    readme_section,
    require_root,
    shared_temp_dir,
    unit_settings,
    unit_text,
)

INSTALLED_WRAPPER = "/opt/rotate-stats/cron/run-rotate-stats"
UNITS = ["rotate-stats.service", "rotate-stats.timer", "rotate-stats-failure@.service"]
LOG_FILE = "/var/log/rotate-stats/rotate.log"
LA = ZoneInfo("America/Los_Angeles")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    require_binary("systemd-analyze")
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin", "SYSTEMD_COLORS": "0", "LC_ALL": "C"},
    )


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    for name in UNITS:
        text = unit_text(name).replace(INSTALLED_WRAPPER, str(WRAPPER))
        (tmp_path / name).write_text(text)
    return tmp_path


def test_systemd_analyze_verify_passes(unit_dir: Path) -> None:
    result = analyze("verify", *(str(unit_dir / name) for name in UNITS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr  # no warning either


def _exposure(unit: Path) -> float:
    result = analyze("security", "--offline=true", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("name", ["rotate-stats.service", "rotate-stats-failure@.service"])
def test_systemd_analyze_security_scores_below_5(unit_dir: Path, name: str) -> None:
    """Defect 4: the service scored 9.2 UNSAFE. Measured when written: 1.1 (the
    service) and 0.2 (the failure notifier)."""
    score = _exposure(unit_dir / name)
    print(f"systemd-analyze security {name}: {score}")
    assert score < 5, f"{name}: exposure {score}"


def _timer_calendar() -> str:
    [calendar] = unit_settings("rotate-stats.timer")["OnCalendar"]
    return calendar


def test_the_timer_fires_once_on_every_calendar_day_of_2027_in_los_angeles() -> None:
    """Defect 4: 02:00 America/Los_Angeles does not exist on 2027-03-14 (spring forward)."""
    base = "2026-12-31 12:00:00 UTC"
    result = analyze("calendar", "--iterations=400", f"--base-time={base}", _timer_calendar())
    assert result.returncode == 0, result.stderr
    elapses = re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", result.stdout
    )
    assert len(elapses) == 400, result.stdout
    days = [
        dt.datetime.fromisoformat(e).replace(tzinfo=dt.UTC).astimezone(LA).date() for e in elapses
    ]
    in_2027 = [d for d in days if d.year == 2027]
    every_day = [dt.date(2027, 1, 1) + dt.timedelta(n) for n in range(365)]
    assert in_2027 == every_day  # each day once, in order, none missing
    for elapse in elapses:  # and at 03:00 Los Angeles time, in PST and in PDT
        when = dt.datetime.fromisoformat(elapse).replace(tzinfo=dt.UTC).astimezone(LA)
        assert (when.hour, when.minute) == (3, 0), when


def test_the_service_waits_for_the_network_times_out_and_reports_failure() -> None:
    """Defect 4: After=network-online.target without Wants=, no TimeoutStartSec, no OnFailure."""
    service = unit_settings("rotate-stats.service")
    assert service["Wants"] == ["network-online.target"]
    assert service["After"] == ["network-online.target"]
    assert service["TimeoutStartSec"] and service["TimeoutStartSec"][0] not in ("0", "infinity")
    assert service["OnFailure"] == ["rotate-stats-failure@%n.service"]
    assert (CRON / "rotate-stats-failure@.service").exists()
    assert service["SuccessExitStatus"] == ["75"]
    assert service["User"] == ["rotate-stats"] and service["Group"] == ["rotate-stats"]
    assert service["ExecStart"] == [INSTALLED_WRAPPER]
    # The same log file as the cron entry, which logrotate rotates.
    assert service["StandardOutput"] == [f"append:{LOG_FILE}"]
    assert service["StandardError"] == ["inherit"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictNamespaces": "yes",
        "LogsDirectory": "rotate-stats",
        "StateDirectory": "rotate-stats",
    }.items():
        assert service[key][0] == value, key
    assert "@system-service" in service["SystemCallFilter"]


def test_the_timer_starts_the_service_and_catches_up_after_downtime() -> None:
    timer = unit_settings("rotate-stats.timer")
    assert timer["Persistent"] == ["true"]
    assert timer["WantedBy"] == ["timers.target"]
    assert "Unit" not in timer  # rotate-stats.timer starts rotate-stats.service


def _cron_job() -> list[str]:
    lines = (CRON / "rotate-stats.cron").read_text().splitlines()
    jobs = [ln for ln in lines if ln.strip() and not ln.startswith("#") and "=" not in ln[:20]]
    assert len(jobs) == 1, jobs
    return jobs[0].split(None, 6)


def test_the_cron_entry_does_not_rely_on_cron_tz_and_fires_every_day() -> None:
    """Defect 4: Debian's cron ignores CRON_TZ; a time in 01:00-03:59 may be skipped or
    repeated on DST days in the host's zone."""
    text = (CRON / "rotate-stats.cron").read_text()
    assert not re.search(r"^\s*CRON_TZ=", text, re.M)
    minute, hour, dom, month, dow, user, command = _cron_job()
    assert minute.isdigit() and hour.isdigit() and not 1 <= int(hour) <= 3
    assert (dom, month, dow) == ("*", "*", "*")
    assert user == "rotate-stats"


def test_the_cron_entry_runs_the_same_wrapper_into_the_same_log_without_an_outer_flock() -> None:
    """Defect 8: ``flock -n`` around the wrapper skipped runs silently with exit 1; the
    wrapper now takes the lock itself and logs the skip."""
    command = _cron_job()[6]
    assert command.startswith(f"{INSTALLED_WRAPPER} >>{LOG_FILE} 2>&1; ")
    assert "flock" not in command


def test_logrotate_config_rotates_the_log_both_schedules_write() -> None:
    text = (DEPLOY / "logrotate.conf").read_text()
    assert re.search(rf"^{re.escape(LOG_FILE)} \{{", text, re.M)
    assert "su rotate-stats rotate-stats" in text  # the directory belongs to the service user
    assert "create 0640 rotate-stats rotate-stats" in text


def test_an_sqlite_database_in_the_state_directory_is_writable_under_protect_system() -> None:
    """ProtectSystem=strict leaves only the Logs/StateDirectory writable: the SQLite URL
    the example and the README suggest must lie in the state directory (SQLite also
    writes its journal next to the file, so the directory must be writable)."""
    service = unit_settings("rotate-stats.service")
    assert service["ProtectSystem"] == ["strict"]
    [state] = service["StateDirectory"]
    assert "ReadWritePaths" not in service  # nothing else is writable
    example = (CRON / "rotate-stats.env.example").read_text()
    urls = re.findall(r"sqlite:///(/\S+?\.sqlite3)", example + readme_section("Deployment"))
    assert urls
    for path in urls:
        assert Path(path).parent == Path("/var/lib") / state, path


def test_private_users_keeps_the_environment_file_readable_by_its_group() -> None:
    """PrivateUsers=yes maps only root and the unit's user and group into the service's
    user namespace; any other owner shows as nobody. Access is still checked against
    the real ids, so /etc/rotate-stats/rotate-stats.env (root:rotate-stats, 0640)
    stays readable through the group. Shown here in the worst case: a namespace that
    maps neither the file's owner nor its group."""
    require_root()
    for binary in ("setpriv", "unshare"):
        require_binary(binary)
    service = unit_settings("rotate-stats.service")
    assert service["PrivateUsers"] == ["yes"] and service["Group"] == ["rotate-stats"]
    tmp = shared_temp_dir("rotate-stats-units-")  # setpriv's nobody must reach it
    try:
        secret = Path(tmp) / "rotate-stats.env"
        secret.write_text("ROTATE_STATS_LOG_LEVEL=INFO\n")
        os.chown(secret, 0, 4321)
        secret.chmod(0o640)

        def read(*groups: str) -> subprocess.CompletedProcess[str]:
            ids = ["--reuid=65534", "--regid=65534", *groups]
            namespace = ["unshare", "--user", "--map-current-user"]
            return subprocess.run(
                ["setpriv", *ids, *namespace, "cat", str(secret)],
                capture_output=True,
                text=True,
                timeout=60,
            )

        with_group = read("--groups=4321")
        if "unshare failed" in with_group.stderr:
            (pytest.fail if IN_CI else pytest.skip)(
                f"no user namespaces here: {with_group.stderr.strip()}"
            )
        assert with_group.returncode == 0, with_group.stderr
        assert with_group.stdout == "ROTATE_STATS_LOG_LEVEL=INFO\n"
        without = read("--clear-groups")  # and the check is real
        assert without.returncode != 0 and "Permission denied" in without.stderr
    finally:
        shutil.rmtree(tmp)


def test_cron_and_systemd_runs_share_one_host_lock_in_the_state_directory() -> None:
    """A run by the timer, by cron and by hand (runuser) exclude each other only if
    they lock the same file: the wrapper's default, in the unit's StateDirectory
    (writable under ProtectSystem=strict)."""
    [default] = re.findall(r"ROTATE_STATS_FLOCK_FILE:-(\S+)\}", WRAPPER.read_text())
    [state] = unit_settings("rotate-stats.service")["StateDirectory"]
    assert Path(default).parent == Path("/var/lib") / state
    assert "ROTATE_STATS_FLOCK_FILE" not in (CRON / "rotate-stats.cron").read_text()
    assert "Environment" not in unit_settings("rotate-stats.service")


def test_the_random_delay_the_readme_announces_is_the_timers() -> None:
    """RandomizedDelaySec= delays every start, the catch-up at boot that Persistent=true
    triggers included: the README tells the operator how late NEXT may be."""
    timer = unit_settings("rotate-stats.timer")
    [delay] = timer["RandomizedDelaySec"]
    match = re.fullmatch(r"(\d+)min", delay)
    assert match is not None, delay
    minutes = int(match.group(1))
    assert minutes < 60  # still within the 03:00 hour, which exists every day
    assert f"(+ up to {minutes} min)" in readme_section("Deployment")
