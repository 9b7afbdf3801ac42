"""Only ``keyrelease.db`` (and ``migrations/``, Tortoise's) holds SQL text or runs it raw; and
nothing in the service imports the test helpers of ``keyrelease.testing``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keyrelease

SRC = Path(keyrelease.__file__).parent
ALLOWED = (SRC / "db", SRC / "migrations")
SQL = re.compile(r"\bSELECT\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bFOR\s+UPDATE\b", re.IGNORECASE)
RAW = {"execute_query", "execute_query_dict", "execute_script", "execute_insert", "execute_many", "executemany"}


def _modules(outside: tuple[Path, ...]) -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if not any(p.is_relative_to(d) for d in outside)]


def _findings(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: SQL text {SQL.search(node.value).group()!r}")
        if isinstance(node, ast.Attribute) and node.attr in RAW:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: raw SQL call .{node.attr}")
    return found


def test_sql_is_written_and_run_only_in_keyrelease_db():
    found = [finding for path in _modules(ALLOWED) for finding in _findings(path)]
    assert found == []


def test_the_check_sees_sql_where_it_is():
    """The check above can fail: it finds the fast path's statements and calls."""
    found = _findings(SRC / "db" / "fastpath.py")
    assert any("SQL text" in f for f in found) and any("raw SQL call" in f for f in found)


def test_nothing_in_the_service_imports_the_test_helpers():
    importers = []
    for path in _modules((SRC / "testing",)):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom):  # from keyrelease.testing import x; from keyrelease import testing
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if any(name == "keyrelease.testing" or name.startswith("keyrelease.testing.") for name in names):
                importers.append(str(path.relative_to(SRC)))
    assert importers == []
