"""Scratch PostgreSQL databases, for the test suite and the benchmark harness, which must never
touch a database they did not create."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator

import asyncpg


def asyncpg_dsn(database_url: str) -> str:
    """``postgres://…`` (our spelling) as asyncpg wants it: ``postgresql://…``."""
    return re.sub(r"^(postgres|postgresql|asyncpg)://", "postgresql://", database_url)


@contextlib.contextmanager
def scratch_postgres(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server ``server_url`` points at (its URL, in
    our spelling), dropped on the way out, connections and all."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = asyncpg_dsn(server_url)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rpartition("/")[0].replace("postgresql://", "postgres://", 1) + "/" + name
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
