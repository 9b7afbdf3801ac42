"""Migrations: the models and the latest migration agree; readiness knows when they lag;
``serve`` migrates SQLite by itself and PostgreSQL only when told to."""

from __future__ import annotations

import httpx
import pytest
from environment import NO_POSTGRES, POSTGRES_SERVER, scratch_postgres
from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector

from keyrelease import db
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import base_env


async def test_models_and_the_latest_migration_agree():
    config = db.tortoise_config("sqlite://:memory:")
    async with tortoise_cli_context(config) as ctx:
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    assert writers == [], "models.py changed without a migration: run `make migrations` and commit it"


async def test_readyz_reports_pending_migrations(tmp_path, clock):
    from keyrelease.app import create_app
    from keyrelease.config import Settings

    settings = Settings.from_env(base_env(tmp_path))  # an empty database, never migrated
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.get("/readyz")
    assert response.status_code == 503


def test_serve_migrates_sqlite_by_itself(tmp_path):
    server = Server(env=base_env(tmp_path), log_path=tmp_path / "server.log").start()
    try:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["migrations"] == "current"
    finally:
        server.stop()


@pytest.fixture
def empty_postgres_database():
    if not POSTGRES_SERVER:
        pytest.skip(NO_POSTGRES)
    with scratch_postgres("keyrelease_migrate") as url:
        yield url


def test_serve_on_postgres_migrates_only_when_told(tmp_path, empty_postgres_database):
    env = base_env(tmp_path, KEYRELEASE_DATABASE_URL=empty_postgres_database)
    plain = Server(env=env, log_path=tmp_path / "plain.log").start()
    try:
        assert httpx.get(plain.url + "/readyz").status_code == 503
    finally:
        plain.stop()
    migrating = Server(env=env, log_path=tmp_path / "migrating.log").start("--migrate")
    try:
        assert httpx.get(migrating.url + "/readyz").status_code == 200
    finally:
        migrating.stop()
    assert run_cli(env, "migrate").returncode == 0  # idempotent


async def test_rate_limit_counters_skip_the_wal_on_postgres(empty_postgres_database):
    """Counters are an UNLOGGED table (no WAL flush per counted request); the keys are not."""
    import asyncpg

    await db.apply_migrations(empty_postgres_database)
    conn = await asyncpg.connect(empty_postgres_database.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT relname, relpersistence::text AS relpersistence FROM pg_class WHERE relname IN ('rate_limit_counter', 'api_key')"
        )
    finally:
        await conn.close()
    assert {r["relname"]: r["relpersistence"] for r in rows} == {"rate_limit_counter": "u", "api_key": "p"}


async def test_keys_can_be_found_by_secret_hash_through_an_index(database_url):
    """The secret-scanning lookup (a reported secret's hash) must not scan every key."""
    from dbutil import is_sqlite, query

    if is_sqlite(database_url):
        rows = await query(database_url, "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'api_key'")
    else:
        rows = await query(database_url, "SELECT indexdef AS sql FROM pg_indexes WHERE tablename = 'api_key'")
    assert any(row["sql"] and "secret_hash" in row["sql"] for row in rows), rows


async def test_every_declared_index_exists_on_both_databases(database_url):
    """SQLite rebuilds a table to alter a column; the indexes the models declare must survive
    every migration there as on PostgreSQL (the outbox claim, a key's history and deliveries)."""
    from dbutil import is_sqlite, query

    if is_sqlite(database_url):
        rows = await query(database_url, "SELECT tbl_name AS t, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    else:
        rows = await query(database_url, "SELECT tablename AS t, indexdef AS sql FROM pg_indexes WHERE schemaname = 'public'")
    found = {(row["t"], " ".join(row["sql"].replace('"', "").split())) for row in rows}

    def has(table: str, columns: str) -> bool:
        return any(t == table and f"({columns})" in sql for t, sql in found)

    for table, columns in [
        ("outbox_message", "status, next_attempt_at"),
        ("outbox_message", "key_id, created_at"),
        ("key_event", "key_id, id"),
        ("api_key", "institution_id, created_at"),
        ("api_key", "secret_hash"),
    ]:
        assert has(table, columns), (table, columns, sorted(found))
