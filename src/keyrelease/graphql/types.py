"""GraphQL object types, enums and the error types of the result unions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import strawberry
from strawberry.types import Info, get_object_definition
from strawberry.types.private import is_private

from keyrelease import expiry, models
from keyrelease.graphql.context import Context
from keyrelease.policy import VerificationPolicy
from keyrelease.service import rotation as rotation_service
from keyrelease.status import KeyStatus as DomainKeyStatus
from keyrelease.status import key_status

T = TypeVar("T")
R = TypeVar("R")

KeyKind = strawberry.enum(models.KeyKind, name="KeyKind", description="Who will use the key.")
KeyStatus = strawberry.enum(DomainKeyStatus, name="KeyStatus", description="Derived from the key's timestamps.")
KeyEventType = strawberry.enum(models.EventType, name="KeyEventType")
RotationStatus = strawberry.enum(
    rotation_service.RotationStatus,
    name="RotationStatus",
    description="PENDING_VERIFICATION (waiting for the code), VERIFIED (waiting for the reveal or the partner's "
    "retrieval), OVERLAP (both secrets work), COMPLETED (only the new one works), LOCKED, CANCELLED "
    "(the key kept its old secret).",
)
LockReason = strawberry.enum(
    models.LockReason,
    name="LockReason",
    description="ATTEMPTS: a wrong code was entered too many times. WINDOW: not verified before the deadline. "
    "ADMIN_DISABLED: the admin who created it (or started the rotation) was disabled while it waited for verification.",
)
ReleaseProof = strawberry.enum(
    models.ReleaseProof,
    name="ReleaseProof",
    description="What releases a key: EMAIL (the emailed code), PASSKEY (a passkey assertion bound to the key; "
    "no code is emailed), PASSKEY_OR_EMAIL (either). Set per institution by `keyrelease institution set-policy`.",
)
DeliveryStatus = strawberry.enum(
    models.DeliveryStatus,
    name="DeliveryStatus",
    description="PENDING: queued or waiting to retry. SENDING: with the transport now. SENT: the provider "
    "accepted it. FAILED: given up (see lastError). EXPIRED: not sent, its code or password had expired.",
)


@strawberry.interface(description="An expected failure, returned as data in a result union.")
class Error:
    message: str


@strawberry.type(description="The one answer to every failed verifyKey, resendCode or revealKey.")
class VerificationError(Error):
    message: str


@strawberry.type(description="An input value was rejected; `field` names it.")
class ValidationError(Error):
    message: str
    field: str


@strawberry.type(description="The admin already has the maximum number of keys awaiting verification.")
class PendingKeyLimitError(Error):
    message: str
    limit: int


@strawberry.type(
    description="You have created the most keys allowed in any 24 hours "
    "(KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY), whatever became of them."
)
class DailyKeyLimitError(Error):
    message: str
    limit: int
    retry_at: datetime = strawberry.field(description="From this moment another key can be created.")


@strawberry.type(
    description="The most verification codes allowed in any hour have been emailed to you, creates and resends "
    "together (KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR). Nothing was sent and nothing was used up."
)
class CodeEmailLimitError(Error):
    message: str
    limit: int
    retry_at: datetime = strawberry.field(description="From this moment another code can be emailed.")


@strawberry.type(
    description="Key creation is suspended: at least `limit` of your keys were locked by wrong codes in the last "
    "24 hours (KEYRELEASE_MAX_LOCKED_KEYS_PER_ADMIN_PER_DAY). Every admin of your institution has been emailed."
)
class KeyCreationSuspendedError(Error):
    message: str
    limit: int
    locked_keys: int = strawberry.field(description="Your keys locked by wrong codes in the last 24 hours.")
    retry_at: datetime = strawberry.field(description="From this moment keys can be created again.")


@strawberry.type(description="No key with this id is visible to you.")
class KeyNotFoundError(Error):
    message: str


@strawberry.type
class KeyEvent:
    type: KeyEventType
    at: datetime
    detail: str | None


@strawberry.type(description="How the delivery of a key's latest email stands. Never its content.")
class Delivery:
    status: DeliveryStatus
    attempts: int = strawberry.field(description="Sending attempts so far (automatic retries; not resends).")
    at: datetime = strawberry.field(description="When the message was queued.")
    sent_at: datetime | None = strawberry.field(description="When the provider accepted it.")
    next_attempt_at: datetime | None = strawberry.field(
        description="While PENDING: when the next attempt is due."
    )
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed, as the transport reported it."
    )

    @classmethod
    def of(cls, message: models.OutboxMessage) -> Delivery:
        return cls(
            status=message.status,
            attempts=message.attempts,
            at=message.created_at,
            sent_at=message.sent_at,
            next_attempt_at=message.next_attempt_at if message.status is models.DeliveryStatus.PENDING else None,
            last_error=message.last_error,
        )


# Resolvers of ApiKey's computed fields: what depends on the clock and the policy
# (keyrelease.service.keys), or comes from another table (the loaders).


def _status(root: ApiKey, info: Info[Context, None]) -> KeyStatus:
    return key_status(root.model, info.context.clock.now())


def _code_expires_at(root: ApiKey, info: Info[Context, None]) -> datetime | None:
    return info.context.keys.code_expires_at(root.model)


def _resends_remaining(root: ApiKey, info: Info[Context, None]) -> int:
    return info.context.keys.resends_remaining(root.model, info.context.clock.now())


def _attempts_remaining(root: ApiKey, info: Info[Context, None]) -> int:
    return info.context.keys.attempts_remaining(root.model, info.context.clock.now())


def _lock_reason(root: ApiKey, info: Info[Context, None]) -> LockReason | None:
    return info.context.keys.lock_reason(root.model, info.context.clock.now())


def _partner_password_expires_at(root: ApiKey, info: Info[Context, None]) -> datetime | None:
    return info.context.keys.partner_password_expires_at(root.model)


@strawberry.type(description="A rotation of a key's secret: released like a new key's, then both secrets work for a while.")
class Rotation:
    status: RotationStatus
    started_at: datetime
    verification_deadline: datetime = strawberry.field(description="Verify before this, or the rotation locks.")
    code_expires_at: datetime | None = strawberry.field(description="When the current code stops working (null unless pending).")
    attempts_remaining: int
    resends_remaining: int
    released_at: datetime | None = strawberry.field(description="When the new secret was revealed or retrieved.")
    new_secret_first_used_at: datetime | None = strawberry.field(description="The new secret's first token request.")
    old_secret_retires_at: datetime | None = strawberry.field(
        description="When the old secret stops working (null before the release): the grace after the new secret's "
        "first use, or the maximum overlap after the release, whichever comes first."
    )
    release_proof: ReleaseProof = strawberry.field(description="What releases this rotation (its institution's rule when it started).")
    lock_reason: LockReason | None = strawberry.field(
        description="Why the rotation is LOCKED (null unless it is); the key itself stays ACTIVE with its old secret."
    )
    requested_by: str = strawberry.field(
        description="The email of the admin who started the rotation: their code verifies it, and only they reveal "
        "an institutional key's new secret."
    )


def _rotation(root: ApiKey, info: Info[Context, None]) -> Rotation | None:
    rotations, now = info.context.keys.rotations, info.context.clock.now()

    def shown(latest: models.KeyRotation | None) -> Rotation | None:
        if latest is None:
            return None
        state = rotations.state(latest, now)
        return Rotation(**{name: getattr(state, name) for name in state.__dataclass_fields__})

    return _now_or_later(info.context.loaders.rotation.load(root.model.id), shown)


def _last_delivery(root: ApiKey, info: Info[Context, None]) -> Delivery | None:
    return _now_or_later(info.context.loaders.last_delivery.load(root.model.id), _delivery)


def _events(root: ApiKey, info: Info[Context, None]) -> list[KeyEvent]:
    return _now_or_later(info.context.loaders.events.load(root.model.id), _key_events)


@strawberry.type(description="An API key. Secrets are never part of it.")
class ApiKey:
    id: strawberry.ID
    name: str
    kind: KeyKind
    status: KeyStatus = strawberry.field(resolver=_status)
    client_id: str
    created_at: datetime
    expires_at: datetime | None
    verification_deadline: datetime | None = strawberry.field(description="Verify before this, or the key locks for ever.")
    code_expires_at: datetime | None = strawberry.field(
        resolver=_code_expires_at, description="When the current code stops working (null once verified)."
    )
    resends_remaining: int = strawberry.field(
        resolver=_resends_remaining, description="New codes that can still be sent: 0 unless PENDING_VERIFICATION."
    )
    attempts_remaining: int = strawberry.field(
        resolver=_attempts_remaining, description="Codes that can still be tried: 0 unless PENDING_VERIFICATION."
    )
    lock_reason: LockReason | None = strawberry.field(
        resolver=_lock_reason, description="Why the key is LOCKED; null unless it is."
    )
    partner_password_expires_at: datetime | None = strawberry.field(
        resolver=_partner_password_expires_at,
        description="When the partner's one-time password stops working; null until one was sent.",
    )
    revealed: bool = strawberry.field(description="Whether the credentials have been revealed (they can be only once).")
    verified_at: datetime | None
    revoked_at: datetime | None
    compromised_at: datetime | None = strawberry.field(
        description="When a leak of the secret was reported and the secret retired (status COMPROMISED); null otherwise."
    )
    compromise_url: str | None = strawberry.field(
        description="Where the leaked secret was found, as the report said (e.g. a GitHub URL); null if not given."
    )
    last_used_at: datetime | None
    legacy: bool = strawberry.field(description="Imported from before verified release; never asked for verification.")
    partner_name: str | None
    partner_email: str | None
    release_proof: ReleaseProof = strawberry.field(description="What releases this key (its institution's rule when it was created).")
    last_delivery: Delivery | None = strawberry.field(
        resolver=_last_delivery, description="The latest email about this key: the code, or the partner's password."
    )
    events: list[KeyEvent] = strawberry.field(resolver=_events)
    rotation: Rotation | None = strawberry.field(
        resolver=_rotation, description="The key's latest rotation of its secret; null if it was never rotated."
    )
    model: strawberry.Private[models.ApiKey]

    @classmethod
    def of(cls, key: models.ApiKey) -> ApiKey:
        """A key's row as the API shows it: each plain field is the column of its name, but for
        ``id`` (a string) and ``revealed`` (whether ``revealed_at`` is set)."""
        columns = {name: getattr(key, name) for name in _KEY_COLUMNS}
        return cls(id=strawberry.ID(str(key.id)), revealed=key.revealed_at is not None, model=key, **columns)


#: ApiKey's plain fields that show the column of the same name as it is (not the computed
#: fields, which have resolvers, nor the private ``model``).
_KEY_COLUMNS = tuple(
    field.python_name
    for field in get_object_definition(ApiKey, strict=True).fields
    if field.base_resolver is None and not is_private(field.type) and field.python_name not in ("id", "revealed")
)


def _delivery(message: models.OutboxMessage | None) -> Delivery | None:
    return Delivery.of(message) if message is not None else None


def _key_events(rows: list[models.KeyEvent]) -> list[KeyEvent]:
    return [KeyEvent(type=row.type, at=row.at, detail=row.detail) for row in rows]


def _now_or_later(loaded: Awaitable[T], convert: Callable[[T], R]) -> R:
    """``convert`` of a DataLoader's answer: at once when it is already loaded (a page
    preloads its keys), so the field costs no task of its own; otherwise an awaitable of it,
    which the executor awaits (a single key, a mutation's answer)."""
    if isinstance(loaded, asyncio.Future) and loaded.done() and not loaded.cancelled() and loaded.exception() is None:
        return convert(loaded.result())

    async def later() -> R:
        return convert(await loaded)

    return later()  # type: ignore[return-value]


@strawberry.type(description="A key's credentials, returned once. Store the secret now.")
class KeyCredentials:
    client_id: str
    client_secret: str


@strawberry.type
class Institution:
    id: strawberry.ID
    name: str


@strawberry.type(name="Admin")
class AdminType:
    id: strawberry.ID
    email: str
    name: str
    institution: Institution

    @classmethod
    def of(cls, admin: models.Admin) -> AdminType:
        inst = admin.institution
        return cls(
            id=strawberry.ID(str(admin.id)),
            email=admin.email,
            name=admin.name,
            institution=Institution(id=strawberry.ID(str(inst.id)), name=inst.name),
        )


@strawberry.type(description="The numbers of the verification flow this server enforces.")
class Policy:
    code_ttl_seconds: int = strawberry.field(description="How long a code works after it is sent.")
    verification_window_seconds: int = strawberry.field(description="From creation to the deadline for verifying.")
    max_resends: int = strawberry.field(description="New codes a key can be sent after the first.")
    max_attempts: int = strawberry.field(description="Wrong codes a key takes, all codes together, before it locks.")
    partner_password_ttl_seconds: int = strawberry.field(description="How long a partner's one-time password works.")
    max_pending_keys_per_admin: int = strawberry.field(description="Keys one admin may have awaiting verification.")
    max_key_lifetime_days: int = strawberry.field(description="The furthest expiresAt a new key may have.")
    max_keys_per_admin_per_day: int = strawberry.field(
        description="Keys one admin may create in a day (24 hours plus the verification window), whatever became of them."
    )
    max_locked_keys_per_admin_per_day: int = strawberry.field(
        description="An admin's keys locked by wrong codes in 24 hours before key creation is suspended."
    )
    max_code_emails_per_admin_per_hour: int = strawberry.field(description="Code emails (creates and resends) per admin per hour.")
    expiry_notices: list[str] = strawberry.field(
        description="How long before a key's expiry its admin (and partner) are emailed, largest first (`30d`, `14d`, …)."
    )
    rotation_grace_seconds: int = strawberry.field(
        description="After a rotation's new secret is first used, how long the old one keeps working."
    )
    rotation_max_overlap_seconds: int = strawberry.field(
        description="After a rotation's release, how long the old secret works at the most, the new one used or not."
    )

    @classmethod
    def of(
        cls,
        policy: VerificationPolicy,
        expiry_notices: tuple[timedelta, ...] = (),
        *,
        rotation: rotation_service.RotationPolicy,
    ) -> Policy:
        return cls(
            expiry_notices=[expiry.format_duration(threshold) for threshold in expiry_notices],
            rotation_grace_seconds=rotation.grace_seconds,
            rotation_max_overlap_seconds=rotation.max_overlap_seconds,
            code_ttl_seconds=policy.code_ttl_seconds,
            verification_window_seconds=policy.verification_window_seconds,
            max_resends=policy.max_resends,
            max_attempts=policy.max_attempts,
            partner_password_ttl_seconds=policy.partner_otp_ttl_seconds,
            max_pending_keys_per_admin=policy.max_pending_keys_per_admin,
            max_key_lifetime_days=policy.max_key_lifetime_days,
            max_keys_per_admin_per_day=policy.max_keys_per_admin_per_day,
            max_locked_keys_per_admin_per_day=policy.max_locked_keys_per_admin_per_day,
            max_code_emails_per_admin_per_hour=policy.max_code_emails_per_admin_per_hour,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class KeyEdge:
    cursor: str
    node: ApiKey


@strawberry.type
class KeyConnection:
    edges: list[KeyEdge]
    page_info: PageInfo
