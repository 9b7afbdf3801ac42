"""Writing messages to the outbox, inside the caller's transaction.

Payloads carry references only; the code or OTP is derived again when the dispatcher renders
the message (see ``keyrelease.mail.render``), so no secret value rests in the table.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from keyrelease.models import ApiKey, KeyRotation, MessageKind, OutboxMessage, PasskeyEnrollment


async def _queue(
    kind: MessageKind, recipient: str, *, key_id: uuid.UUID | None, payload: dict, now: datetime
) -> OutboxMessage:
    """One message, due now. ``key_id`` None: not about one key (never a key's ``lastDelivery``)."""
    return await OutboxMessage.create(
        id=uuid.uuid4(), key_id=key_id, kind=kind, recipient=recipient, payload=payload, created_at=now, next_attempt_at=now
    )


def _about(key: ApiKey, *, role: str, institution_name: str) -> dict:
    """The payload of a notice about ``key`` to an admin or its partner (``role``)."""
    return {
        "role": role,
        "key_id": str(key.id),
        "key_name": key.name,
        "key_kind": key.kind.value,
        "partner_name": key.partner_name or "",
        "institution_name": institution_name,
    }


async def queue_verification_code(
    key: ApiKey, *, code_expires_at: datetime, now: datetime, rotation: KeyRotation | None = None
) -> OutboxMessage:
    """The key's code, or with ``rotation`` the rotation's: to the admin who asked for it, from
    the rotation's own code series (``rotation_id`` in the payload)."""
    recipient = rotation.notify_email if rotation is not None else key.notify_email
    assert recipient is not None
    return await _queue(
        MessageKind.VERIFICATION_CODE,
        recipient,
        key_id=key.id,
        now=now,
        payload={
            "key_id": str(key.id),
            **({"rotation_id": str(rotation.id)} if rotation is not None else {}),
            "key_name": key.name,
            "key_kind": key.kind.value,
            "generation": rotation.code_generation if rotation is not None else key.code_generation,
            "expires_at": code_expires_at.isoformat(),
            "partner_name": key.partner_name or "",
            "partner_email": key.partner_email or "",
        },
    )


async def queue_passkey_code(enrollment: PasskeyEnrollment, *, code_expires_at: datetime, now: datetime) -> OutboxMessage:
    """The code that confirms adding a passkey, to the admin's address (from the enrollment's
    own code series). Not about a key."""
    return await _queue(
        MessageKind.PASSKEY_CODE,
        enrollment.notify_email,
        key_id=None,
        now=now,
        payload={
            "enrollment_id": str(enrollment.id),
            "generation": enrollment.code_generation,
            "expires_at": code_expires_at.isoformat(),
        },
    )


async def queue_partner_otp(
    key: ApiKey,
    *,
    institution_name: str,
    otp_expires_at: datetime,
    now: datetime,
    rotation_id: uuid.UUID | None = None,
) -> OutboxMessage:
    assert key.partner_email is not None
    return await _queue(
        MessageKind.PARTNER_OTP,
        key.partner_email,
        key_id=key.id,
        now=now,
        payload={
            "key_id": str(key.id),
            **({"rotation_id": str(rotation_id)} if rotation_id is not None else {}),
            "key_name": key.name,
            "partner_name": key.partner_name or "",
            "institution_name": institution_name,
            "expires_at": otp_expires_at.isoformat(),
        },
    )


async def queue_creation_suspended(
    recipient: str,
    *,
    admin_email: str,
    admin_name: str,
    institution_name: str,
    locked_keys: int,
    suspended_until: datetime,
    expires_at: datetime,
    now: datetime,
) -> OutboxMessage:
    """Tell an admin of the institution that ``admin_email`` may no longer create keys for a
    while, because too many of its keys locked on wrong codes. Not tied to one key, so it
    never shows as a key's ``lastDelivery``."""
    return await _queue(
        MessageKind.CREATION_SUSPENDED,
        recipient,
        key_id=None,
        now=now,
        payload={
            "admin_email": admin_email,
            "admin_name": admin_name,
            "institution_name": institution_name,
            "locked_keys": locked_keys,
            "suspended_until": suspended_until.isoformat(),
            "expires_at": expires_at.isoformat(),
        },
    )


async def queue_secret_leaked(
    recipient: str,
    *,
    role: str,
    key: ApiKey,
    institution_name: str,
    leak_url: str,
    source: str,
    reported_at: datetime,
    expires_at: datetime,
) -> OutboxMessage:
    """Tell an admin of the key's institution (``role="admin"``), or the partner the key was
    released to (``role="partner"``), that the key's secret was found in public and no longer
    works. Not tied to the key (``key_id`` is empty), so it never shows as the key's
    ``lastDelivery``, which follows the code and the one-time password."""
    return await _queue(
        MessageKind.SECRET_LEAKED,
        recipient,
        key_id=None,
        now=reported_at,
        payload={
            **_about(key, role=role, institution_name=institution_name),
            "leak_url": leak_url,
            "source": source,
            "reported_at": reported_at.isoformat(),
            "expires_at": expires_at.isoformat(),
        },
    )


async def queue_expiry_notice(
    recipient: str, *, role: str, key: ApiKey, threshold: str, institution_name: str, now: datetime
) -> OutboxMessage:
    """Tell the key's creating admin (``role="admin"``) or its partner (``role="partner"``) that
    the key expires at ``key.expires_at``, ``threshold`` (``14d``) ahead. The message expires with
    the key: a notice about a key that has already expired is not sent. Not tied to the key
    (``key_id`` is empty), so it never shows as the key's ``lastDelivery``."""
    assert key.expires_at is not None
    return await _queue(
        MessageKind.EXPIRY_NOTICE,
        recipient,
        key_id=None,
        now=now,
        payload={
            **_about(key, role=role, institution_name=institution_name),
            "client_id": key.client_id,
            "threshold": threshold,
            "expires_at": key.expires_at.isoformat(),
        },
    )
