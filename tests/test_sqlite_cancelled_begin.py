"""A SQLite transaction cancelled while it begins (a task cancelled at shutdown while
``BEGIN IMMEDIATE`` waits for the write lock) gives the connection back: the transactions after
it, such as the last-use flush on the way out, run instead of waiting for ever."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from tortoise.transactions import in_transaction

from keyrelease.db.sqlite import ImmediateTransactionWrapper
from keyrelease.models import Institution


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_transaction_cancelled_while_it_begins_leaves_the_connection_usable(api, clock, monkeypatch):
    begun = asyncio.Event()
    original = ImmediateTransactionWrapper.begin
    # Only the test's own write waits for ever: the app's background loops (last-use flush,
    # sweeps, the dispatcher) may begin transactions meanwhile, and those must go through.
    stalled = contextvars.ContextVar("stalled", default=False)

    async def begin_waiting_for_ever(self: ImmediateTransactionWrapper) -> None:
        if not stalled.get():
            return await original(self)
        begun.set()
        await asyncio.Event().wait()  # the write lock never comes

    async def write() -> None:
        stalled.set(True)  # this task's context only
        async with in_transaction():
            await Institution.create(name="never", created_at=clock.now())

    monkeypatch.setattr(ImmediateTransactionWrapper, "begin", begin_waiting_for_ever)
    stuck = asyncio.create_task(write())
    await asyncio.wait_for(begun.wait(), 5)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    monkeypatch.setattr(ImmediateTransactionWrapper, "begin", original)

    async with asyncio.timeout(5):
        async with in_transaction():
            await Institution.create(name="after", created_at=clock.now())
    assert [i.name for i in await Institution.all()] == ["after"]
