"""Every SQL statement keyrelease writes by hand (migrations aside), behind named functions.

The services say what they need (:func:`admin_by_token_hash`, :func:`key_by_client_id`,
:func:`hit_counters`, :func:`spend_budget`, …) and never hold SQL. Every table and column name
here comes from the models' metadata (``Model._meta``), so a statement reads and writes exactly
what the ORM would, on SQLite and PostgreSQL alike. Statements are written with ``?``
placeholders; :func:`placeholders` numbers them (``$1``, ``$2``, …) for PostgreSQL. The
private Tortoise hooks used here (``_meta``'s projections, ``Model._init_from_db``, the
attribute ``select_related`` fills, the SQLite client's ``filename``) are used nowhere else,
and ``tests/test_tortoise_hooks.py`` fails if a Tortoise upgrade changes one of them.

**Point reads.** Every token request looks a key up by its client ID, and every GraphQL
request looks its admin up by token hash. Through the ORM, building the query and hydrating
the row cost many times what the database spends answering it, and on SQLite aiosqlite hands
every statement to its thread and back. So these reads are plain SQL built once, and:

* on SQLite, they run on a second, read-only connection to the same file, directly on the
  event loop: a lookup by a unique index takes microseconds, less than the hand-off to
  aiosqlite's thread, and in WAL mode (Tortoise's default) a reader never waits for the writer. Should SQLite still answer
  "busy", or fail in any way, the read goes through the ORM's own connection instead, which
  waits or raises exactly as any other query does;
* on PostgreSQL, they run on the ORM's asyncpg pool.

Nothing is cached: every call reads the database, so a revoked token or key stops at once.

**Writes** (the rate-limit upsert, the budget's conditional insert) run on the ORM's
connection, inside whatever transaction the caller holds. On PostgreSQL the token endpoint's
upsert carries its key lookup in the same statement (:func:`hit_counters_and_read`, a
:class:`PointRead`): one round trip and one pooled connection per token request instead of two.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote

from tortoise import connections, fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations.recorder import MigrationRecorder
from tortoise.models import Model

from keyrelease.models import Admin, AdminBudgetEntry, AdminToken, ApiKey, Institution, KeyRotation, RateLimitCounter

log = logging.getLogger("keyrelease.reads")
M = TypeVar("M", bound=Model)
_PLACEHOLDER = re.compile(r"\?")


# --- placeholders and the connection ----------------------------------------------------------


@functools.cache
def placeholders(sql: str, dialect: str) -> str:
    """``sql``, written with ``?`` placeholders, as ``dialect`` wants it: unchanged for SQLite,
    numbered ``$1, $2, …`` for PostgreSQL. The one translator in the tree."""
    if dialect != "postgres":
        return sql
    counter = iter(range(1, 100_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _connection() -> BaseDBAsyncClient:
    """The ORM's connection: the current transaction's, if the caller is inside one."""
    return connections.get("default")


async def _rows(sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    connection = _connection()
    return await connection.execute_query_dict(placeholders(sql, connection.capabilities.dialect), list(params))


# --- the read-only SQLite connection -----------------------------------------------------------


class _SQLiteReader:
    """The read-only SQLite connection; None when the database is not a file, or when it
    could not be opened (every read then goes through the ORM)."""

    connection: sqlite3.Connection | None = None
    _warned = False

    def open(self) -> None:
        """Open the very file the ORM's connection opened, read-only (``mode=ro`` can never
        create a file), if that connection is SQLite on a file."""
        self.close()
        path = getattr(_connection(), "filename", None)
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


async def _one(sql: str, params: Sequence[Any]) -> Mapping[str, Any] | None:
    """The row ``sql`` selects by a unique key, or None."""
    row = _sqlite.one(sql, params)
    if row is not False:
        return row  # type: ignore[return-value]
    rows = await _rows(sql, params)
    return rows[0] if rows else None


# --- the models' metadata and hydration (Tortoise's private hooks) -----------------------------


def _table(model: type[Model]) -> str:
    return model._meta.db_table


def _column(model: type[Model], field: str) -> str:
    """The column of ``model``'s field ``field`` (a foreign key's is ``<name>_id``)."""
    return model._meta.fields_db_projection[field]


def _pk(model: type[Model]) -> str:
    return model._meta.db_pk_column


@functools.cache
def _db_columns(model: type[Model]) -> tuple[str, ...]:
    """``model``'s columns in one fixed order (``_meta.db_fields`` is a set): the order the
    statements select them in and :func:`_hydrate` reads them by, taken once for both."""
    return tuple(model._meta.db_fields)


def _columns(model: type[Model], alias: str, prefix: str = "") -> str:
    """``alias.column AS prefix+column, ...`` for every column of ``model``, in :func:`_db_columns` order."""
    return ", ".join(f"{alias}.{column} AS {prefix}{column}" for column in _db_columns(model))


def _hydrate(model: type[M], row: Mapping[str, Any], prefix: str = "", start: int = 0) -> M:
    """A model instance from a row selected with :func:`_columns`, as the ORM would build it.
    ``start``: the position of the model's first column in the row.

    A row of the read-only SQLite connection is read by position (``start`` and on, in
    :func:`_columns`' order): ``sqlite3.Row`` finds a name by comparing it with each column's
    in turn. A row from the ORM's connection (a dict) is read by name.
    Datetimes stored as ISO text (SQLite) take the C parser instead of the field's generic one;
    every other value goes through the field's own converter.
    """
    plan = _hydration_plan(model, prefix)
    stored = row[start : start + len(plan)] if isinstance(row, sqlite3.Row) else [row[key] for key, _, _ in plan]
    values = {}
    for (_, column, is_datetime), value in zip(plan, stored, strict=True):
        if is_datetime and isinstance(value, str):
            value = to_datetime(value)
        values[column] = value
    return model._init_from_db(**values)


@functools.cache
def _hydration_plan(model: type[Model], prefix: str) -> tuple[tuple[str, str, bool], ...]:
    """For :func:`_hydrate`: each column's key in the row, its name, and whether it holds a
    datetime; worked out once per model and prefix instead of once per value."""
    datetimes = _datetime_columns(model)
    return tuple((prefix + column, column, column in datetimes) for column in _db_columns(model))


def _attach(instance: Model, field: str, related: Model) -> None:
    """Attach ``related`` as ``instance.<field>`` (a foreign key), as ``select_related`` does:
    Tortoise keeps a fetched relation in the instance attribute ``_<field>``."""
    object.__setattr__(instance, f"_{field}", related)


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


def _param(value: Any) -> Any:
    if value is None:
        raise ValueError("a point read matches values, not NULL")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


# --- point reads ------------------------------------------------------------------------------


async def get(model: type[M], **conditions: Any) -> M | None:
    """The row of ``model`` whose fields equal ``conditions`` (a unique key among them), as
    ``model.get_or_none(**conditions)`` would return it, or None. Field names, not columns:
    ``get(ApiKey, id=key_id, institution_id=3)``."""
    row = await _one(_select_sql(model, tuple(conditions)), [_param(value) for value in conditions.values()])
    return _hydrate(model, row, "r_") if row is not None else None


@functools.cache
def _select_sql(model: type[Model], names: tuple[str, ...]) -> str:
    where = " AND ".join(f"r.{_column(model, name)} = ?" for name in names)
    return f"SELECT {_columns(model, 'r', 'r_')} FROM {_table(model)} r WHERE {where}"


@dataclass(frozen=True)
class TokenOwner:
    """An admin token's state and the admin it belongs to (with ``admin.institution`` attached)."""

    admin: Admin
    revoked_at: datetime | None
    expires_at: datetime | None
    token_id: int


async def admin_by_token_hash(token_hash: str) -> TokenOwner | None:
    """The admin token with this hash (unique index), or None: its row joined to its admin and
    the admin's institution, in one point read."""
    row = await _one(_token_sql(), [token_hash])
    if row is None:
        return None
    admin = _hydrate(Admin, row, "a_", _TOKEN_FIELDS)
    _attach(admin, "institution", _hydrate(Institution, row, "i_", _TOKEN_FIELDS + len(_db_columns(Admin))))
    return TokenOwner(
        admin=admin,
        revoked_at=_moment(row["t_revoked_at"]),
        expires_at=_moment(row["t_expires_at"]),
        token_id=row["t_id"],
    )


#: The token's own columns at the head of :func:`_token_sql`'s row; the admin's follow, then
#: the institution's.
_TOKEN_FIELDS = 3


@functools.cache
def _token_sql() -> str:
    """Built on first use: the models' metadata is complete only once Tortoise is initialised."""
    return (
        f"SELECT t.{_pk(AdminToken)} AS t_id, t.{_column(AdminToken, 'revoked_at')} AS t_revoked_at, "
        f"t.{_column(AdminToken, 'expires_at')} AS t_expires_at, "
        f"{_columns(Admin, 'a', 'a_')}, {_columns(Institution, 'i', 'i_')} "
        f"FROM {_table(AdminToken)} t "
        f"JOIN {_table(Admin)} a ON a.{_pk(Admin)} = t.{_column(AdminToken, 'admin_id')} "
        f"JOIN {_table(Institution)} i ON i.{_pk(Institution)} = a.{_column(Admin, 'institution_id')} "
        f"WHERE t.{_column(AdminToken, 'token_hash')} = ?"
    )


#: What :func:`key_by_client_id` reads of the key's open rotation (all None without one).
ROTATION_FIELDS = {
    "rotation_id": "id",
    "new_secret_hash": "new_secret_hash",
    "rotation_released_at": "revealed_at",
    "new_secret_first_used_at": "new_secret_first_used_at",
}


async def key_by_client_id(client_id: str, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The fields ``names`` of the key with this client ID (unique index), then the name of its
    institution, then its open rotation's :data:`ROTATION_FIELDS` (the rotation's unique
    ``open_key_id``; all None without one), as one tuple in that order; or None. One point
    read, no model and no dict built: UUIDs and datetimes come back as such, every other value
    as stored."""
    return await point_read(key_read(client_id, names))


async def point_read(read: PointRead) -> Any:
    """``read`` on its own: its converted row, or None."""
    row = await _one(read.sql, read.params)
    return None if row is None else read.convert(row.values() if type(row) is dict else row)


def key_read(client_id: str, names: tuple[str, ...]) -> PointRead:
    """:func:`key_by_client_id` as a :class:`PointRead`, for a statement to carry
    (:func:`hit_counters_and_read`)."""
    return PointRead(_client_key_sql(names), (client_id,), functools.partial(_client_key_values, names))


def _client_key_values(names: tuple[str, ...], stored: Iterable[Any]) -> tuple[Any, ...]:
    """The stored values of a :func:`key_by_client_id` row, converted (in the ORM's fallback
    a dict's values, in column order)."""
    return tuple([
        value if value is None or convert is None else convert(value)
        for value, convert in zip(stored, _client_key_converters(names), strict=True)
    ])


@functools.cache
def _client_key_converters(names: tuple[str, ...]) -> tuple[Any, ...]:
    """The converter (:func:`_converter`) of each column :func:`key_by_client_id` reads, in order."""
    return (*(_converter(ApiKey, name) for name in names), None,
            *(_converter(KeyRotation, name) for name in ROTATION_FIELDS.values()))


def _converter(model: type[Model], name: str) -> Any:
    """What :func:`_convert` does to a stored non-NULL value of the field, as one function
    (None: nothing), chosen once per field instead of once per value."""
    field = model._meta.fields_map[name]
    if isinstance(field, fields.DatetimeField):
        return to_datetime
    if isinstance(field, fields.UUIDField):
        return lambda value: value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    return None


@functools.cache
def _client_key_sql(names: tuple[str, ...]) -> str:
    selected = ", ".join(f"k.{_column(ApiKey, name)} AS {name}" for name in names)
    rotation = ", ".join(f"r.{_column(KeyRotation, name)} AS {alias}" for alias, name in ROTATION_FIELDS.items())
    return (
        f"SELECT {selected}, i.{_column(Institution, 'name')} AS institution, {rotation} "
        f"FROM {_table(ApiKey)} k JOIN {_table(Institution)} i "
        f"ON i.{_pk(Institution)} = k.{_column(ApiKey, 'institution_id')} "
        f"LEFT JOIN {_table(KeyRotation)} r ON r.{_column(KeyRotation, 'open_key_id')} = k.{_pk(ApiKey)} "
        f"WHERE k.{_column(ApiKey, 'client_id')} = ?"
    )


def _convert(model: type[Model], name: str, value: Any) -> Any:
    field = model._meta.fields_map[name]
    if value is None:
        return None
    if isinstance(field, fields.DatetimeField):
        return to_datetime(value)
    if isinstance(field, fields.UUIDField) and not isinstance(value, uuid.UUID):
        return uuid.UUID(value)
    return value


def _moment(value: str | datetime | None) -> datetime | None:
    return None if value is None else to_datetime(value)


# --- rate-limit counters ----------------------------------------------------------------------


async def hit_counters(buckets: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Count one request in each ``(bucket, window_end)``, in one atomic upsert: a counter
    whose window ended starts again at 1 in the new one. The counts in the current windows."""
    params: list[Any] = [value for bucket in buckets for value in bucket]
    bucket, count = _column(RateLimitCounter, "bucket"), _column(RateLimitCounter, "count")
    rows = await _rows(_hit_sql(len(buckets)), params)
    return {row[bucket]: int(row[count]) for row in rows}


@dataclass(frozen=True)
class PointRead:
    """A read of at most one row by a unique key, that a write can carry to the database in its
    own statement (:func:`hit_counters_and_read`): ``sql`` (``?`` placeholders; its first
    column is never NULL in a row it finds), its ``params``, and ``convert``, which makes the
    caller's value of the row's stored values, in column order."""

    sql: str
    params: tuple[Any, ...]
    convert: Callable[[Iterable[Any]], Any]


class _NotRead:
    def __repr__(self) -> str:
        return "NOT_READ"


#: What :func:`hit_counters_and_read` answers for a read it did not carry: the caller reads.
NOT_READ: Final = _NotRead()


async def hit_counters_and_read(buckets: Sequence[tuple[str, int]], read: PointRead) -> tuple[dict[str, int], Any]:
    """:func:`hit_counters`, and on PostgreSQL ``read`` in the same statement: one round trip
    instead of two (the token endpoint's counter and its key). The counts, and ``read``'s
    converted row, None when there is none, or :data:`NOT_READ` where one statement cannot
    carry both (SQLite: the read goes to the read-only connection, the write to the ORM's)."""
    connection = _connection()
    dialect = connection.capabilities.dialect
    if dialect != "postgres":
        return await hit_counters(buckets), NOT_READ
    params: list[Any] = [value for bucket in buckets for value in bucket]
    params += read.params
    rows = await connection.execute_query(placeholders(_hit_and_read_sql(len(buckets), read.sql), dialect), params)
    row = rows[1][0]
    counts = {bucket: int(count) for bucket, count in zip(row[0], row[1], strict=True)}
    found = list(row.values())[2:]
    return counts, (read.convert(found) if found[0] is not None else None)


@functools.cache
def _hit_and_read_sql(n: int, read_sql: str) -> str:
    """The counters' upsert as a CTE, its rows as two arrays made in one pass (so they pair up),
    and the read beside them: one row always, the read's columns NULL when it finds nothing."""
    bucket, count = _column(RateLimitCounter, "bucket"), _column(RateLimitCounter, "count")
    return (
        f"WITH hit AS ({_hit_sql(n)}) "
        f"SELECT counted.buckets, counted.counts, read.* "
        f"FROM (SELECT array_agg(hit.{bucket}) AS buckets, array_agg(hit.{count}) AS counts FROM hit) AS counted "
        f"LEFT JOIN LATERAL ({read_sql}) AS read ON TRUE"
    )


@functools.cache
def _hit_sql(n: int) -> str:
    t = _table(RateLimitCounter)
    bucket, window_end, count = (_column(RateLimitCounter, name) for name in ("bucket", "window_end", "count"))
    same_window = f"{t}.{window_end} >= excluded.{window_end}"
    return (
        f"INSERT INTO {t} ({bucket}, {window_end}, {count}) VALUES {', '.join(['(?, ?, 1)'] * n)} "
        f"ON CONFLICT ({bucket}) DO UPDATE SET "
        f"{count} = CASE WHEN {same_window} THEN {t}.{count} + 1 ELSE 1 END, "
        f"{window_end} = CASE WHEN {same_window} THEN {t}.{window_end} ELSE excluded.{window_end} END "
        f"RETURNING {bucket}, {count}"
    )


async def prune_counters(now: int) -> int:
    """Delete the counters whose window ended before ``now``; how many were removed."""
    connection = _connection()
    sql = f"DELETE FROM {_table(RateLimitCounter)} WHERE {_column(RateLimitCounter, 'window_end')} < ?"
    removed, _ = await connection.execute_query(placeholders(sql, connection.capabilities.dialect), [now])
    return removed


# --- the admin budget -------------------------------------------------------------------------


@dataclass(frozen=True)
class Within:
    """A condition of :func:`spend_budget`: fewer than ``limit`` entries of ``item`` with
    ``at_ms`` after ``after_ms``."""

    item: str
    after_ms: int
    limit: int


async def spend_budget(admin_id: int, at_ms: int, items: Sequence[str], conditions: Sequence[Within]) -> bool:
    """Insert one budget entry of each of ``items`` for the admin at ``at_ms`` if every one of
    ``conditions`` holds, all or none, in **one** conditional insert whose WHERE clause states
    them all; whether it inserted. Inside a transaction that holds the admin's lock."""
    params: list[object] = [admin_id, at_ms, *items]
    for condition in conditions:
        params += [admin_id, condition.item, condition.after_ms, condition.limit]
    # RETURNING, because Tortoise's asyncpg client reads an INSERT's row count from the
    # wrong word of the status line ("INSERT 0 2" → 0); the rows returned are the count.
    return bool(await _rows(_spend_sql(len(items), len(conditions)), params))


@functools.cache
def _spend_sql(items: int, conditions: int) -> str:
    t = _table(AdminBudgetEntry)
    admin_id, item, at_ms = (_column(AdminBudgetEntry, name) for name in ("admin_id", "item", "at_ms"))
    item_type = f"VARCHAR({cast(fields.CharField, AdminBudgetEntry._meta.fields_map['item']).max_length})"
    selected = " UNION ALL ".join(f"SELECT CAST(? AS {item_type}) AS item" for _ in range(items))
    within = " AND ".join(
        f"(SELECT count(*) FROM {t} WHERE {admin_id} = ? AND {item} = ? AND {at_ms} > ?) < ?" for _ in range(conditions)
    )
    return (
        f"INSERT INTO {t} ({admin_id}, {item}, {at_ms}) "
        f"SELECT CAST(? AS INTEGER), spent.item, CAST(? AS BIGINT) FROM ({selected}) AS spent "
        f"WHERE {within} RETURNING {_pk(AdminBudgetEntry)}"
    )


# --- health and migrations --------------------------------------------------------------------


async def ping() -> None:
    """One round trip on the ORM's connection (raises when the database cannot be reached)."""
    await _connection().execute_query("SELECT 1")


async def applied_migrations(app: str) -> set[str]:
    """The names of ``app``'s migrations recorded as applied in Tortoise's migrations table.

    Not Tortoise's own ``MigrationRecorder.applied_migrations``: that one answers "none" when
    the query fails, and a database that cannot be reached must not look like one that is
    merely behind."""
    table, app_column, name_column = _migrations_table()
    return {row[name_column] for row in await _rows(f"SELECT {name_column} FROM {table} WHERE {app_column} = ?", [app])}


@functools.cache
def _migrations_table() -> tuple[str, str, str]:
    """Tortoise's migrations table and its ``app`` and ``name`` columns, from the model its
    recorder declares."""
    record = MigrationRecorder(None).model
    return _table(record), _column(record, "app"), _column(record, "name")
