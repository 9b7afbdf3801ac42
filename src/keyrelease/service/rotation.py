"""Rotation of a key's secret with overlap: a new secret for the same client ID, released
exactly like a new key's (issue 15 point 1).

``rotateKey`` on an ACTIVE key whose secret was revealed (or retrieved by the partner) opens a
:class:`~keyrelease.models.KeyRotation`: a code goes to the requesting admin (any admin of the
institution), and ``verifyKey`` / ``resendCode`` with the key's id act on the rotation while it
is pending, under the very same policy (code lifetime, resends, attempts, window) and with the
same generic error and failure floor (:meth:`KeyService._failed`). Once verified, an
institutional key's new secret is revealed once to that admin by ``revealKey``; a partner key's
new one-time password goes to the partner, who retrieves the secret once on the partner page.
The new secret is minted at that release, in the conditional update that sets ``revealed_at``.

Each rule is one conditional UPDATE whose WHERE states it. At most one rotation is open per key:
``open_key_id`` is unique, and set to NULL when a rotation closes (locked, cancelled, finished).
A rotation that locks or is cancelled leaves the key ACTIVE with its old secret.

While a rotation is released both secrets authenticate (:mod:`keyrelease.service.clients`);
the old one stops at :meth:`RotationPolicy.old_secret_retires_at`, derived from timestamps, and
:meth:`Rotations.finish_due` (the periodic pass) then drops the old hash for good.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.transactions import in_transaction

from keyrelease import codes, credentials, metrics
from keyrelease.db import fastpath
from keyrelease.mail import outbox
from keyrelease.models import (
    Admin,
    ApiKey,
    BudgetItem,
    EventType,
    ExpiryNotice,
    Institution,
    KeyKind,
    KeyRotation,
    LockReason,
    ReleaseProof,
)
from keyrelease.service import budget
from keyrelease.service import keys as key_service  # a module: keys.py imports this one too
from keyrelease.service.results import (
    CodeEmailLimitReached,
    Credentials,
    InvalidInput,
    KeyNotFound,
    SignInRefused,
    VerificationFailed,
)

if TYPE_CHECKING:
    from keyrelease.service.keys import BudgetRefusal, KeyService

#: The defaults of ``KEYRELEASE_ROTATION_GRACE_SECONDS`` and ``KEYRELEASE_ROTATION_MAX_OVERLAP_SECONDS``.
DEFAULT_GRACE_SECONDS = 86400
DEFAULT_MAX_OVERLAP_SECONDS = 604800
MIN_GRACE_SECONDS = 60


@dataclass(frozen=True)
class RotationPolicy:
    """How long the old secret outlives a released rotation."""

    grace_seconds: int = DEFAULT_GRACE_SECONDS
    max_overlap_seconds: int = DEFAULT_MAX_OVERLAP_SECONDS

    def __post_init__(self) -> None:
        if self.grace_seconds < MIN_GRACE_SECONDS:
            raise ValueError(f"the rotation grace must be at least {MIN_GRACE_SECONDS} seconds")
        if self.max_overlap_seconds < self.grace_seconds:
            raise ValueError("the rotation's maximum overlap must be at least its grace")

    def old_secret_retires_at(self, released_at: datetime | None, first_used_at: datetime | None) -> datetime | None:
        """When the old secret stops: the grace after the new one's first use, or the maximum
        overlap after the release, whichever comes first (None before the release)."""
        if released_at is None:
            return None
        latest = released_at + timedelta(seconds=self.max_overlap_seconds)
        if first_used_at is None:
            return latest
        return min(latest, first_used_at + timedelta(seconds=self.grace_seconds))


class RotationStatus(StrEnum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    VERIFIED = "VERIFIED"
    OVERLAP = "OVERLAP"
    COMPLETED = "COMPLETED"
    LOCKED = "LOCKED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class RotationState:
    """A rotation as an admin sees it (``ApiKey.rotation``)."""

    status: RotationStatus
    started_at: datetime
    verification_deadline: datetime
    code_expires_at: datetime | None
    attempts_remaining: int
    resends_remaining: int
    released_at: datetime | None
    new_secret_first_used_at: datetime | None
    old_secret_retires_at: datetime | None
    release_proof: ReleaseProof
    #: Why it is LOCKED (null unless it is), the closed window included before it is recorded.
    lock_reason: LockReason | None
    #: The requesting admin's email when the rotation started: the one who got its code, and
    #: who alone reveals an institutional key's new secret.
    requested_by: str


def pending(now: datetime) -> Q:
    """An open rotation waiting for its code, of a key still active (the WHERE of every pending
    rule): a revoked, compromised or expired key's rotation is neither verified, nor resent,
    nor counted, nor locked by a passkey challenge (the caller answers with the generic error)."""
    return Q(
        open_key_id__not_isnull=True,
        verified_at=None,
        locked_at=None,
        cancelled_at=None,
        verification_deadline__gt=now,
        key_id__in=Subquery(ApiKey.filter(_key_active(now)).values("id")),
    )


async def end_open(key_id: uuid.UUID, now: datetime, why: str) -> bool:
    """Inside a transaction: cancel the key's open rotation not yet released, if it still
    waits for its code or its reveal (ROTATION_CANCELLED, detail ``why``). ``cancelRotation``
    does it, and so do revoking the key and a leak retiring it, so that the rotation reads as
    ended and nothing more of it is verified, resent, revealed or mailed."""
    cancelled = await KeyRotation.filter(
        Q(verified_at__not_isnull=True) | Q(verification_deadline__gt=now),
        open_key_id=key_id,
        revealed_at=None,
        locked_at=None,
    ).update(cancelled_at=now, open_key_id=None)
    if cancelled:
        await key_service._event(key_id, EventType.ROTATION_CANCELLED, now, why)
    return bool(cancelled)


def _key_active(now: datetime) -> Q:
    live = Q(verified_at__not_isnull=True, revealed_at__not_isnull=True, revoked_at=None, compromised_at=None)
    return live & (Q(expires_at=None) | Q(expires_at__gt=now))


class Rotations:
    """The rotation use-cases, sharing the key service's secret, policy, clock, failure floor
    and mail hook (so every rule and answer is the key's own)."""

    def __init__(self, keys: KeyService, policy: RotationPolicy) -> None:
        self.keys = keys
        self.policy = policy

    # -- start and cancel ---------------------------------------------------------------

    async def rotate_key(
        self, admin: Admin, key_id: str, expires_at: datetime | None = None
    ) -> ApiKey | InvalidInput | KeyNotFound | SignInRefused | BudgetRefusal:
        if (problem := key_service.refuse_control_characters(keyId=key_id)) is not None:
            return problem
        now = self.keys.clock.now()
        if expires_at is not None and (problem := self.keys.check_expiry(now, expires_at)) is not None:
            return problem
        parsed = key_service.parse_key_id(key_id)
        if parsed is None:
            return KeyNotFound()
        try:
            async with in_transaction():
                await budget.hold(admin.id)
                if await Admin.filter(id=admin.id, disabled_at__not_isnull=True).exists():
                    raise key_service._Undo(SignInRefused())
                key = await ApiKey.get_or_none(id=parsed, institution_id=admin.institution_id)
                if key is None:
                    raise key_service._Undo(KeyNotFound())
                if not await ApiKey.filter(_key_active(now), id=parsed).exists():
                    raise key_service._Undo(InvalidInput("keyId", "Only an active key whose secret was released can be rotated."))
                await self._close_stale(parsed, now)
                if await KeyRotation.filter(open_key_id=parsed).exists():
                    raise key_service._Undo(InvalidInput("keyId", "This key is already being rotated."))
                proof = await self.keys.release_proof(admin)
                if proof.takes_code:
                    overspent = await self.keys.budget.spend(
                        admin.id, now, (BudgetItem.CODE_EMAIL,), (self.keys.budget.code_emails,)
                    )
                    if overspent is not None:
                        raise key_service._Undo(self.keys._refusal(overspent))
                rotation = await KeyRotation.create(
                    id=uuid.uuid4(),
                    key_id=parsed,
                    open_key_id=parsed,
                    requested_by_id=admin.id,
                    notify_email=admin.email,
                    started_at=now,
                    verification_deadline=self.keys.policy.verification_deadline(now),
                    code_generation=0,
                    code_sent_at=now,
                    expires_at=expires_at,
                    release_proof=proof,
                )
                if proof.takes_code:
                    await key_service._event(parsed, EventType.ROTATION_STARTED, now, f"by admin {admin.id}; code to {key_service._mask_email(admin.email)}")
                    await outbox.queue_verification_code(key, code_expires_at=self._code_expiry(rotation), now=now, rotation=rotation)
                else:
                    await key_service._event(parsed, EventType.ROTATION_STARTED, now, f"by admin {admin.id}; released by a passkey")
        except key_service._Undo as undo:
            return undo.result  # type: ignore[return-value]  # one of the refusals above
        except IntegrityError:  # a parallel rotateKey opened one first: the unique open_key_id decided
            return InvalidInput("keyId", "This key is already being rotated.")
        self.keys._on_mail_queued()
        return key

    async def cancel_rotation(self, admin: Admin, key_id: str) -> ApiKey | InvalidInput | KeyNotFound:
        """Cancel the key's rotation before its release; the key keeps its old secret."""
        if (problem := key_service.refuse_control_characters(keyId=key_id)) is not None:
            return problem
        now = self.keys.clock.now()
        parsed = key_service.parse_key_id(key_id)
        key = await ApiKey.get_or_none(id=parsed, institution_id=admin.institution_id) if parsed else None
        if key is None:
            return KeyNotFound()
        async with in_transaction():
            await self._close_stale(key.id, now)  # a closed window is a lock, recorded as rotateKey does
            cancelled = await end_open(key.id, now, f"by admin {admin.id}")
        if not cancelled:
            return InvalidInput("keyId", "This key has no rotation to cancel.")
        return key

    # -- verification (reached through KeyService.verify_key and resend_code) ----------------

    async def pending_for(self, admin: Admin, key_id: uuid.UUID) -> KeyRotation | None:
        """The key's open rotation, if ``admin`` asked for it and it still waits for its code."""
        rotation = await fastpath.get(KeyRotation, open_key_id=key_id, requested_by_id=admin.id)
        if rotation is None or rotation.verified_at is not None:
            return None
        return rotation

    async def verify(self, rotation: KeyRotation, code: str, started: float) -> ApiKey | VerificationFailed:
        now = self.keys.clock.now()
        if codes.code_matches(self.keys._secret, rotation.id, rotation.code_generation, code) and rotation.release_proof.takes_code:
            verified = await self._activate(rotation, now)
            if verified is not None:
                metrics.verification("verified")
                return verified
        await self._count_failed_attempt(rotation, now)
        metrics.verification("failed")
        return await self.keys._failed(started)

    async def _activate(self, rotation: KeyRotation, now: datetime, proof: Q | None = None) -> ApiKey | None:
        """As :meth:`KeyService._activate`, for the rotation (``proof`` by default its code)."""
        policy = self.keys.policy
        if proof is None:
            proof = Q(code_generation=rotation.code_generation, code_sent_at__gt=policy.codes_issued_after(now))
        async with in_transaction():
            won = await KeyRotation.filter(
                pending(now),
                proof,
                id=rotation.id,
                attempts_used__lt=policy.max_attempts,
            ).update(verified_at=now, passkey_nonce=None)
            if not won:
                return None
            await key_service._event(rotation.key_id, EventType.ROTATION_VERIFIED, now)  # type: ignore[arg-type]
            key = await ApiKey.get(id=rotation.key_id)
            if key.kind is KeyKind.PARTNER:
                await KeyRotation.filter(id=rotation.id).update(partner_otp_issued_at=now)
                institution = await Institution.get(id=key.institution_id)
                await outbox.queue_partner_otp(
                    key,
                    institution_name=institution.name,
                    otp_expires_at=policy.partner_password_expires_at(now),
                    now=now,
                    rotation_id=rotation.id,
                )
                await key_service._event(key.id, EventType.PARTNER_OTP_SENT, now, f"rotation; to {key_service._mask_email(key.partner_email or '')}")
        if key.kind is KeyKind.PARTNER:
            self.keys._on_mail_queued()
        return key

    async def _count_failed_attempt(self, rotation: KeyRotation, now: datetime) -> None:
        limit = self.keys.policy.max_attempts
        alerted = False
        async with in_transaction():
            await budget.hold(rotation.requested_by_id)
            counted = await KeyRotation.filter(pending(now), id=rotation.id, attempts_used__lt=limit).update(
                attempts_used=F("attempts_used") + 1
            )
            if not counted:
                await self._close_stale(rotation.key_id, now)  # type: ignore[arg-type]
                return
            used = (await KeyRotation.filter(id=rotation.id).values_list("attempts_used", flat=True))[0]
            await key_service._event(rotation.key_id, EventType.VERIFICATION_FAILED, now, f"rotation attempt {used} of {limit}")  # type: ignore[arg-type]
            locked = await KeyRotation.filter(
                id=rotation.id, attempts_used__gte=limit, verified_at=None, locked_at=None, cancelled_at=None
            ).update(locked_at=now, lock_reason=LockReason.ATTEMPTS, open_key_id=None)
            if locked:
                await key_service._event(rotation.key_id, EventType.ROTATION_LOCKED, now, LockReason.ATTEMPTS.value)  # type: ignore[arg-type]
                metrics.lock(LockReason.ATTEMPTS.value)
                alerted = await self.keys._record_attempts_lock(rotation.requested_by_id, now)
        if alerted:
            self.keys._on_mail_queued()

    async def resend(
        self, admin: Admin, rotation: KeyRotation, started: float
    ) -> ApiKey | VerificationFailed | CodeEmailLimitReached:
        now = self.keys.clock.now()
        policy = self.keys.policy
        try:
            async with in_transaction():
                await budget.hold(admin.id)
                issued = await KeyRotation.filter(
                    pending(now), ~Q(release_proof=ReleaseProof.PASSKEY), id=rotation.id, requested_by_id=admin.id, resends_used__lt=policy.max_resends
                ).update(resends_used=F("resends_used") + 1, code_generation=F("code_generation") + 1, code_sent_at=now)
                if issued:
                    overspent = await self.keys.budget.spend(
                        admin.id, now, (BudgetItem.CODE_EMAIL,), (self.keys.budget.code_emails,)
                    )
                    if overspent is not None:
                        raise key_service._Undo(self.keys._refusal(overspent))
                    fresh = await KeyRotation.get(id=rotation.id)
                    key = await ApiKey.get(id=rotation.key_id)
                    await outbox.queue_verification_code(key, code_expires_at=self._code_expiry(fresh), now=now, rotation=fresh)
                    await key_service._event(
                        key.id,
                        EventType.CODE_RESENT,
                        now,
                        f"rotation resend {fresh.resends_used} of {policy.max_resends} to {key_service._mask_email(fresh.notify_email)}",
                    )
                else:
                    await self._close_stale(rotation.key_id, now)  # type: ignore[arg-type]
        except key_service._Undo as undo:
            metrics.resend("limited")
            return undo.result  # type: ignore[return-value]  # a CodeEmailLimitReached
        if not issued:
            metrics.resend("refused")
            return await self.keys._failed(started)
        metrics.resend("sent")
        self.keys._on_mail_queued()
        return key

    # -- release ------------------------------------------------------------------------

    async def reveal(self, admin: Admin, key_id: uuid.UUID) -> Credentials | None:
        """The requesting admin's one reveal of an institutional key's new secret, or None
        (nothing to reveal: the caller answers with the generic failure)."""
        now = self.keys.clock.now()
        rotation = await fastpath.get(KeyRotation, open_key_id=key_id, requested_by_id=admin.id)
        if rotation is None:
            return None
        secret = credentials.new_client_secret()
        async with in_transaction():
            key = await ApiKey.filter(_key_active(now), id=key_id, kind=KeyKind.INSTITUTIONAL).first()
            if key is None:
                return None
            won = await KeyRotation.filter(
                id=rotation.id, open_key_id=key_id, verified_at__not_isnull=True, revealed_at=None, cancelled_at=None
            ).update(revealed_at=now, new_secret_hash=credentials.hash_secret(secret))
            if not won:
                return None
            await self._release(key, rotation, now)
            await key_service._event(key_id, EventType.ROTATION_REVEALED, now, f"to admin {admin.id}")
        metrics.reveal("institutional", "revealed")
        return Credentials(client_id=key.client_id, client_secret=secret)

    async def reveal_to_partner(self, key: ApiKey, one_time_password: str) -> Credentials | None:
        """The partner's one retrieval of a partner key's new secret with the rotation's
        one-time password, or None (then a failure, counted against the rotation's partner
        attempts when a released rotation waits for retrieval)."""
        now = self.keys.clock.now()
        rotation = await fastpath.get(KeyRotation, open_key_id=key.id)
        if rotation is None or rotation.verified_at is None or rotation.revealed_at is not None:
            return None
        policy = self.keys.policy
        limit = policy.max_partner_attempts
        matched = codes.otp_matches(self.keys._secret, rotation.id, one_time_password)
        secret = credentials.new_client_secret()
        async with in_transaction():
            if matched and await ApiKey.filter(_key_active(now), id=key.id).exists():
                won = await KeyRotation.filter(
                    id=rotation.id,
                    open_key_id=key.id,
                    verified_at__not_isnull=True,
                    revealed_at=None,
                    cancelled_at=None,
                    partner_attempts_used__lt=limit,
                    partner_otp_issued_at__gt=policy.partner_passwords_issued_after(now),
                ).update(revealed_at=now, new_secret_hash=credentials.hash_secret(secret))
                if won:
                    await self._release(key, rotation, now)
                    await key_service._event(key.id, EventType.ROTATION_REVEALED, now, "retrieved by the partner")
                    metrics.reveal("partner", "revealed")
                    return Credentials(client_id=key.client_id, client_secret=secret)
            counted = await KeyRotation.filter(
                id=rotation.id, revealed_at=None, partner_attempts_used__lt=limit
            ).update(partner_attempts_used=F("partner_attempts_used") + 1)
            if counted:
                used = (await KeyRotation.filter(id=rotation.id).values_list("partner_attempts_used", flat=True))[0]
                detail = f"rotation attempt {used} of {limit}" + ("; retrieval locked" if used >= limit else "")  # type: ignore[operator]
                await key_service._event(key.id, EventType.PARTNER_REVEAL_FAILED, now, detail)
        return None

    async def _release(self, key: ApiKey, rotation: KeyRotation, now: datetime) -> None:
        """The requested expiry becomes the key's, in the release's transaction; the notices
        decided about the old expiry are dropped, so the new one gets its own from the next pass."""
        if rotation.expires_at is not None:
            await ApiKey.filter(id=key.id).update(expires_at=rotation.expires_at)
            await ExpiryNotice.filter(key_id=key.id).exclude(expires_at=rotation.expires_at).delete()
            key.expires_at = rotation.expires_at

    # -- the overlap's end --------------------------------------------------------------

    async def record_first_use(self, rotation_id: uuid.UUID, key_id: uuid.UUID, at: datetime) -> bool:
        """Record the new secret's first successful token request, once (a conditional update)."""
        async with in_transaction():
            won = await KeyRotation.filter(id=rotation_id, new_secret_first_used_at=None).update(
                new_secret_first_used_at=at
            )
            if won:
                await key_service._event(key_id, EventType.NEW_SECRET_FIRST_USED, at)
        return bool(won)

    async def finish_due(self, limit: int = 500) -> int:
        """Periodic pass: make the new secret the only one of every key whose overlap has
        ended (it already stopped authenticating by the timestamps; this drops its hash). Safe
        in several processes at once: each finish is a conditional update."""
        now = self.keys.clock.now()
        released = await KeyRotation.filter(open_key_id__not_isnull=True, revealed_at__not_isnull=True).limit(limit)
        finished = 0
        for rotation in released:
            retires = self.policy.old_secret_retires_at(rotation.revealed_at, rotation.new_secret_first_used_at)
            if retires is not None and retires <= now:
                async with in_transaction():
                    finished += await self._finish(rotation, retires)
        return finished

    async def _finish(self, rotation: KeyRotation, retired_at: datetime) -> bool:
        won = await KeyRotation.filter(id=rotation.id, open_key_id__not_isnull=True, revealed_at__not_isnull=True).update(
            open_key_id=None, old_secret_retired_at=retired_at
        )
        if won:
            await ApiKey.filter(id=rotation.key_id).update(secret_hash=rotation.new_secret_hash)
            await key_service._event(rotation.key_id, EventType.OLD_SECRET_RETIRED, retired_at)  # type: ignore[arg-type]
        return bool(won)

    async def _close_stale(self, key_id: uuid.UUID, now: datetime) -> None:
        """Inside a transaction: record what the timestamps already say about the key's open
        rotation: its window closed (LOCKED), or its overlap ended (finished)."""
        stale = await KeyRotation.get_or_none(open_key_id=key_id)
        if stale is None:
            return
        if stale.verified_at is None and stale.locked_at is None and stale.verification_deadline <= now:
            locked = await KeyRotation.filter(id=stale.id, open_key_id=key_id, verified_at=None, locked_at=None).update(
                locked_at=stale.verification_deadline, lock_reason=LockReason.WINDOW, open_key_id=None
            )
            if locked:
                await key_service._event(key_id, EventType.ROTATION_LOCKED, stale.verification_deadline, LockReason.WINDOW.value)
                metrics.lock(LockReason.WINDOW.value)
            return
        retires = self.policy.old_secret_retires_at(stale.revealed_at, stale.new_secret_first_used_at)
        if retires is not None and retires <= now:
            await self._finish(stale, retires)

    # -- derived values -----------------------------------------------------------------

    def _code_expiry(self, rotation: KeyRotation) -> datetime:
        return self.keys.policy.code_expires_at(rotation.code_sent_at, rotation.verification_deadline)

    def state(self, rotation: KeyRotation, now: datetime) -> RotationState:
        status = self.status(rotation, now)
        pending = status is RotationStatus.PENDING_VERIFICATION
        policy = self.keys.policy
        return RotationState(
            status=status,
            started_at=rotation.started_at,
            verification_deadline=rotation.verification_deadline,
            code_expires_at=self._code_expiry(rotation) if pending else None,
            attempts_remaining=policy.attempts_remaining(rotation.attempts_used) if pending else 0,
            resends_remaining=policy.resends_remaining(rotation.resends_used) if pending else 0,
            released_at=rotation.revealed_at,
            new_secret_first_used_at=rotation.new_secret_first_used_at,
            old_secret_retires_at=self.policy.old_secret_retires_at(rotation.revealed_at, rotation.new_secret_first_used_at)
            if rotation.cancelled_at is None
            else None,
            release_proof=rotation.release_proof,
            lock_reason=self.lock_reason(rotation, now),
            requested_by=rotation.notify_email,
        )

    def status(self, rotation: KeyRotation, now: datetime) -> RotationStatus:
        if rotation.cancelled_at is not None:
            return RotationStatus.CANCELLED
        if rotation.old_secret_retired_at is not None:
            return RotationStatus.COMPLETED
        if rotation.revealed_at is not None:
            retires = self.policy.old_secret_retires_at(rotation.revealed_at, rotation.new_secret_first_used_at)
            return RotationStatus.COMPLETED if retires is not None and retires <= now else RotationStatus.OVERLAP
        if rotation.verified_at is not None:
            return RotationStatus.VERIFIED
        if rotation.locked_at is not None or now >= rotation.verification_deadline:
            return RotationStatus.LOCKED
        return RotationStatus.PENDING_VERIFICATION

    def lock_reason(self, rotation: KeyRotation, now: datetime) -> LockReason | None:
        """Why a LOCKED rotation locked, as the key's (:meth:`KeyService.lock_reason`): the one
        recorded, or WINDOW for a window that closed before anything recorded the lock."""
        if self.status(rotation, now) is not RotationStatus.LOCKED:
            return None
        return rotation.lock_reason or LockReason.WINDOW
