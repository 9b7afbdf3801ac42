"""Counting the SQL statements the service actually sends to the database driver.

On SQLite, every statement the engine runs on the ORM's connection and on the point-read
connection (``sqlite3`` trace callbacks). On PostgreSQL, every statement asyncpg sends on any
pooled connection (asyncpg query loggers, attached to each connection as the pool hands it
out). ``BEGIN``/``COMMIT`` count like any other statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from tortoise import connections
from tortoise.backends.asyncpg.client import AsyncpgDBClient

from keyrelease.db import fastpath


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self._lock = threading.Lock()  # SQLite's callback runs on aiosqlite's thread

    def seen(self, sql: str) -> None:
        with self._lock:
            self.statements.append(sql)

    def _logged(self, record: Any) -> None:  # an asyncpg LoggedQuery
        self.seen(record.query)

    async def _setup(self, connection: Any) -> None:
        connection.add_query_logger(self._logged)  # a set: adding it again changes nothing

    async def attach_sqlite(self) -> None:
        """Trace the app's SQLite connections (call once the app has started)."""
        client = connections.get("default")
        if client.capabilities.dialect == "sqlite":
            await client._connection.set_trace_callback(self.seen)
            if fastpath._sqlite.connection is not None:
                fastpath._sqlite.connection.set_trace_callback(self.seen)

    @contextlib.asynccontextmanager
    async def counting(self):  # type: ignore[no-untyped-def]
        """Count the statements run inside the block; ``len(block)`` after it."""
        block: list[str] = []
        await asyncio.sleep(0)  # asyncpg reports a statement on the next loop iteration
        start = len(self.statements)
        yield block
        for _ in range(3):
            await asyncio.sleep(0)
        block.extend(self.statements[start:])


def counting_pool(monkeypatch: pytest.MonkeyPatch, counter: StatementCounter) -> None:
    """Every asyncpg pool created from now on reports each connection's statements to
    ``counter`` (a ``setup`` hook, run as the pool hands a connection out)."""
    original = AsyncpgDBClient.create_pool

    async def create_pool(self: AsyncpgDBClient, **kwargs: Any) -> Any:
        return await original(self, setup=counter._setup, **kwargs)

    monkeypatch.setattr(AsyncpgDBClient, "create_pool", create_pool)
