"""The README and --help stay honest: every command, flag, variable and exit code is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import rotate_stats
from rotate_stats.cli import COMMANDS, build_parser
from rotate_stats.report import ExitCode
from rotate_stats.settings import ENVIRONMENT

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_readme_names_every_command_and_flag() -> None:
    subs = _subparsers()
    assert set(subs) == set(COMMANDS)
    for name, sub in subs.items():
        assert f"python -m rotate_stats {name}" in README or name == "rotate"
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in README, f"{name} {flag} is not in the README"


def test_readme_names_every_variable_and_exit_code() -> None:
    for name in ENVIRONMENT:
        assert f"`{name}`" in README
    for code in ExitCode:
        assert f"| {int(code)} |" in README


def test_every_command_has_help_text() -> None:
    for name, sub in _subparsers().items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_public_api_is_pinned() -> None:
    assert rotate_stats.__all__ == sorted(rotate_stats.__all__)
    assert set(rotate_stats.__all__) == {
        "AmbiguousWrite", "CheckReport", "ConfigError", "DataError", "DateOutcome", "DateState",
        "DayCounts", "ExitCode", "Finding", "Invariant", "LockHeld", "NotMigrated", "Recorder",
        "RotateOptions", "RotateStatsError", "RotationReport", "RqliteStore", "Settings",
        "SqliteStore", "Status", "Store", "StoreError", "__version__", "check", "check_day",
        "migrate", "rotate", "status",
    }  # fmt: skip
    for name in rotate_stats.__all__:
        assert getattr(rotate_stats, name) is not None
