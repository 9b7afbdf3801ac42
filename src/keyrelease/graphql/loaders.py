"""Per-request DataLoaders: what a page of keys needs beyond the key rows (events, the
latest delivery) is loaded for every key of the page in one statement, not one per key.

A loader batches the loads made in one turn of the event loop and caches each key's answer
for the rest of the request, so aliases of the same page load nothing twice. The cache is
dropped before each mutation runs (:meth:`Loaders.forget`), so a mutation's answer never
shows what was loaded before it changed the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from keyrelease.models import KeyEvent, OutboxMessage
from keyrelease.service import queries

#: Keys per statement at most (one IN list); a page is at most 100 keys.
BATCH = 500


async def _events(key_ids: list[uuid.UUID]) -> Sequence[list[KeyEvent]]:
    history = await queries.events_of_keys(key_ids)
    return [history[key_id] for key_id in key_ids]


async def _last_deliveries(key_ids: list[uuid.UUID]) -> Sequence[OutboxMessage | None]:
    latest = await queries.last_deliveries(key_ids)
    return [latest[key_id] for key_id in key_ids]


class Loaders:
    def __init__(self) -> None:
        self.events: DataLoader[uuid.UUID, list[KeyEvent]] = DataLoader(_events, max_batch_size=BATCH)
        self.last_delivery: DataLoader[uuid.UUID, OutboxMessage | None] = DataLoader(
            _last_deliveries, max_batch_size=BATCH
        )

    def forget(self) -> None:
        """Drop every cached answer (a mutation is about to change keys)."""
        self.events.clear_all()
        self.last_delivery.clear_all()
