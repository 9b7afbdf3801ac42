"""The private Tortoise hooks ``keyrelease.db`` relies on are still there and still behave as it
uses them. A Tortoise upgrade that renames or changes one fails here, by name, rather than as a
wrong read somewhere on the hot path."""

from __future__ import annotations

import inspect

import pytest
from tortoise import connections
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.fields import CharField
from tortoise.migrations.recorder import MigrationRecorder
from tortoise.models import Model
from tortoise.transactions import in_transaction

from keyrelease import db, models
from keyrelease.db import fastpath
from keyrelease.db.sqlite import ImmediateSqliteClient, ImmediateTransactionWrapper
from keyrelease.models import Admin, AdminBudgetEntry, AdminToken, ApiKey, Institution, RateLimitCounter

MODELS = [value for value in vars(models).values() if isinstance(value, type) and issubclass(value, Model) and value is not Model]


async def _table_columns(table: str) -> set[str]:
    connection = connections.get("default")
    if connection.capabilities.dialect == "sqlite":
        _, rows = await connection.execute_query(f"PRAGMA table_info({table})")
        return {row["name"] for row in rows}
    rows = await connection.execute_query_dict(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", [table]
    )
    return {row["column_name"] for row in rows}


async def test_the_metadata_names_the_tables_and_columns_the_migrations_made(app):
    """``_meta.db_table``, ``db_fields``, ``fields_db_projection`` (a foreign key's column
    too) and ``db_pk_column`` are the database's own names."""
    for model in MODELS:
        meta = model._meta
        columns = await _table_columns(meta.db_table)
        assert set(meta.db_fields) == columns, model.__name__
        assert set(meta.fields_db_projection.values()) == columns, model.__name__
        assert meta.db_pk_column in columns, model.__name__
    assert AdminToken._meta.fields_db_projection["admin_id"] == "admin_id"
    assert ApiKey._meta.fields_db_projection["institution_id"] == "institution_id"
    assert isinstance(AdminBudgetEntry._meta.fields_map["item"], CharField)
    assert AdminBudgetEntry._meta.fields_map["item"].max_length == 16  # the CAST in spend_budget
    assert RateLimitCounter._meta.db_pk_column == RateLimitCounter._meta.fields_db_projection["bucket"]  # ON CONFLICT


async def test_init_from_db_builds_the_instance_the_orm_builds(api):
    """``Model._init_from_db(**columns)``, fed a row selected by column name, gives what a
    query gives, field for field."""
    await api.admin()
    for model in (Institution, Admin, AdminToken):
        orm = await model.first()
        assert orm is not None
        read = await fastpath.get(model, id=orm.pk)
        assert type(read) is model
        assert (read._partial, read._saved_in_db) == (orm._partial, orm._saved_in_db)  # as savable as the ORM's
        assert {f: getattr(read, f) for f in model._meta.db_fields} == {f: getattr(orm, f) for f in model._meta.db_fields}


async def test_a_related_instance_lives_where_select_related_puts_it(api):
    """``select_related`` keeps a fetched foreign key in the attribute ``_<field>``, which the
    field's property returns without a query: what ``fastpath._attach`` sets by hand."""
    ada = await api.admin()
    fetched = await Admin.get(email=ada.email).select_related("institution")
    assert isinstance(vars(fetched).get("_institution"), Institution)

    plain = await fastpath.get(Admin, email=ada.email)
    assert plain is not None and not isinstance(plain.institution, Institution)  # a query, not yet run
    institution = await Institution.get(id=plain.institution_id)
    fastpath._attach(plain, "institution", institution)
    assert plain.institution is institution


async def test_the_sqlite_client_names_its_file_and_the_dialects_are_named_as_expected(app, database_url):
    connection = connections.get("default")
    if db.is_sqlite(database_url):
        assert connection.capabilities.dialect == "sqlite"
        assert connection.filename == database_url.removeprefix("sqlite://")  # what the reader opens
    else:
        assert connection.capabilities.dialect == "postgres"
        assert getattr(connection, "filename", None) is None


async def test_execute_query_returns_the_row_count_first(app, clock):
    """``execute_query`` answers ``(rows affected, rows)``: :func:`fastpath.prune_counters`
    reports the first."""
    now = int(clock.now().timestamp())
    assert await fastpath.hit_counters([("hooks:a", now - 1), ("hooks:b", now - 1), ("hooks:c", now + 60)]) == {
        "hooks:a": 1, "hooks:b": 1, "hooks:c": 1
    }
    assert await fastpath.prune_counters(now) == 2


async def test_the_migrations_recorder_declares_the_table_tortoise_records_into(app):
    """``MigrationRecorder(None).model`` is the table and columns the migrations were recorded
    in, so :func:`fastpath.applied_migrations` sees every shipped migration once applied."""
    record = MigrationRecorder(None).model
    assert record._meta.db_table == "tortoise_migrations"
    assert await fastpath.applied_migrations(db.APP) == db.migration_names()
    assert await db.pending_migrations() == set()


def test_db_sqlite_overrides_tortoise_sqlite_transactions_step_for_step():
    """``keyrelease.db.sqlite`` copies three private methods of Tortoise's SQLite client,
    changing one thing each: ``_in_transaction`` builds another context around another wrapper,
    whose ``begin`` says ``BEGIN IMMEDIATE``, and the context's ``__aenter__`` gives the lock back
    when the start fails. Tortoise's own must still read as they did when copied."""
    ours, theirs = inspect.getsource(ImmediateSqliteClient._in_transaction), inspect.getsource(SqliteClient._in_transaction)
    assert theirs.replace("SqliteTransactionWrapper", "ImmediateTransactionWrapper").replace(
        "SqliteTransactionContext", "ReleasingTransactionContext"
    ) == ours
    enter = inspect.getsource(SqliteTransactionContext.__aenter__)
    assert enter.endswith(
        "        await self._trxlock.acquire()\n"
        "        await self.ensure_connection()\n"
        "        self.token = get_connections().set(self.connection_name, self.connection)\n"
        "        await self.connection.begin()\n"
        "        return self.connection\n"
    ), enter
    begin = inspect.getsource(SqliteTransactionWrapper.begin)
    assert "await self._connection.commit()\n            await self._connection.execute(\"BEGIN\")" in begin
    assert issubclass(ImmediateTransactionWrapper, SqliteTransactionWrapper)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_sqlite_transaction_begins_immediate(app):
    """And the override is in use: the app's transactions take the write lock at BEGIN."""
    client = connections.get("default")
    assert isinstance(client, ImmediateSqliteClient)
    statements: list[str] = []
    await client._connection.set_trace_callback(statements.append)
    try:
        async with in_transaction():
            await Institution.filter(id=0).exists()
    finally:
        await client._connection.set_trace_callback(None)
    assert statements[0] == "BEGIN IMMEDIATE"
