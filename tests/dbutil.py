"""Reading the test database directly, on SQLite or PostgreSQL, to check what rests there."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
from tortoise.models import Model

from keyrelease import models
from keyrelease.db import is_sqlite
from keyrelease.db.fastpath import placeholders
from keyrelease.testing.postgres import asyncpg_dsn as asyncpg_url

__all__ = ["TABLES", "asyncpg_url", "dump", "is_sqlite", "query"]

#: Every table of the models, in the order they are declared.
TABLES = tuple(
    value._meta.db_table
    for value in vars(models).values()
    if isinstance(value, type) and issubclass(value, Model) and value is not Model
)


async def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one statement with ``?`` placeholders; rows as dicts (values as text on SQLite)."""
    if is_sqlite(database_url):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(sql, [str(a) for a in args]).fetchall()
            return [dict(row) for row in rows]
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        return [dict(row) for row in await conn.fetch(placeholders(sql, "postgres"), *args)]
    finally:
        await conn.close()


async def dump(database_url: str) -> str:
    """Every row of every table, as text."""
    parts = []
    for table in TABLES:
        for row in await query(database_url, f"SELECT * FROM {table}"):
            parts.append(f"{table}: " + " | ".join(f"{k}={v}" for k, v in row.items()))
    return "\n".join(parts)
