"""Database configuration and migrations (Tortoise's built-in migration framework)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate

APP = "models"
MODELS_MODULE = "keyrelease.models"
MIGRATIONS_MODULE = "keyrelease.migrations"


def tortoise_config(database_url: str) -> dict[str, Any]:
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": database_url},
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


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite://")


async def apply_migrations(database_url: str) -> None:
    """Bring the schema up to the latest migration, then close the connections it opened."""
    try:
        await tortoise_migrate(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


@contextlib.asynccontextmanager
async def connected(database_url: str) -> AsyncIterator[None]:
    """Tortoise initialised for a CLI command; connections closed on the way out so the
    process can exit."""
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()


#: For Tortoise's own CLI: ``tortoise -c keyrelease.db.TORTOISE_ORM makemigrations``.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
