"""The map at the top of docs/architecture.md holds: every module of ``keyrelease`` is in one
layer, imports only what its layer may import, and SQL text lives only in ``db/``.

The table is read from the document itself, so the map and this test cannot drift apart."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import keyrelease

SRC = Path(keyrelease.__file__).parent
DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
#: The third-party packages whose use the map governs; other libraries (cryptography, pyotp,
#: prometheus_client, …) are plain libraries any layer may use.
FRAMEWORKS = {"starlette", "strawberry", "graphql", "uvicorn", "tortoise", "asyncpg", "pluggy", "sqlite3", "httpx"}
SQL = re.compile(r"\bSELECT\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bFOR\s+UPDATE\b", re.IGNORECASE)
RAW_SQL_CALLS = {"execute_query", "execute_query_dict", "execute_script", "execute_insert", "execute_many", "executemany"}


@dataclass(frozen=True)
class Layer:
    name: str
    rank: int  # 0 is the top
    units: frozenset[str]
    own_layer: bool
    frameworks: frozenset[str]


def read_map(text: str) -> list[Layer]:
    section = text.split("## Map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    layers = []
    for rank, row in enumerate(rows):
        name, units, own, frameworks = (cell.strip() for cell in row.strip("|").split("|"))
        layers.append(Layer(name, rank, frozenset(re.findall(r"`([^`]+)`", units)), own == "yes",
                            frozenset(re.findall(r"`([^`]+)`", frameworks))))
    return layers


LAYERS = read_map(DOC.read_text())


def unit_of(path: Path) -> str:
    """src/keyrelease/graphql/view.py -> "graphql/"; src/keyrelease/app.py -> "app"."""
    parts = path.relative_to(SRC).parts
    return parts[0] + "/" if len(parts) > 1 else path.stem


def unit_of_module(name: str) -> str | None:
    """keyrelease.db.fastpath -> "db/"; keyrelease.policy -> "policy"; other packages -> None."""
    parts = name.split(".")
    if parts[0] != "keyrelease" or len(parts) == 1:
        return None
    return parts[1] + "/" if (SRC / parts[1]).is_dir() else parts[1]


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import that runs: those under ``if TYPE_CHECKING:`` are left out."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "keyrelease":  # from keyrelease import db, policy
                found += [(node.lineno, f"keyrelease.{alias.name}") for alias in node.names]
    return found


def layer_of(unit: str, layers: list[Layer]) -> Layer:
    matches = [layer for layer in layers if unit in layer.units]
    assert len(matches) == 1, f"{unit} is in {len(matches)} layers of the map in docs/architecture.md"
    return matches[0]


def violations(path: Path, layers: list[Layer], source: str | None = None) -> list[str]:
    """What ``path`` (its text, or ``source`` given for it) imports against the map."""
    mine = layer_of(unit_of(path), layers)
    if mine.name == "test helpers":  # they drive the whole service
        return []
    where = path.relative_to(SRC)
    found = []
    for line, module in runtime_imports(path.read_text() if source is None else source):
        top = module.split(".")[0]
        target = unit_of_module(module)
        if target is not None and target != unit_of(path):
            theirs = layer_of(target, layers)
            if theirs.name == "test helpers":
                found.append(f"{where}:{line}: imports {module}, which only tests and the benchmark may use")
            elif theirs.rank < mine.rank or (theirs.rank == mine.rank and not mine.own_layer):
                found.append(f"{where}:{line}: {mine.name} imports {module} ({theirs.name})")
        elif top in FRAMEWORKS and top not in mine.frameworks:
            found.append(f"{where}:{line}: {mine.name} imports {top}")
    return found


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_is_on_the_map():
    units = {unit_of(path) for path in modules() if path.parent != SRC or path.stem != "__init__"}
    mapped = set().union(*(layer.units for layer in LAYERS))
    assert units - mapped == set(), "add these to the map in docs/architecture.md"
    assert mapped - units == set(), "the map names modules that do not exist"


def test_every_import_follows_the_map():
    found = [v for path in modules() if path.parent != SRC or path.stem != "__init__" for v in violations(path, LAYERS)]
    assert found == []


@pytest.mark.parametrize(
    ("framework", "allowed"),
    [("strawberry", {"graphql/"}), ("graphql", {"graphql/"}), ("uvicorn", {"serve", "http_protocols"})],
)
def test_frameworks_stay_where_they_belong(framework, allowed):
    users = {unit_of(path) for path in modules() for _, module in runtime_imports(path.read_text()) if module.split(".")[0] == framework}
    assert users and users <= allowed


def sql_findings(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (match := SQL.search(node.value)):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: SQL text {match.group()!r}")
        if isinstance(node, ast.Attribute) and node.attr in RAW_SQL_CALLS:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: raw SQL call .{node.attr}")
    return found


def test_sql_is_written_and_run_only_in_db():
    outside = [path for path in modules() if unit_of(path) not in {"db/", "migrations/"}]
    assert [finding for path in outside for finding in sql_findings(path)] == []


# The checks above can fail: each is shown a break of its rule.


def test_the_map_is_read_from_the_document():
    names = [layer.name for layer in LAYERS]
    assert names == ["entry points", "settings", "HTTP", "service", "mail", "storage", "domain", "test helpers"]
    assert layer_of("service/", LAYERS).frameworks == {"tortoise"}
    assert layer_of("testing/", LAYERS).frameworks == set()


def test_an_upward_import_is_a_violation():
    keys = SRC / "service" / "keys.py"
    assert violations(keys, LAYERS) == []
    # service/ importing Starlette, the HTTP layer, the settings or the test helpers
    broken = (
        "from starlette.requests import Request\n"
        "from keyrelease.graphql import view\n"
        "from keyrelease import config\n"
        "import keyrelease.testing.postgres\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from keyrelease.app import create_app\n"
    )
    assert violations(keys, LAYERS, broken) == [
        "service/keys.py:1: service imports starlette",
        "service/keys.py:2: service imports keyrelease.graphql (HTTP)",
        "service/keys.py:3: service imports keyrelease.config (settings)",
        "service/keys.py:4: imports keyrelease.testing.postgres, which only tests and the benchmark may use",
    ]


def test_sql_outside_db_is_seen():
    assert any("SQL text" in f for f in sql_findings(SRC / "db" / "fastpath.py"))
    assert any("raw SQL call" in f for f in sql_findings(SRC / "db" / "fastpath.py"))
