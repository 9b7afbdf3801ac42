"""``keyrelease.testing`` is for tests and the benchmark only: no production module imports it,
and starting the service, the worker or the CLI does not load it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTING = ROOT / "src" / "keyrelease" / "testing"


def lines_importing_testing(source: str) -> list[int]:
    """The line of every import statement in ``source`` that names keyrelease.testing, at any
    depth (a function's own import too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == "keyrelease.testing" or name.startswith("keyrelease.testing.") for name in names):
            found.append(node.lineno)
    return found


def test_no_production_module_imports_keyrelease_testing():
    production = [
        path
        for path in [*(ROOT / "src" / "keyrelease").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
        if TESTING not in path.parents
    ]
    assert len(production) > 40  # the walk found the package
    hits = {str(path.relative_to(ROOT)): lines for path in production if (lines := lines_importing_testing(path.read_text()))}
    assert hits == {}


def test_the_check_sees_every_form_of_the_import():
    source = (
        "import keyrelease.testing.api\n"
        "from keyrelease.testing import mail\n"
        "import keyrelease.testingx, keyrelease.test\n"
        "def f():\n"
        "    from keyrelease import testing\n"
        "from keyrelease import testing_other\n"
    )
    assert lines_importing_testing(source) == [1, 2, 5]


def test_starting_the_service_loads_nothing_from_keyrelease_testing():
    code = (
        "import sys, keyrelease.cli, keyrelease.app, keyrelease.worker, keyrelease.serve; "
        "print(sorted(m for m in sys.modules if m.startswith('keyrelease.testing')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
