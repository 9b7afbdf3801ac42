"""Point reads (keyrelease.db.fastpath): the hot-path lookups read exactly what the ORM reads, see
every change at once, and fall back to the ORM's connection when their own cannot answer."""

from __future__ import annotations

import os
import sqlite3
import uuid

import pytest

from tortoise import connections

from keyrelease.db import fastpath
from keyrelease.models import Admin, AdminToken, ApiKey
from keyrelease.service import admins, queries
from keyrelease.service.clients import find_key
from keyrelease.testing.api import released_key
from keyrelease.testing.tokens import request_token

KEY = "query($id: ID!) { key(id: $id) { id name status lastUsedAt } }"


def _fields(instance) -> dict:
    return {name: getattr(instance, name) for name in type(instance)._meta.db_fields}


async def test_point_reads_build_the_models_the_orm_builds(api, clock):
    ada = await api.admin()
    key, creds = await released_key(api, ada, name="Compared")
    model = await ApiKey.get(id=key["id"])
    admin = await Admin.get(email=ada.email).prefetch_related("institution")

    authenticated = await admins.authenticate(clock, ada.token)
    assert authenticated is not None
    assert _fields(authenticated) == _fields(admin)
    assert authenticated.institution.name == admin.institution.name == ada.institution
    assert _fields(authenticated.institution) == _fields(admin.institution)

    read = await queries.get_key(authenticated, key["id"])
    assert read is not None and _fields(read) == _fields(model)
    assert all(v.tzinfo is not None for v in _fields(read).values() if hasattr(v, "tzinfo"))

    record = await find_key(creds["clientId"])
    assert record is not None
    assert (record.id, record.verified_at, record.revealed_at, record.expires_at, record.institution) == (
        model.id, model.verified_at, model.revealed_at, model.expires_at, ada.institution
    )
    assert await find_key("us-east-1#" + str(uuid.uuid4())) is None


async def test_another_institution_reads_nothing(api, clock):
    ada, bob = await api.admin(), await api.admin("bob@other.example", "Other College")
    key, _ = await released_key(api, ada)
    assert await queries.get_key(await admins.authenticate(clock, bob.token), key["id"]) is None


async def test_a_revoked_or_expired_admin_token_stops_at_once(api, clock):
    ada = await api.admin()
    assert await admins.authenticate(clock, ada.token) is not None
    token = await AdminToken.get(admin__email=ada.email)
    clock.advance(seconds=1)
    await AdminToken.filter(id=token.id).update(expires_at=clock.now())
    assert await admins.authenticate(clock, ada.token) is None
    await AdminToken.filter(id=token.id).update(expires_at=None, revoked_at=clock.now())
    assert await admins.authenticate(clock, ada.token) is None


class _Broken:
    """A connection that fails like a busy or damaged SQLite database."""

    def execute(self, *args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the read-only connection is SQLite's alone
async def test_reads_fall_back_to_the_orm_when_their_sqlite_connection_cannot_answer(api, client, monkeypatch, database_url):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    assert fastpath._sqlite.connection is not None  # the fast path is in use on a SQLite file
    monkeypatch.setattr(fastpath._sqlite, "connection", _Broken())

    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    assert (await request_token(client, creds["clientId"], "wrong")).status_code == 401
    assert (await api.data(KEY, {"id": key["id"]}, ada.token))["key"]["status"] == "ACTIVE"


def test_placeholders_are_numbered_for_postgres():
    sql = "SELECT ? AS a, ? AS b WHERE c = ?"
    assert fastpath.placeholders(sql, "postgres") == "SELECT $1 AS a, $2 AS b WHERE c = $3"
    assert fastpath.placeholders(sql, "sqlite") == sql


async def test_the_reader_opens_the_orms_own_file_read_only(api, database_url):
    reader = fastpath._sqlite.connection
    if not database_url.startswith("sqlite://"):
        assert reader is None  # PostgreSQL: the ORM's pool answers
        return
    assert reader is not None
    assert reader.execute("PRAGMA database_list").fetchone()[2] == os.path.abspath(connections.get("default").filename)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM api_key")


async def test_a_point_read_never_matches_null():
    with pytest.raises(ValueError):
        await fastpath.get(ApiKey, id=None)
