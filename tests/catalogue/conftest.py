"""Fixtures of the bad-input catalogue: ``database`` and ``run``.

``run`` calls ``rotate_stats.cli.main`` in this process, with the environment it would
give a subprocess and stdout/stderr captured: the catalogue checks exit codes,
messages and what changed, which do not depend on a process of their own, and a
subprocess per case (Python start-up and imports) was most of the suite's CPU.
``tests/cli`` runs the real program as a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from typing import Any

import pytest
import redis

from rotate_stats.cli import main
from tests.cli.test_cli import Database, Run, database

__all__ = ["database", "run"]


@pytest.fixture
def run(redis_server: Any, redis_client: redis.Redis) -> Run:
    url = redis_server.url

    def _run(
        *args: str, env: dict[str, str] | None = None, database: Database | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
        full["ROTATE_STATS_REDIS_URL"] = url
        if database is not None:
            full["ROTATE_STATS_DATABASE_URL"] = database.url
        full.update(env or {})
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args), environ=full)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else 1
        return subprocess.CompletedProcess(
            ["rotate_stats", *args], code, out.getvalue(), err.getvalue()
        )

    return _run
