"""The database: connection configuration and migrations (Tortoise's built-in migration
framework). The rest of the package:

* :mod:`keyrelease.db.sqlite`: Tortoise's SQLite client, with transactions that take the write
  lock when they begin (``BEGIN IMMEDIATE``);
* :mod:`keyrelease.db.fastpath`: every SQL statement keyrelease writes by hand (migrations
  aside), behind named functions: the point reads of the hot paths, the rate-limit upsert, the
  budget's conditional insert, and every private Tortoise hook they need.

Nothing outside this package (and ``migrations/``) holds SQL text.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as tortoise_migrate

from keyrelease import files
from keyrelease.db import fastpath

APP = "models"
MODELS_MODULE = "keyrelease.models"
MIGRATIONS_MODULE = "keyrelease.migrations"


@dataclass(frozen=True)
class PoolSettings:
    """PostgreSQL connection pool bounds. Every wait is bounded, so an outage or an exhausted
    pool becomes a clean error instead of a hung request."""

    size: int = 10
    connect_timeout: float = 5.0
    command_timeout: float = 10.0


def _connection(database_url: str, pool: PoolSettings) -> str | dict[str, Any]:
    if is_sqlite(database_url):
        config = expand_db_url(database_url)
        path = config["credentials"]["file_path"]
        if path and path != ":memory:":
            files.private_file(Path(path))  # 0600, and so its -wal and -shm files; 0700 directory
        return {**config, "engine": "keyrelease.db.sqlite"}  # BEGIN IMMEDIATE; see db/sqlite.py
    parts = urlsplit(database_url)
    params = dict(parse_qsl(parts.query))
    return {
        "engine": "tortoise.backends.asyncpg",
        "credentials": {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password) if parts.password else None,
            "database": unquote(parts.path.lstrip("/")) or "postgres",
            "minsize": 1,
            "maxsize": pool.size,
            "timeout": pool.connect_timeout,
            "command_timeout": pool.command_timeout,
            "reset": _release_without_reset,
            **({"ssl": params["sslmode"]} if "sslmode" in params else {}),
            **({"application_name": params["application_name"]} if "application_name" in params else {}),
        },
    }


async def _release_without_reset(connection: asyncpg.Connection) -> None:
    """What the pool runs when a connection comes back, after asyncpg has rolled back any open
    transaction: nothing. asyncpg's default also sends ``RESET ALL; CLOSE ALL; UNLISTEN *;
    SELECT pg_advisory_unlock_all()``, one more round trip per query outside a transaction,
    for session state keyrelease never sets (no SET, cursors, LISTEN or advisory locks)."""


def tortoise_config(database_url: str, pool: PoolSettings | None = None) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(database_url, pool or PoolSettings())},
        "apps": {
            APP: {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


_UNAVAILABLE = (
    OSError,  # connection refused or reset
    TimeoutError,  # connect, command or pool wait timed out
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the database cannot be reached right now:
    a transient condition worth a 503 and a retry, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNAVAILABLE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def migration_names() -> set[str]:
    """The migrations shipped in the package."""
    package = importlib.import_module(MIGRATIONS_MODULE)
    return {m.name for m in pkgutil.iter_modules(package.__path__) if m.name[:4].isdigit()}


async def pending_migrations() -> set[str]:
    """Shipped migrations not yet applied to the connected database."""
    return migration_names() - await fastpath.applied_migrations(APP)


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite://")


async def apply_migrations(database_url: str, pool: PoolSettings | None = None) -> None:
    """Bring the schema up to the latest migration, then close the connections it opened."""
    try:
        await tortoise_migrate(config=tortoise_config(database_url, pool))
    finally:
        await Tortoise.close_connections()


@contextlib.asynccontextmanager
async def connected(database_url: str, pool: PoolSettings | None = None) -> AsyncIterator[None]:
    """Tortoise initialised for a CLI command or the worker; connections closed on the way
    out so the process can exit."""
    await Tortoise.init(config=tortoise_config(database_url, pool), _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()


#: For Tortoise's own CLI: ``tortoise -c keyrelease.db.TORTOISE_ORM makemigrations``.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
