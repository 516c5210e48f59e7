"""What the deployment tests share: the repository's paths and the README's deployment blocks."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
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


def others_can_reach(path: Path) -> bool:
    """Can every user traverse each directory from ``/`` down to ``path``?"""
    path = path.resolve()
    return all(d.stat().st_mode & stat.S_IXOTH for d in (path, *path.parents))


def shared_temp_dir(prefix: str) -> Path:
    """A new directory (mode 0755) that any user can reach: for tests that run something
    as another user (``nobody``, a throwaway service user). The checkout may sit where
    only its owner can enter (``/root``, a 0700 home, a ``mktemp -d`` folder), and so
    may ``$TMPDIR``: the first of ``$TMPDIR``, ``/tmp``, ``/var/tmp`` that others can
    reach is used. Whatever such a test runs from the checkout is copied in (issue 17,
    item 6)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        base = Path(candidate)
        if base.is_dir() and others_can_reach(base):
            made = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
            made.chmod(0o755)
            return made
    raise RuntimeError("no temporary directory that other users can reach (/tmp, /var/tmp)")


def reachable_copy(source: Path, directory: Path) -> Path:
    """``source`` (a script of the checkout) copied into ``directory`` (a
    ``shared_temp_dir``), executable by anyone: what another user runs."""
    target = directory / source.name
    shutil.copy2(source, target)
    target.chmod(0o755)
    return target
