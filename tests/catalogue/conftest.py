"""Fixtures of the bad-input catalogue: the CLI's own ``run`` and ``database``."""

from __future__ import annotations

from tests.cli.test_cli import database, run

__all__ = ["database", "run"]
