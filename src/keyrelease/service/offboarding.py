"""Admin offboarding: ``keyrelease admin disable`` and ``keyrelease admin enable``.

Disabling an admin, in **one** transaction:

1. The admin's ``disabled_at`` is set by a conditional update (``… WHERE id = ? AND
   disabled_at IS NULL``): the row count says whether this call disabled the admin (none:
   already disabled, and nothing else changes).
   From the commit on, every token of the admin is refused exactly as a revoked one is
   (:func:`keyrelease.service.admins.authenticate`), and a createKey whose token was accepted
   just before is refused under the admin's row lock (:meth:`KeyService.create_key`).
2. Each of the admin's keys still PENDING_VERIFICATION locks by a conditional update
   (``… WHERE id = ? AND verified_at IS NULL AND locked_at IS NULL AND revoked_at IS NULL AND
   verification_deadline > now``), with lock reason ADMIN_DISABLED and the events
   ADMIN_DISABLED and LOCKED. A verifyKey racing it either activated the key first (the update
   then matches nothing and the key is noted as active, below) or finds it locked (its own
   conditional update then matches nothing: the generic VerificationError).
3. Each of the admin's ACTIVE keys records ADMIN_DISABLED and keeps working: it belongs to the
   institution, whose other admins see and revoke it as before.

4. Each rotation the admin asked for that still waits for its code locks the same way (one more
   conditional update of the same shape, ``open_key_id`` cleared), with the events
   ADMIN_DISABLED and ROTATION_LOCKED; its key stays ACTIVE with its old secret.

A lock here is not counted against the admin's budget (that counts keys locked by wrong codes)
and sends no mail. Enabling clears ``disabled_at`` only: tokens that are neither expired nor
revoked work again; no lock is undone, no key changes, so no key event is written.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from keyrelease import metrics, validation
from keyrelease.clock import Clock
from keyrelease.models import Admin, ApiKey, EventType, KeyEvent, KeyRotation, LockReason
from keyrelease.service import rotation
from keyrelease.service.admins import AdminInputError
from keyrelease.service.budget import hold

log = logging.getLogger("keyrelease.offboarding")


@dataclass(frozen=True)
class Disabled:
    """What ``disable_admin`` did. ``changed`` is False when the admin was already disabled
    (at ``disabled_at``) and nothing changed."""

    email: str
    disabled_at: datetime
    changed: bool
    locked: tuple[uuid.UUID, ...] = field(default=())
    active: tuple[uuid.UUID, ...] = field(default=())


@dataclass(frozen=True)
class Enabled:
    """What ``enable_admin`` did. ``changed`` is False when the admin was not disabled."""

    email: str
    changed: bool
    #: When the admin had been disabled (None if they were not).
    was_disabled_at: datetime | None


async def _admin(email: str) -> Admin:
    problem = validation.control_character_problem({"email": email})
    if problem is not None:
        raise AdminInputError(problem[1].rstrip("."))
    address = email.strip().lower()
    admin = await Admin.get_or_none(email=address)
    if admin is None:
        raise AdminInputError(f"no admin with email {address}")
    return admin


def _pending(now: datetime) -> Q:
    return Q(verified_at=None, locked_at=None, revoked_at=None, verification_deadline__gt=now)


def _active(now: datetime) -> Q:
    live = Q(verified_at__not_isnull=True, revoked_at=None, compromised_at=None)
    return live & (Q(expires_at=None) | Q(expires_at__gt=now))


async def disable_admin(clock: Clock, email: str) -> Disabled:
    """Disable the admin with this email (see the module's docstring). Raises
    :class:`AdminInputError` for an unknown email."""
    admin = await _admin(email)
    now = clock.now()
    locked: list[uuid.UUID] = []
    async with in_transaction():
        await hold(admin.id)  # the order every key-changing transaction of this admin takes
        won = await Admin.filter(id=admin.id, disabled_at=None).update(disabled_at=now)
        if not won:
            earlier = await Admin.get(id=admin.id)
            assert earlier.disabled_at is not None
            return Disabled(email=admin.email, disabled_at=earlier.disabled_at, changed=False)
        candidates = await ApiKey.filter(_pending(now), created_by_id=admin.id).values_list("id", flat=True)
        for key_id in candidates:
            if await ApiKey.filter(_pending(now), id=key_id).update(locked_at=now, lock_reason=LockReason.ADMIN_DISABLED):
                locked.append(key_id)  # type: ignore[arg-type]  # flat values_list
        rotations = await KeyRotation.filter(rotation.pending(now), requested_by_id=admin.id).values_list("id", "key_id")
        locked_rotations = [
            key_id
            for rotation_id, key_id in rotations
            if await KeyRotation.filter(rotation.pending(now), id=rotation_id).update(
                locked_at=now, lock_reason=LockReason.ADMIN_DISABLED, open_key_id=None
            )
        ]
        # Read after the locks: a key a racing verifyKey activated is active now, and noted.
        active = await ApiKey.filter(_active(now), created_by_id=admin.id).values_list("id", flat=True)
        events = [
            event
            for key_id in locked
            for event in (
                KeyEvent(key_id=key_id, type=EventType.ADMIN_DISABLED, at=now, detail="creator disabled; verification locked"),
                KeyEvent(key_id=key_id, type=EventType.LOCKED, at=now, detail=LockReason.ADMIN_DISABLED.value),
            )
        ]
        events += [
            KeyEvent(key_id=key_id, type=EventType.ADMIN_DISABLED, at=now, detail="creator disabled; the key keeps working")
            for key_id in active
        ]
        events += [
            event
            for key_id in locked_rotations
            for event in (
                KeyEvent(key_id=key_id, type=EventType.ADMIN_DISABLED, at=now, detail="requester disabled; rotation locked"),
                KeyEvent(key_id=key_id, type=EventType.ROTATION_LOCKED, at=now, detail=LockReason.ADMIN_DISABLED.value),
            )
        ]
        if events:
            await KeyEvent.bulk_create(events)
    for _ in [*locked, *locked_rotations]:
        metrics.lock(LockReason.ADMIN_DISABLED.value)
    log.warning(
        "admin %d disabled: their tokens are refused; %d pending key(s) and %d rotation(s) locked, "
        "%d active key(s) keep working",
        admin.id,
        len(locked),
        len(locked_rotations),
        len(active),
    )
    return Disabled(
        email=admin.email,
        disabled_at=now,
        changed=True,
        locked=tuple(locked),
        active=tuple(active),  # type: ignore[arg-type]  # flat values_list
    )


async def enable_admin(clock: Clock, email: str) -> Enabled:
    """Let a disabled admin sign in again: their tokens that are neither expired nor revoked
    work again. Locks stay. Raises :class:`AdminInputError` for an unknown email."""
    admin = await _admin(email)
    async with in_transaction():
        await hold(admin.id)
        current = await Admin.get(id=admin.id)
        changed = await Admin.filter(id=admin.id, disabled_at__not_isnull=True).update(disabled_at=None)
    if changed:
        log.warning("admin %d enabled: their tokens are accepted again (disabled since %s)", admin.id,
                    current.disabled_at.isoformat() if current.disabled_at else "-")
    return Enabled(email=admin.email, changed=bool(changed), was_disabled_at=current.disabled_at)
