"""The GraphiQL bundle committed in the package is exactly what src/keyrelease/web/graphiql/ builds from its
pinned sources (package-lock.json): `npm ci` and `node build.mjs` into a temporary directory,
then every file compared byte for byte with src/keyrelease/web/static/graphiql/."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from environment import needs_executable

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "keyrelease" / "web" / "graphiql"
COMMITTED = ROOT / "src" / "keyrelease" / "web" / "static" / "graphiql"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH")


def digests(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "CI": "1"})


@needs_executable("node", "apt-get install nodejs")
@needs_executable("npm", "apt-get install npm")
def test_the_committed_graphiql_is_what_the_build_script_builds(tmp_path: Path):
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm
    work = tmp_path / "graphiql"
    shutil.copytree(SOURCE, work, ignore=shutil.ignore_patterns("node_modules"))
    installed = run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], work)
    if installed.returncode != 0 and any(code in installed.stderr for code in NETWORK_ERRORS):
        pytest.skip(f"npm registry unreachable: {installed.stderr.strip().splitlines()[-1]}")
    assert installed.returncode == 0, installed.stderr
    built = run([node, "build.mjs", str(tmp_path / "out")], work)
    assert built.returncode == 0, built.stderr

    fresh, committed = digests(tmp_path / "out"), digests(COMMITTED)
    assert len(committed) > 5
    differing = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not differing, f"run `make graphiql` and commit the result; these differ from a fresh build: {differing}"
