"""Dependencies point one way; pure modules import no I/O library (STYLE rules 1 and 5)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rotate_stats"
PURE = {"dates", "family", "invariants", "errors", "report"}
IO_LIBRARIES = {"redis", "pyrqlite", "sqlite3", "socket", "http", "urllib3", "requests", "os"}
# module -> modules of ours it may import
ALLOWED = {
    "errors": set(),
    "dates": set(),
    "family": set(),
    "invariants": {"family", "dates"},
    "settings": {"errors"},
    "report": {"dates", "family", "invariants"},
    "migrations": set(),
}


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(our modules, third-party/stdlib top-level names) imported by a file."""
    tree = ast.parse(path.read_text())
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    ours.add(node.module.split(".")[0])
                else:
                    ours.update(alias.name for alias in node.names)
            elif node.module:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others.update(alias.name.split(".")[0] for alias in node.names)
    return ours, others


def test_pure_modules_import_no_io() -> None:
    for name in PURE:
        ours, others = imports_of(PACKAGE / f"{name}.py")
        assert not others & IO_LIBRARIES, (name, others & IO_LIBRARIES)
        assert ours <= ALLOWED[name], (name, ours - ALLOWED[name])


def test_nothing_imports_the_cli() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.stem not in ("cli", "__main__"):
            ours, _ = imports_of(path)
            assert "cli" not in ours, path.name


def test_library_never_prints_or_exits() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("cli", "__main__"):
            continue
        text = path.read_text()
        assert not re.search(r"\bprint\(|sys\.exit\(", text), path.name


def test_key_literals_live_in_family_only() -> None:
    for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("*.lua")]:
        if path.stem != "family":
            assert "stats:journal_chat_jobs" not in path.read_text(), path.name


def test_sql_uses_only_qmark_placeholders_and_plain_types() -> None:
    """rqlite/pyrqlite sharp edges: no named parameters, column types TEXT/INTEGER/REAL only."""
    from rotate_stats import database
    from rotate_stats.migrations import load

    statements = [v for k, v in vars(database).items() if k.isupper() and isinstance(v, str)]
    statements += [s for m in load() for s in m.statements]
    for sql in statements:
        assert not re.search(r"[:@$][A-Za-z_]", sql), sql
    for migration in load():
        for sql in migration.statements:
            if sql.upper().startswith("CREATE TABLE"):
                body = sql[sql.index("(") + 1 : sql.rindex(")")]
                body = re.sub(r",\s*PRIMARY KEY \([^)]*\)", "", body)  # a table constraint
                for column in body.split(","):
                    words = column.split()
                    assert words[1] in ("TEXT", "INTEGER", "REAL"), (migration.name, column)
