"""Reading the test database directly, on SQLite or PostgreSQL, to check what rests there."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import asyncpg

TABLES = (
    "institution", "admin", "admin_token", "api_key", "key_event", "outbox_message", "rate_limit_counter",
    "admin_budget_entry",
)


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite://")


def asyncpg_url(database_url: str) -> str:
    return re.sub(r"^(postgres|postgresql|asyncpg)://", "postgresql://", database_url)


async def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one statement with ``$1``-style parameters; rows as dicts (values as text on SQLite)."""
    if is_sqlite(database_url):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(re.sub(r"\$\d+", "?", sql), [str(a) for a in args]).fetchall()
            return [dict(row) for row in rows]
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        return [dict(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def dump(database_url: str) -> str:
    """Every row of every table, as text."""
    parts = []
    for table in TABLES:
        for row in await query(database_url, f"SELECT * FROM {table}"):
            parts.append(f"{table}: " + " | ".join(f"{k}={v}" for k, v in row.items()))
    return "\n".join(parts)
