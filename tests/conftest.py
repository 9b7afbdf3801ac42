"""Shared fixtures: a migrated SQLite database per test, the real app with its lifespan,
an HTTP client going through the ASGI stack, a frozen clock, and the memory mail transport
(``keyrelease.testing.mail``, registered by ``tests/keyrelease-memory``, which ``make install``
installs, and loaded through its entry point like any third-party transport).

Fixtures only: test files import what they call from ``keyrelease.testing`` (the client, the
flow, the documents, processes) and from ``environment`` (skips for what this machine lacks)."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from environment import BACKENDS, IN_CI, MISSING, NO_POSTGRES, POSTGRES_SERVER, empty_postgres, scratch_postgres
from keyrelease import db, logs
from keyrelease.app import create_app
from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.testing.api import Api
from keyrelease.testing.settings import base_env
from sqlcount import StatementCounter, counting_pool

try:  # registers the memory mail transport every test reads its mail from: a package of its own
    import keyrelease_memory  # noqa: F401
except ImportError:  # pragma: no cover - the message says what to do
    pytest.exit("the memory mail transport is not installed: run `make install` "
                "(or .venv/bin/pip install -e tests/keyrelease-memory)", returncode=4)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _missing_environment(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    _missing_environment(report)  # a module skipped as a whole
    return report


def _missing_environment(report: pytest.TestReport | pytest.CollectReport) -> None:
    """A skip for want of the environment: a failure under CI; otherwise reported at this file,
    so the summary folds every such skip into one line per missing part, with its count."""
    if not (report.skipped and isinstance(report.longrepr, tuple) and MISSING in report.longrepr[2]):
        return
    reason = report.longrepr[2].removeprefix("Skipped: ")
    if IN_CI:
        report.outcome = "failed"
        report.longrepr = f"CI=true, so a test may not skip for want of its environment: {reason}"
    else:
        report.longrepr = (__file__, None, reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once, dropped at the end."""
    if not POSTGRES_SERVER:
        pytest.skip(NO_POSTGRES)
    with scratch_postgres("keyrelease_test") as url:
        asyncio.run(db.apply_migrations(url))
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: a copy of a SQLite template, or the run's PostgreSQL
    database with every table emptied."""
    # Tortoise caches INSERT/DELETE statements per connection name, in the first backend's
    # dialect. One process here alternates backends (a real service never does): start clean.
    EXECUTOR_CACHE.clear()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        empty_postgres(url)
        return url
    tmp_path: Path = request.getfixturevalue("tmp_path")
    shutil.copy(request.getfixturevalue("migrated_template"), tmp_path / "keyrelease.sqlite3")
    return f"sqlite://{tmp_path / 'keyrelease.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file with every migration applied; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    asyncio.run(db.apply_migrations(f"sqlite://{path}"))
    return path


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, env_overrides: dict[str, str]) -> Settings:
    return Settings.from_env(base_env(tmp_path, KEYRELEASE_DATABASE_URL=database_url, **env_overrides))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> StatementCounter:
    """Counts the SQL statements the service sends (tests/sqlcount.py). Request it before the
    app starts: on PostgreSQL only a pool created afterwards reports to it."""
    counter = StatementCounter()
    counting_pool(monkeypatch, counter)
    return counter


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test") as http:
        yield http


@dataclass
class WrittenLog:
    """What keyrelease's own handler writes, in both formats, for every record of a test."""

    text: io.StringIO
    json: io.StringIO

    def both(self) -> str:
        return self.text.getvalue() + self.json.getvalue()


@pytest.fixture
def written_log() -> Iterator[WrittenLog]:
    """keyrelease's real log handlers (text and JSON) on the root logger at DEBUG, as
    ``keyrelease serve`` writes to stderr: what a log reader would see."""
    written = WrittenLog(io.StringIO(), io.StringIO())
    handlers = [logs.handler("text", written.text), logs.handler("json", written.json)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield written
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def api(client: httpx.AsyncClient, app: Any) -> Api:
    return Api(client=client, app=app)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many generated cases the fuzz tests ran, so a run shows how much was fuzzed."""
    from fuzzcounts import COUNTS

    if COUNTS:
        terminalreporter.write_line(
            "fuzz cases run: " + ", ".join(f"{label} {count}" for label, count in sorted(COUNTS.items()))
            + " (no 5xx, no traceback, no internal error, no ERROR record)"
        )
