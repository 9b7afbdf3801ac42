"""Tortoise's SQLite backend, with transactions that take the write lock when they begin.

SQLite starts a plain ``BEGIN`` transaction as a reader and upgrades it at its first write. If
another connection (a ``keyrelease`` CLI command, a worker) committed in between, the upgrade
fails at once with "database is locked": SQLite cannot wait, because the transaction's
snapshot is already stale. Every transaction in keyrelease writes, so each one starts with
``BEGIN IMMEDIATE`` instead: it waits its turn for the write lock (up to the connection's busy
timeout, five seconds) and then cannot fail that way. Within one process nothing changes, since
Tortoise already runs one transaction at a time on its one SQLite connection.

Selected by :func:`keyrelease.db.tortoise_config` for ``sqlite://`` URLs.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ReleasingTransactionContext(SqliteTransactionContext):
    """Tortoise's context, but one whose start fails or is cancelled (a task cancelled at
    shutdown while ``BEGIN IMMEDIATE`` waits for the write lock) gives the connection's lock
    back. Tortoise's keeps it, since ``__aexit__`` never runs for a failed ``__aenter__``, and
    every later transaction of the process (the last-use flush on the way out) waits for ever.
    A ``BEGIN`` that still completes on aiosqlite's thread is ended by the next ``begin``,
    which commits first."""

    async def __aenter__(self) -> Any:
        await self._trxlock.acquire()
        token = None
        try:
            await self.ensure_connection()
            token = self.token = get_connections().set(self.connection_name, self.connection)
            await self.connection.begin()
        except BaseException:
            if token is not None:
                get_connections().reset(token)
            self._trxlock.release()
            raise
        return self.connection


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return ReleasingTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
