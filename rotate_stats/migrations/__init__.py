"""Ordered, forward-only SQL migrations shipped with the package.

Files are ``NNNN_description.sql``, applied in name order. Each file holds
plain statements separated by ``;`` at the end of a line; ``--`` comments are
dropped. A migration and its row in ``rotate_stats_migrations`` are committed
together (one SQLite transaction, one rqlite ``transaction`` request).
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass

_NAME = re.compile(r"[0-9]{4}_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    """One migration file: its name (without ``.sql``) and its statements."""

    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements of a migration file: comments dropped, split on ``;`` at line ends."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return tuple(p.strip() for p in parts if p.strip())


def load() -> list[Migration]:
    """Every migration of this package, in order."""
    files = importlib.resources.files(__name__)
    names = sorted(f.name for f in files.iterdir() if _NAME.fullmatch(f.name))
    return [
        Migration(n.removesuffix(".sql"), split_statements(files.joinpath(n).read_text("utf-8")))
        for n in names
    ]
