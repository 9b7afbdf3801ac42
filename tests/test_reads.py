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


async def test_the_counters_carry_the_key_read_on_postgresql_and_read_the_same(api, database_url):
    """The token endpoint's rate-limit upsert carries its key lookup on PostgreSQL (one round trip
    instead of two): the counts and the key are exactly what the two statements alone return, for
    a key found and for none (the rotation tests go through it with open rotations). On SQLite the write
    and the read go to different connections, so the read is left to the caller."""
    from keyrelease.service.clients import _KEY_FIELDS

    ada = await api.admin()
    _, creds = await released_key(api, ada, name="Carried")
    for n, client_id in enumerate((creds["clientId"], "us-east-1#" + str(uuid.uuid4()))):
        buckets = [(f"carry:{n}:a", 2_000_000_000), (f"carry:{n}:b", 2_000_000_000)]
        counts, row = await fastpath.hit_counters_and_read(buckets, fastpath.key_read(client_id, _KEY_FIELDS))
        alone = await fastpath.hit_counters(buckets)  # the same buckets once more: each one higher
        assert {bucket: count + 1 for bucket, count in counts.items()} == alone == {b: 2 for b, _ in buckets}
        if database_url.startswith("postgres"):
            assert row == await fastpath.key_by_client_id(client_id, _KEY_FIELDS)
            assert (row is None) == (n == 1)
        else:
            assert row is fastpath.NOT_READ
