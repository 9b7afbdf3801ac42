"""Read-side use-cases: what an admin may see of keys. An admin sees only the keys of their
own institution; to anyone else a key does not exist."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q

from keyrelease import expiry, validation
from keyrelease.db import fastpath
from keyrelease.models import Admin, ApiKey, KeyEvent, KeyRotation, MessageKind, OutboxMessage
from keyrelease.service.keys import parse_key_id
from keyrelease.status import KeyStatus

MAX_PAGE = 100


class BadQueryInput(ValueError):
    """An argument of a query was refused; the message says which and why (never its value)."""


class BadCursor(BadQueryInput):
    """The ``after`` cursor was not produced by us."""


def _refuse_control_characters(**fields: str | None) -> None:
    problem = validation.control_character_problem(fields)
    if problem is not None:
        raise BadQueryInput(problem[1])


@dataclass(frozen=True)
class KeyPage:
    keys: list[ApiKey]
    has_next_page: bool


def status_filter(status: KeyStatus, now: datetime) -> Q:
    """The rows whose derived status (:func:`keyrelease.status.key_status`) is ``status``."""
    if status is KeyStatus.COMPROMISED:
        return Q(compromised_at__not_isnull=True)
    live = Q(revoked_at=None, compromised_at=None)
    unverified = Q(verified_at=None)
    if status is KeyStatus.REVOKED:
        return Q(revoked_at__not_isnull=True, compromised_at=None)
    if status is KeyStatus.PENDING_VERIFICATION:
        return live & unverified & Q(locked_at=None, verification_deadline__gt=now)
    if status is KeyStatus.LOCKED:
        return live & unverified & (Q(locked_at__not_isnull=True) | Q(verification_deadline__lte=now))
    verified = live & Q(verified_at__not_isnull=True)
    if status is KeyStatus.EXPIRED:
        return verified & Q(expires_at__lte=now)
    return verified & (Q(expires_at=None) | Q(expires_at__gt=now))


def encode_cursor(key: ApiKey) -> str:
    return base64.urlsafe_b64encode(f"{key.created_at.isoformat()}|{key.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, key_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(key_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("after is not a cursor from this API") from None


async def get_key(admin: Admin, key_id: str) -> ApiKey | None:
    """One point read (:func:`keyrelease.db.fastpath.get`): the key by id, within the admin's institution.
    Raises :class:`BadQueryInput` for an id holding a control character."""
    _refuse_control_characters(id=key_id)
    parsed = parse_key_id(key_id)
    if parsed is None:
        return None
    return await fastpath.get(ApiKey, id=parsed, institution_id=admin.institution_id)


def parse_expiring_within(raw: str) -> timedelta:
    """``keys(expiringWithin:)``'s duration (``14d``, ``12h``, ``30m``); :class:`BadQueryInput` saying why not."""
    _refuse_control_characters(expiringWithin=raw)
    try:
        return expiry.parse_duration(raw)
    except ValueError as err:
        raise BadQueryInput(f"expiringWithin must be a duration such as 14d, 12h or 30m: {err}.") from None


def expiring_filter(within: timedelta, now: datetime) -> Q:
    """Keys that may still authenticate and expire within ``within`` of ``now``."""
    return status_filter(KeyStatus.ACTIVE, now) & Q(expires_at__lte=now + within)


async def list_keys(
    admin: Admin,
    now: datetime,
    *,
    first: int = 20,
    after: str | None = None,
    status: KeyStatus | None = None,
    expiring_within: str | None = None,
) -> KeyPage:
    """Keys of the admin's institution, newest first; with ``expiring_within`` only those that
    may still authenticate and expire within it. Raises :class:`BadQueryInput` (a
    :class:`BadCursor`) for an ``after`` that is not one of our cursors, or a bad duration."""
    _refuse_control_characters(after=after)
    first = max(1, min(first, MAX_PAGE))
    query = ApiKey.filter(institution_id=admin.institution_id)
    if expiring_within is not None:
        query = query.filter(expiring_filter(parse_expiring_within(expiring_within), now))
    if status is not None:
        query = query.filter(status_filter(status, now))
    if after:
        created, key_id = decode_cursor(after)
        query = query.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=key_id))
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    return KeyPage(keys=rows[:first], has_next_page=len(rows) > first)


async def events_of_keys(key_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[KeyEvent]]:
    """Each key's history, oldest first, for many keys in one statement (keys without
    events map to an empty list)."""
    history: dict[uuid.UUID, list[KeyEvent]] = {key_id: [] for key_id in key_ids}
    for event in await KeyEvent.filter(key_id__in=list(history)).order_by("id"):
        history[_uuid(event.key_id)].append(event)
    return history


async def last_deliveries(key_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, OutboxMessage | None]:
    """Each key's latest mail (code or partner OTP) and how its delivery stands, for many
    keys in one statement; None for a key that never had mail.

    A key has a handful of messages at most (its codes and one OTP), so they are ordered
    here: by when they were queued, then the OTP after the code that led to it, then the
    newer code generation (a resend in the same instant).
    """
    messages: dict[uuid.UUID, list[OutboxMessage]] = {key_id: [] for key_id in key_ids}
    for message in await OutboxMessage.filter(key_id__in=list(messages)):
        messages[_uuid(message.key_id)].append(message)
    return {key_id: max(found, key=_delivery_order, default=None) for key_id, found in messages.items()}


def _delivery_order(message: OutboxMessage) -> tuple[datetime, bool, int]:
    return message.created_at, message.kind is MessageKind.PARTNER_OTP, int(message.payload.get("generation", 0))


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def latest_rotations(key_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, KeyRotation | None]:
    """Each key's latest rotation, for many keys in one statement; None for a key never rotated."""
    latest: dict[uuid.UUID, KeyRotation | None] = {key_id: None for key_id in key_ids}
    for rotation in await KeyRotation.filter(key_id__in=list(latest)).order_by("started_at"):
        latest[_uuid(rotation.key_id)] = rotation
    return latest
