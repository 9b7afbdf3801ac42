"""What this machine offers the tests, and the skips that say what is missing.

Every test that touches the database runs on SQLite and on PostgreSQL (:data:`BACKENDS`); the
PostgreSQL variants are always collected and, without ``KEYRELEASE_TEST_POSTGRES_URL``, skipped
saying why. A skip whose reason starts with :data:`MISSING` names a part of the test environment
that is absent (PostgreSQL, Chromium, Node, wrk): conftest.py lists each with its reason and,
under ``CI=true``, fails the run instead, so a CI machine that lost a service cannot pass by
skipping what needs it. Import it as ``import environment`` (pytest puts ``tests/`` on
``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator

import asyncpg
import pytest

from dbutil import TABLES, asyncpg_url
from keyrelease.testing import postgres

MISSING = "missing from this environment: "
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str) -> str:
    """The reason for skipping a test that needs ``what``, which this machine does not have."""
    return MISSING + what


def needs_executable(path: str, install: str) -> pytest.MarkDecorator:
    """Skip (fail under CI) unless ``path`` is an executable: an absolute path, exactly as the
    test runs it, or a name looked up on PATH (e.g. ``node``). ``install`` says how to get it."""
    found = os.access(path, os.X_OK) if os.path.isabs(path) else shutil.which(path) is not None
    return pytest.mark.skipif(not found, reason=missing(f"{path} ({install})"))


POSTGRES_SERVER = os.environ.get("KEYRELEASE_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite", "postgres"]
NO_POSTGRES = missing(
    "PostgreSQL (set KEYRELEASE_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres)"
)
#: For tests that need PostgreSQL whatever the backend parameter.
needs_postgres = pytest.mark.skipif(not POSTGRES_SERVER, reason=NO_POSTGRES)


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped on the way out."""
    with postgres.scratch_postgres(POSTGRES_SERVER, f"{prefix}_{os.getpid()}") as url:
        yield url


def empty_postgres(url: str) -> None:
    """Empty every table of the PostgreSQL database at ``url``."""

    async def truncate() -> None:
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
