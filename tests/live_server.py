"""A live ``keyrelease serve`` for the tests that need a real process (requests genuinely in
parallel, the CLI beside the server): one server per test module, on each of BACKENDS, with
the console mail transport, on a migrated database (a scratch SQLite file, or the run's
PostgreSQL database emptied).

A test module takes the fixture by name (``live_server = live_server.live_server``, as the
browser tests take ``console_browser``'s) and builds its own ``live`` on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from environment import BACKENDS, empty_postgres
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import base_env


@pytest.fixture(scope="module", params=BACKENDS)
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """The running server and its environment (for ``run_cli`` against the same database)."""
    tmp = tmp_path_factory.mktemp("live")
    env = base_env(tmp, KEYRELEASE_MAIL_TRANSPORT="console")
    if request.param == "postgres":
        env["KEYRELEASE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        empty_postgres(env["KEYRELEASE_DATABASE_URL"])
    migrated = run_cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    server = Server(env=env, log_path=tmp / "server.log").start()
    try:
        yield server, env
    finally:
        server.stop()
