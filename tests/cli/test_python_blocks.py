"""Every Python block of the README and docs/ runs as written, and every public name
is what the docs say it is, whatever was imported first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import rotate_stats
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> list[tuple[str, int, str]]:
    """(document, line, code) of every ```python block."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
            line = text.count("\n", 0, match.start()) + 1
            found.append((path.name, line, match.group(1)))
    return found


def test_the_documents_have_python_blocks() -> None:
    assert any(name == "README.md" for name, _, _ in python_blocks())


@pytest.mark.parametrize(("name", "line", "code"), python_blocks(), ids=lambda v: str(v)[:20])
def test_a_python_block_runs_as_written(
    name: str, line: int, code: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """In a fresh interpreter (the import order is the block's own), in an empty
    directory, against the test's Redis (ROTATE_STATS_REDIS_URL)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "ROTATE_STATS_REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{name}:{line}\n{result.stderr}"


EVERY_MODULE = (
    "import importlib, pkgutil, rotate_stats\n"
    "for m in pkgutil.iter_modules(rotate_stats.__path__):\n    if m.name != '__main__':\n"
    "        importlib.import_module('rotate_stats.' + m.name)\n"
)
ORDERS = [
    EVERY_MODULE + "from rotate_stats import rotate",
    "from rotate_stats import rotate\n" + EVERY_MODULE,
    EVERY_MODULE + "from rotate_stats import *",
]


@pytest.mark.parametrize("imports", ORDERS)
def test_public_names_are_never_modules_whatever_the_import_order(imports: str) -> None:
    """``from rotate_stats import rotate`` once gave the submodule of that name when it
    had been imported before: every public name is a class, function or value."""
    check = (
        f"{imports}\nimport types, rotate_stats as p\n"
        "bad = [n for n in p.__all__ if isinstance(getattr(p, n), types.ModuleType)]\n"
        "assert not bad, bad\nassert callable(p.rotate) and p.rotate.__name__ == 'rotate'\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_public_name_is_exported() -> None:
    for name in rotate_stats.__all__:
        assert getattr(rotate_stats, name) is not None
