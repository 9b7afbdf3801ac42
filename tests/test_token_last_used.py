"""lastUsedAt: remembered in memory on the token path, written in batches, never per request."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from tortoise import connections

import keyrelease.service.clients as clients
from keyrelease.db import fastpath
from keyrelease.testing.api import released_key, running_app
from keyrelease.testing.tokens import request_token

LAST_USED = "query($id: ID!) { key(id: $id) { lastUsedAt } }"


@contextlib.contextmanager
def sql_log() -> Iterator[list[str]]:
    """Every statement sent to the database meanwhile, on SQLite or PostgreSQL: through the
    ORM (the client's methods are wrapped where they are defined; its transaction wrapper
    inherits them) and
    through the point reads of :mod:`keyrelease.db.fastpath`, which on SQLite have their own
    connection (traced), recorded once each."""
    statements: list[str] = []
    client_class = type(connections.get("default"))
    reader = fastpath._sqlite.connection
    with pytest.MonkeyPatch.context() as patch:
        for name in ("execute_query", "execute_query_dict", "execute_insert", "execute_many"):
            # on the class that defines it, which the transaction wrapper inherits from too
            owner = next(c for c in client_class.__mro__ if name in c.__dict__)
            patch.setattr(owner, name, _recording(owner.__dict__[name], statements))
        if reader is not None:
            reader.set_trace_callback(lambda sql: None if sql.startswith("PRAGMA") else statements.append(sql))
        try:
            yield statements
        finally:
            if reader is not None:
                reader.set_trace_callback(None)


def _recording(method, statements: list[str]):
    @functools.wraps(method)
    async def wrapper(self, query, *args, **kwargs):
        statements.append(query)
        return await method(self, query, *args, **kwargs)

    return wrapper


def updates_of_api_key(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().replace('"', "").startswith("UPDATE API_KEY")]


async def last_used(api, admin, key_id: str) -> datetime | None:
    value = (await api.data(LAST_USED, {"id": key_id}, admin.token))["key"]["lastUsedAt"]
    return datetime.fromisoformat(value) if value else None


async def test_tokens_write_nothing_until_the_recorder_flushes_once_per_key(api, client, clock):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    other, other_creds = await released_key(api, ada)
    recorder = api.app.state.services.last_use

    with sql_log() as statements:
        for _ in range(20):
            clock.advance(seconds=1)
            assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
        assert (await request_token(client, other_creds["clientId"], other_creds["clientSecret"])).status_code == 200
    # It sees the lookups: alone (SQLite), or carried by the rate-limit upsert (PostgreSQL: one
    # statement "WITH hit AS (INSERT ...) SELECT ..." per request).
    lookups = [s for s in statements if "SELECT" in s.upper() and "api_key" in s.lower()]
    assert len(lookups) >= 21, statements
    assert updates_of_api_key(statements) == []
    # Rate-limit counters are shared through the database on PostgreSQL (one upsert per
    # request, by design); nothing else may be written.
    writes = [s for s in statements if any(word in s.upper() for word in ("INSERT", "UPDATE", "DELETE"))]
    assert [s for s in writes if "rate_limit_counter" not in s] == []
    assert await last_used(api, ada, key["id"]) is None
    assert {str(k) for k in recorder.pending} == {key["id"], other["id"]}

    with sql_log() as statements:
        assert await recorder.flush() == 3  # the two keys, and the admin token the GraphQL requests sent
    assert len(updates_of_api_key(statements)) == 2
    assert recorder.pending == {} and recorder.pending_tokens == {}
    with sql_log() as statements:
        assert await recorder.flush() == 0
    assert statements == []
    assert await last_used(api, ada, key["id"]) == clock.now()


async def test_a_refused_request_is_not_a_use(api, client):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    assert (await request_token(client, creds["clientId"], "wrong")).status_code == 401
    assert api.app.state.services.last_use.pending == {}


async def test_last_use_only_moves_forward(api, client, clock):
    """Two instances flushing their own batches out of order still agree."""
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    recorder = api.app.state.services.last_use
    await request_token(client, creds["clientId"], creds["clientSecret"])
    later = clock.now()
    await recorder.flush()
    recorder.record(uuid.UUID(key["id"]), later - timedelta(minutes=5))
    await recorder.flush()
    assert await last_used(api, ada, key["id"]) == later


async def test_pending_uses_are_written_on_shutdown(settings, clock):
    async with running_app(settings, clock) as api:
        ada = await api.admin()
        key, creds = await released_key(api, ada)
        assert (await request_token(api.client, creds["clientId"], creds["clientSecret"])).status_code == 200
        used_at = clock.now()
        assert await last_used(api, ada, key["id"]) is None
    async with running_app(settings, clock) as api:
        assert await last_used(api, ada, key["id"]) == used_at


async def test_a_failed_flush_keeps_the_batch_for_the_next_one(api, client, monkeypatch):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    recorder = api.app.state.services.last_use
    await request_token(client, creds["clientId"], creds["clientSecret"])

    def failing_transaction(*args, **kwargs):
        raise ConnectionError("database went away")

    with monkeypatch.context() as patch:
        patch.setattr(clients, "in_transaction", failing_transaction)
        try:
            await recorder.flush()
        except ConnectionError:
            pass
    assert {str(k) for k in recorder.pending} == {key["id"]}
    assert len(recorder.pending_tokens) == 1  # the admin's token, which the GraphQL requests sent
    assert await recorder.flush() == 2
    assert await last_used(api, ada, key["id"]) is not None
