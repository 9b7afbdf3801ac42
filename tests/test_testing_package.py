"""``keyrelease.testing`` is for tests and the benchmark only: starting the service, the worker
or the CLI loads nothing from it (tests/test_sql_lives_in_db.py checks that no module of the
service imports it)."""

from __future__ import annotations

import subprocess
import sys


def test_starting_the_service_loads_nothing_from_keyrelease_testing():
    code = (
        "import sys, keyrelease.cli, keyrelease.app, keyrelease.worker, keyrelease.serve; "
        "print(sorted(m for m in sys.modules if m.startswith('keyrelease.testing')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
