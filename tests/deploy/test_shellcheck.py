"""Every shell script in the repository, and the README's deployment blocks, pass shellcheck."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.deploy.common import ROOT, deploy_blocks

SKIP_DIRS = {".git", ".venv", "__pycache__", ".hypothesis", "build", "dist", "node_modules"}
SHELL = re.compile(r"^#!\s*(/usr/bin/env\s+)?(/usr)?(/bin/)?(ba|da|k)?sh\b")


def shell_scripts() -> list[Path]:
    """Files whose first line is a sh/bash shebang, or named *.sh."""
    found = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(directory, name)
            try:
                with path.open("rb") as handle:
                    first = handle.readline(200).decode("utf-8", "replace")
            except OSError:
                continue
            if name.endswith(".sh") or SHELL.match(first):
                found.append(path)
    return sorted(found)


def test_the_scripts_that_must_be_found_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in shell_scripts()}
    assert {"cron/run-rotate-stats", "scripts/setup", "scripts/test", "scripts/demo"} <= names
    assert ".ci/run" in names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_is_clean(script: Path) -> None:
    binary = require_binary("shellcheck")
    result = subprocess.run(
        [binary, "--severity=style", "--external-sources", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(deploy_blocks()))
def test_shellcheck_is_clean_on_the_readme_deployment_blocks(name: str) -> None:
    binary = require_binary("shellcheck")
    result = subprocess.run(
        [binary, "--shell=bash", "--severity=style", "-"],
        input=deploy_blocks()[name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
