"""The built wheel ships the Lua scripts, the migrations and py.typed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_lua_and_sql(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("rotate_stats-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for script in ROOT.glob("rotate_stats/*.lua"):
        assert f"rotate_stats/{script.name}" in names
    for migration in ROOT.glob("rotate_stats/migrations/*.sql"):
        assert f"rotate_stats/migrations/{migration.name}" in names
    assert "rotate_stats/py.typed" in names
    assert not any(n.startswith("tests/") for n in names)
