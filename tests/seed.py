"""Many keys at once, as the service would have left them, for tests that need full pages.

Creating a hundred keys through the API takes a hundred create → verify → reveal flows and is
bounded by the per-admin limits; these rows are what such flows leave behind (a verified,
revealed institutional key with its four events and its delivered code mail), written in three
statements. Needs Tortoise initialised (the app's lifespan, or ``keyrelease.db.connected``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from keyrelease import credentials
from keyrelease.models import (
    Admin,
    ApiKey,
    DeliveryStatus,
    EventType,
    KeyEvent,
    KeyKind,
    MessageKind,
    OutboxMessage,
)


def _pending_key(admin: Admin, name: str, created: datetime) -> ApiKey:
    """The row createKey writes: an institutional key pending verification, its code sent."""
    return ApiKey(
        id=uuid.uuid4(),
        institution_id=admin.institution_id,
        created_by_id=admin.id,
        kind=KeyKind.INSTITUTIONAL,
        name=name,
        client_id=credentials.new_client_id("us-east-1"),
        notify_email=admin.email,
        created_at=created,
        verification_deadline=created + timedelta(minutes=15),
        code_generation=0,
        code_issued_at=created,
    )


async def seed_pending_keys(admin_email: str, count: int, created: datetime) -> list[uuid.UUID]:
    """``count`` keys pending verification, all created by the admin at ``created`` (their
    rows only: no events, no mail); their ids."""
    admin = await Admin.get(email=admin_email)
    keys = [_pending_key(admin, f"Pending key {n}", created) for n in range(count)]
    await ApiKey.bulk_create(keys)
    return [key.id for key in keys]


async def seed_keys(admin_email: str, count: int, now: datetime) -> list[uuid.UUID]:
    """``count`` ACTIVE keys of the admin's institution, created by them a second apart
    (the newest at ``now``); their ids, newest first."""
    admin = await Admin.get(email=admin_email)
    keys, events, messages = [], [], []
    for n in range(count):
        created = now - timedelta(seconds=n)
        key = _pending_key(admin, f"Seeded key {n}", created)
        key.secret_hash = credentials.hash_secret(f"seeded-secret-{n}")
        key.verified_at = created + timedelta(seconds=30)
        key.revealed_at = created + timedelta(seconds=40)
        keys.append(key)
        for offset, (kind, detail) in enumerate(
            [(EventType.CREATED, "INSTITUTIONAL"), (EventType.CODE_SENT, "to a***@…"), (EventType.VERIFIED, None), (EventType.REVEALED, None)]
        ):
            events.append(KeyEvent(key_id=key.id, type=kind, at=created + timedelta(seconds=offset * 10), detail=detail))
        messages.append(
            OutboxMessage(
                id=uuid.uuid4(),
                key_id=key.id,
                kind=MessageKind.VERIFICATION_CODE,
                recipient=admin.email,
                payload={"key_id": str(key.id), "key_name": key.name, "key_kind": "INSTITUTIONAL", "generation": 0,
                         "expires_at": (created + timedelta(minutes=5)).isoformat()},
                status=DeliveryStatus.SENT,
                attempts=1,
                created_at=created,
                next_attempt_at=created,
                sent_at=created + timedelta(seconds=1),
            )
        )
    await ApiKey.bulk_create(keys)
    await KeyEvent.bulk_create(events)
    await OutboxMessage.bulk_create(messages)
    return [key.id for key in keys]
