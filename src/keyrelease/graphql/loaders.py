"""Per-request loading: what a page of keys needs beyond the key rows (events, the latest
delivery, the latest rotation) is read for every key of the page in one statement, not one per key.

Two Strawberry DataLoaders batch the loads made in one turn of the event loop and cache each
key's answer for the rest of the request, so aliases of one page read nothing twice. The
``keys`` field loads its whole page through them before the keys resolve (:meth:`preload`),
so each key's ``events`` and ``lastDelivery`` answer at once instead of each awaiting a
future of its own. Identical pages (aliases of one ``keys`` call) are read once.

Everything cached is dropped before each mutation runs (:meth:`Loaders.forget`), so a
mutation's answer never shows what was loaded before it changed the key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Collection, Sequence
from datetime import datetime

from strawberry.dataloader import DataLoader

from keyrelease.models import Admin, KeyEvent, KeyRotation, OutboxMessage
from keyrelease.service import queries
from keyrelease.status import KeyStatus

#: Keys per statement at most (one IN list); a page is at most 100 keys.
BATCH = 500


async def _events(key_ids: list[uuid.UUID]) -> Sequence[list[KeyEvent]]:
    history = await queries.events_of_keys(key_ids)
    return [history[key_id] for key_id in key_ids]


async def _last_deliveries(key_ids: list[uuid.UUID]) -> Sequence[OutboxMessage | None]:
    latest = await queries.last_deliveries(key_ids)
    return [latest[key_id] for key_id in key_ids]


async def _rotations(key_ids: list[uuid.UUID]) -> Sequence[KeyRotation | None]:
    latest = await queries.latest_rotations(key_ids)
    return [latest[key_id] for key_id in key_ids]


def _retrieved(read: asyncio.Future[queries.KeyPage]) -> None:
    """Every awaiting field gets the page's error; if the request was cancelled before any
    did, this keeps asyncio from logging it as never retrieved."""
    if not read.cancelled():
        read.exception()


class Loaders:
    def __init__(self) -> None:
        self.events: DataLoader[uuid.UUID, list[KeyEvent]] = DataLoader(_events, max_batch_size=BATCH)
        self.last_delivery: DataLoader[uuid.UUID, OutboxMessage | None] = DataLoader(
            _last_deliveries, max_batch_size=BATCH
        )
        self.rotation: DataLoader[uuid.UUID, KeyRotation | None] = DataLoader(_rotations, max_batch_size=BATCH)
        self._pages: dict[tuple[int, int, str | None, KeyStatus | None, str | None], asyncio.Future[queries.KeyPage]] = {}

    def page(
        self,
        admin: Admin,
        now: datetime,
        *,
        first: int,
        after: str | None,
        status: KeyStatus | None,
        expiring_within: str | None = None,
    ) -> Awaitable[queries.KeyPage]:
        """A page of the admin's keys, read once per request for the same arguments."""
        request = (admin.institution_id, first, after, status, expiring_within)
        if request not in self._pages:
            read = asyncio.ensure_future(
                queries.list_keys(admin, now, first=first, after=after, status=status, expiring_within=expiring_within)
            )
            read.add_done_callback(_retrieved)
            self._pages[request] = read
        return self._pages[request]

    async def preload(self, key_ids: Collection[uuid.UUID], fields: Collection[str]) -> None:
        """Load ``fields`` (GraphQL names: ``events``, ``lastDelivery``, ``rotation``) of these keys now,
        one statement each."""
        loads: list[Awaitable[object]] = []
        if "events" in fields:
            loads.append(self.events.load_many(key_ids))
        if "lastDelivery" in fields:
            loads.append(self.last_delivery.load_many(key_ids))
        if "rotation" in fields:
            loads.append(self.rotation.load_many(key_ids))
        await asyncio.gather(*loads)

    def forget(self) -> None:
        """Drop every cached answer (a mutation is about to change keys)."""
        self.events.clear_all()
        self.last_delivery.clear_all()
        self.rotation.clear_all()
        self._pages.clear()
