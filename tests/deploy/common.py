"""What the deployment tests share: the repository's paths and the README's deployment blocks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRON = ROOT / "cron"
DEPLOY = ROOT / "deploy"
WRAPPER = CRON / "run-rotate-stats"
README = ROOT / "README.md"
IN_CI = os.environ.get("CI") == "true"

# Root-level paths of a Debian host's PATH (the README's commands run in a root shell).
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def readme_section(title: str) -> str:
    """The text of the README's ``## title`` section (up to the next ``## ``)."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def deploy_blocks() -> dict[str, str]:
    """The README's ```sh blocks in "Deployment" whose first line is ``# deploy: NAME``."""
    blocks = {}
    for body in re.findall(r"^```sh\n(.*?)^```", readme_section("Deployment"), re.S | re.M):
        first, _, rest = body.partition("\n")
        if first.startswith("# deploy: "):
            blocks[first.removeprefix("# deploy: ").strip()] = body
    return blocks


def unit_text(name: str) -> str:
    return (CRON / name).read_text()


def unit_settings(name: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (every value of a repeated key, in order)."""
    settings: dict[str, list[str]] = {}
    for line in unit_text(name).splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def require_root() -> None:
    """Tests that create users and chown files: root only (CI runs as root)."""
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("needs root (CI=true runs as root)")
