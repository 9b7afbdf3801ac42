"""Point reads on the request hot paths: one row by a unique key, outside any transaction.

Every token request looks a key up by its client ID, and every GraphQL request looks its admin
up by token hash. Through the ORM, building the query and hydrating the row cost many times
what the database spends answering it, and on SQLite aiosqlite hands every statement to its
thread and back. So these reads are plain SQL built once from the models' metadata (table and
column names; see :func:`columns`), and:

* on SQLite, they run on a second, read-only connection to the same file, directly on the
  event loop: a lookup by a unique index takes microseconds, less than the hand-off to
  aiosqlite's thread, and in WAL mode (Tortoise's default) a reader never waits for the writer. Should SQLite still answer
  "busy", or fail in any way, the read goes through the ORM's own connection instead, which
  waits or raises exactly as any other query does;
* on PostgreSQL, they run on the ORM's asyncpg pool.

Nothing is cached: every call reads the database, so a revoked token or key stops at once.
Statements use ``?`` placeholders; they are rewritten to ``$n`` for PostgreSQL.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

from tortoise import connections, fields
from tortoise.models import Model

log = logging.getLogger("keyrelease.reads")
M = TypeVar("M", bound=Model)
_PLACEHOLDER = re.compile(r"\?")


class _SQLiteReader:
    """The read-only SQLite connection; None when the database is not a file, or when it
    could not be opened (every read then goes through the ORM)."""

    connection: sqlite3.Connection | None = None
    _warned = False

    def open(self) -> None:
        """Open the very file the ORM's connection opened, read-only (``mode=ro`` can never
        create a file), if that connection is SQLite on a file."""
        self.close()
        path = getattr(connections.get("default"), "filename", None)
        if not isinstance(path, str) or path in ("", ":memory:") or path.startswith("file:"):
            return
        try:
            connection = sqlite3.connect(
                f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA busy_timeout = 0")  # never block the event loop; fall back instead
        except sqlite3.Error as err:
            log.warning("point reads go through the ORM: the database file cannot be opened read-only (%s)", err)
            return
        self.connection = connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def one(self, sql: str, params: Sequence[Any]) -> Mapping[str, Any] | None | bool:
        """The row, None when there is none, False when this reader cannot answer."""
        if self.connection is None:
            return False
        try:
            cursor = self.connection.execute(sql, params)
            try:
                return cursor.fetchone()
            finally:
                cursor.close()  # ends the read now, so the next read sees every later commit
        except sqlite3.Error as err:
            if not self._warned:
                self._warned = True
                log.warning("a point read fell back to the ORM's connection (%s); later ones do so silently", err)
            return False


_sqlite = _SQLiteReader()


def open_reader() -> None:
    """Called at start-up, after the ORM's connection is open (the app's lifespan)."""
    _sqlite.open()


def close_reader() -> None:
    _sqlite.close()


@functools.cache
def _postgres(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


async def one(sql: str, params: Sequence[Any]) -> Mapping[str, Any] | None:
    """The row ``sql`` selects by a unique key, or None."""
    row = _sqlite.one(sql, params)
    if row is not False:
        return row  # type: ignore[return-value]
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        sql = _postgres(sql)
    rows = await connection.execute_query_dict(sql, list(params))
    return rows[0] if rows else None


async def get(model: type[M], **conditions: Any) -> M | None:
    """The row of ``model`` whose fields equal ``conditions`` (a unique key among them), as
    ``model.get_or_none(**conditions)`` would return it, or None. Field names, not columns:
    ``get(ApiKey, id=key_id, institution_id=3)``."""
    row = await one(_select_sql(model, tuple(conditions)), [_param(value) for value in conditions.values()])
    return hydrate(model, row, "r_") if row is not None else None


@functools.cache
def _select_sql(model: type[Model], names: tuple[str, ...]) -> str:
    meta = model._meta
    where = " AND ".join(f"r.{meta.fields_db_projection[name]} = ?" for name in names)
    return f"SELECT {columns(model, 'r', 'r_')} FROM {meta.db_table} r WHERE {where}"


def _param(value: Any) -> Any:
    if value is None:
        raise ValueError("a point read matches values, not NULL")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def columns(model: type[Model], alias: str, prefix: str = "") -> str:
    """``alias.column AS prefix+column, ...`` for every column of ``model``."""
    return ", ".join(f"{alias}.{column} AS {prefix}{column}" for column in model._meta.db_fields)


def hydrate(model: type[M], row: Mapping[str, Any], prefix: str = "") -> M:
    """A model instance from a row selected with :func:`columns`, as the ORM would build it.

    Datetimes stored as ISO text (SQLite) take the C parser instead of the field's generic one;
    every other value goes through the field's own converter.
    """
    values = {}
    for column in model._meta.db_fields:
        value = row[prefix + column]
        if isinstance(value, str) and column in _datetime_columns(model):
            value = to_datetime(value)
        values[column] = value
    return model._init_from_db(**values)


@functools.cache
def _datetime_columns(model: type[Model]) -> frozenset[str]:
    meta = model._meta
    return frozenset(
        meta.fields_db_projection[name]
        for name, field in meta.fields_map.items()
        if isinstance(field, fields.DatetimeField) and name in meta.fields_db_projection
    )


def to_datetime(value: str | datetime) -> datetime:
    """An aware datetime from a stored one (ISO text on SQLite, a datetime on PostgreSQL)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
