"""docs/OPERATIONS.md and the README's Deployment section stay in step with the files."""

from __future__ import annotations

import re

from rotate_stats.report import ExitCode
from tests.deploy.common import CRON, ROOT, deploy_blocks, readme_section, unit_settings

OPERATIONS = (ROOT / "docs" / "OPERATIONS.md").read_text()


def _sections(text: str, level: str) -> list[str]:
    return re.findall(rf"^{level} (.+)$", text, re.M)


def test_the_runbook_has_its_sections() -> None:
    assert _sections(OPERATIONS, "##") == [
        "Deploy",
        "Upgrade",
        "Exit codes",
        "Repairing a bad value",
        "Moving to another database",
        "Monitoring and alerts",
    ]


def test_the_runbook_says_what_to_do_for_every_exit_code() -> None:
    headings = _sections(OPERATIONS, "###")
    for code in ExitCode:
        assert f"Exit {int(code)}" in headings, code
        body = OPERATIONS.split(f"### Exit {int(code)}\n", 1)[1].split("\n### ", 1)[0]
        assert len(body.split()) > 40, f"exit {int(code)}: say what to do"


def test_the_runbook_uses_the_deployed_paths() -> None:
    [wrapper] = unit_settings("rotate-stats.service")["ExecStart"]
    assert f"runuser -u rotate-stats -- {wrapper} status" in OPERATIONS
    wrapper_text = (CRON / "run-rotate-stats").read_text()
    for default in re.findall(r"\$\{ROTATE_STATS_\w+:?-([^}]+)\}", wrapper_text):
        assert default in OPERATIONS or default in readme_section("Deployment"), default
    assert "/var/log/rotate-stats/rotate.log" in OPERATIONS


def test_the_readme_deployment_section_replaces_scheduling() -> None:
    text = (ROOT / "README.md").read_text()
    assert "## Scheduling" not in text
    section = readme_section("Deployment")
    assert "docs/OPERATIONS.md" in section
    assert set(deploy_blocks()) == {"install", "first run", "cron"}
    install = deploy_blocks()["install"]
    # Defect 1 and 4: the directory, the owner and mode of the env file, the user, the venv,
    # the log and state directories, logrotate; migrate; the timer.
    assert "useradd --system" in install
    assert 'install -d -o root -g "$SERVICE_USER" -m 0750 "$DESTDIR/etc/rotate-stats"' in install
    assert 'chown root:"$SERVICE_USER" "$DESTDIR/etc/rotate-stats/rotate-stats.env"' in install
    assert 'chmod 0640 "$DESTDIR/etc/rotate-stats/rotate-stats.env"' in install
    assert "python3 -m venv" in install and "/var/log/rotate-stats" in install
    assert "/etc/logrotate.d/rotate-stats" in install
    assert 'run-rotate-stats" migrate' in deploy_blocks()["first run"]
    assert "systemctl enable --now rotate-stats.timer" in section
