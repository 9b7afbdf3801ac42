"""The key use-cases: create, verify, resend, reveal (admin and partner), revoke.

Every limit is enforced by a conditional update whose WHERE clause states the whole rule
(``... AND attempts_used < 5 AND verification_deadline > now``), so it holds under parallel
requests in any number of processes: the database, not Python, decides who wins. Each
use-case runs in one transaction; mail is queued in the same transaction as the change that
causes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from keyrelease import codes, credentials, metrics, validation
from keyrelease.clock import Clock
from keyrelease.db import fastpath
from keyrelease.mail import outbox
from keyrelease.models import (
    KEY_NAME_MAX,
    NAME_MAX,
    Admin,
    ApiKey,
    BudgetItem,
    EventType,
    Institution,
    KeyEvent,
    KeyKind,
    LockReason,
    Passkey,
    ReleaseProof,
)
from keyrelease.policy import VerificationPolicy
from keyrelease.service import budget
from keyrelease.service import passkeys as passkey_service  # a module: passkeys.py imports this one
from keyrelease.service import rotation as rotation_service  # a module: rotation.py imports this one
from keyrelease.service.budget import AdminBudget, Overspent
from keyrelease.service.results import (
    CodeEmailLimitReached,
    Credentials,
    DailyKeyLimitReached,
    InvalidInput,
    KeyCreationSuspended,
    KeyNotFound,
    PendingLimitReached,
    SignInRefused,
    VerificationFailed,
)
from keyrelease.status import KeyStatus, key_status

log = logging.getLogger("keyrelease.keys")
BudgetRefusal = DailyKeyLimitReached | CodeEmailLimitReached | KeyCreationSuspended
#: How long a "key creation suspended" alert stays worth sending if the outbox is held up.
ALERT_TTL = timedelta(days=7)

#: Stands in for a key that does not exist, so the failure path does the same hashing work.
_ABSENT_KEY = uuid.UUID(int=0)


def parse_key_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        return None


def refuse_control_characters(**fields: str | None) -> InvalidInput | None:
    """An :class:`InvalidInput` naming the first field (by its API name) that holds a control
    character (:mod:`keyrelease.validation`); every use-case asks before it reads or writes."""
    problem = validation.control_character_problem(fields, FIELD_LABELS)
    return InvalidInput(*problem) if problem else None


#: What the console's forms call each input: a message is read by a person, ``field`` by code.
FIELD_LABELS = {
    "name": "The name",
    "partnerName": "The partner name",
    "partnerEmail": "The partner email address",
    "keyId": "The key id",
    "code": "The verification code",
    "oneTimePassword": "The one-time password",
}


def _pending(now: datetime) -> Q:
    return Q(verified_at=None, locked_at=None, revoked_at=None, verification_deadline__gt=now)


def _not_expired(now: datetime) -> Q:
    return Q(expires_at=None) | Q(expires_at__gt=now)


async def _event(key_id: uuid.UUID, type_: EventType, at: datetime, detail: str | None = None) -> None:
    await KeyEvent.create(key_id=key_id, type=type_, at=at, detail=detail)


class _Undo(Exception):  # noqa: N818 - not an error: rolls a transaction back and carries the answer
    """Raised inside a transaction to roll it back; carries the result to return instead."""

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result


class KeyService:
    """The use-cases. Framework-free: callers pass plain values and get values back."""

    def __init__(
        self,
        *,
        server_secret: bytes,
        policy: VerificationPolicy,
        clock: Clock,
        region: str,
        on_mail_queued: Callable[[], None] = lambda: None,
        rotation_policy: rotation_service.RotationPolicy | None = None,
        relying_party: passkey_service.RelyingParty | None = None,
    ) -> None:
        self._secret = server_secret
        self.policy = policy
        self.clock = clock
        self._region = region
        self._on_mail_queued = on_mail_queued
        self.budget = AdminBudget(policy)
        #: Rotations of a key's secret: verifyKey, resendCode and the reveals route to a
        #: key's open rotation through these.
        self.rotations = rotation_service.Rotations(self, rotation_policy or rotation_service.RotationPolicy())
        #: Passkeys: their registration, and a key's (or rotation's) release by an assertion.
        self.passkeys = passkey_service.Passkeys(self, relying_party or passkey_service.RelyingParty.of_url("http://127.0.0.1:8000"))
        #: The failure floor's stopwatch and wait (:meth:`_failed`); tests replace them to see
        #: the wait each failure asks for instead of timing it.
        self.monotonic: Callable[[], float] = time.perf_counter
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- creation -----------------------------------------------------------------------

    async def create_key(
        self,
        admin: Admin,
        *,
        name: str,
        kind: KeyKind,
        expires_at: datetime | None = None,
        partner_name: str | None = None,
        partner_email: str | None = None,
    ) -> ApiKey | InvalidInput | PendingLimitReached | BudgetRefusal | SignInRefused:
        now = self.clock.now()
        problem = refuse_control_characters(name=name, partnerName=partner_name, partnerEmail=partner_email)
        if problem is not None:
            return problem
        problem = self._check_new_key(now, name, kind, expires_at, partner_name, partner_email)
        if problem is not None:
            return problem
        try:
            key = await self._create_key(admin, now, name, kind, expires_at, partner_name, partner_email)
        except _Undo as undo:
            return undo.result  # type: ignore[return-value]  # one of the refusals below
        self._on_mail_queued()
        return key

    async def _create_key(
        self,
        admin: Admin,
        now: datetime,
        name: str,
        kind: KeyKind,
        expires_at: datetime | None,
        partner_name: str | None,
        partner_email: str | None,
    ) -> ApiKey:
        async with in_transaction():
            # The admin's row lock makes parallel creates by one admin queue up behind the
            # budget and pending-count checks (see keyrelease.service.budget).
            await budget.hold(admin.id)
            # Disabled after the token was accepted: no pending key may outlive the disable,
            # which takes this lock too (keyrelease.service.offboarding).
            if await Admin.filter(id=admin.id, disabled_at__not_isnull=True).exists():
                raise _Undo(SignInRefused())
            proof = await self.release_proof(admin)
            overspent = await self.budget.spend(
                admin.id,
                now,
                (BudgetItem.KEY_CREATED, BudgetItem.CODE_EMAIL) if proof.takes_code else (BudgetItem.KEY_CREATED,),
                self.budget.for_create,
            )
            if overspent is not None:
                raise _Undo(self._refusal(overspent))
            pending = await ApiKey.filter(_pending(now), created_by_id=admin.id).count()
            if pending >= self.policy.max_pending_keys_per_admin:
                raise _Undo(PendingLimitReached(self.policy.max_pending_keys_per_admin))
            key = await ApiKey.create(
                id=uuid.uuid4(),
                institution_id=admin.institution_id,
                created_by_id=admin.id,
                kind=kind,
                name=name.strip(),
                client_id=credentials.new_client_id(self._region),
                notify_email=admin.email,
                partner_name=_clean_optional(partner_name),
                partner_email=_clean_optional(partner_email),
                created_at=now,
                expires_at=expires_at,
                verification_deadline=self.policy.verification_deadline(now),
                code_generation=0,
                code_issued_at=now,
                release_proof=proof,
            )
            await _event(key.id, EventType.CREATED, now, key.kind.value)
            if proof.takes_code:
                await outbox.queue_verification_code(key, code_expires_at=self._code_expiry(key), now=now)
                await _event(key.id, EventType.CODE_SENT, now, f"to {_mask_email(admin.email)}")
        return key

    async def release_proof(self, admin: Admin) -> ReleaseProof:
        """Inside a transaction, after :func:`budget.hold`: what will release a key or rotation
        ``admin`` starts now; refused (:class:`_Undo`) when the institution takes passkeys only
        and the admin has none, with how to add one."""
        institution = await Institution.get(id=admin.institution_id)
        proof = ReleaseProof(institution.release_proof)
        if not proof.takes_code and not await Passkey.filter(admin_id=admin.id).exists():
            raise _Undo(InvalidInput("passkey", passkey_service.NO_PASSKEY))
        return proof

    async def spend_code_email(self, admin_id: int, now: datetime) -> None:
        """Inside a transaction, after :func:`budget.hold`: one code email from the admin's
        hourly budget, or :class:`_Undo` with the refusal when it is spent."""
        overspent = await self.budget.spend(admin_id, now, (BudgetItem.CODE_EMAIL,), (self.budget.code_emails,))
        if overspent is not None:
            raise _Undo(self._refusal(overspent))

    def _refusal(self, overspent: Overspent) -> BudgetRefusal:
        retry_at = _second_up(overspent.reopens_at)
        metrics.budget_refused(overspent.rule.item.value)
        limit = overspent.rule.limit
        match overspent.rule.item:
            case BudgetItem.KEY_LOCKED:
                return KeyCreationSuspended(limit=limit, locked=overspent.count, retry_at=retry_at)
            case BudgetItem.KEY_CREATED:
                return DailyKeyLimitReached(limit=limit, retry_at=retry_at)
            case BudgetItem.CODE_EMAIL:
                return CodeEmailLimitReached(limit=limit, retry_at=retry_at)
        raise AssertionError(overspent.rule.item)

    def _check_new_key(
        self,
        now: datetime,
        name: str,
        kind: KeyKind,
        expires_at: datetime | None,
        partner_name: str | None,
        partner_email: str | None,
    ) -> InvalidInput | None:
        cleaned = name.strip()
        if not cleaned:
            return InvalidInput("name", "Name must not be empty.")
        if len(cleaned) > KEY_NAME_MAX:
            return InvalidInput("name", f"Name must be at most {KEY_NAME_MAX} characters.")
        if expires_at is not None and (problem := self.check_expiry(now, expires_at)) is not None:
            return problem
        if kind is KeyKind.PARTNER:
            if not partner_email or not validation.is_email_address(partner_email.strip()):
                return InvalidInput("partnerEmail", "A partner key needs a valid partner email address.")
            if partner_name is not None and len(partner_name.strip()) > NAME_MAX:
                return InvalidInput("partnerName", f"The partner name must be at most {NAME_MAX} characters.")
        elif partner_email or partner_name:
            return InvalidInput("partnerEmail", "Only partner keys take a partner name and email.")
        return None

    def check_expiry(self, now: datetime, expires_at: datetime) -> InvalidInput | None:
        """A new key's, or a rotation's, requested expiry: aware, ahead, within the lifetime."""
        if expires_at.tzinfo is None:
            return InvalidInput("expiresAt", "The expiry date must include a time zone, e.g. 2031-01-01T00:00:00Z.")
        if expires_at <= now:
            return InvalidInput("expiresAt", "The expiry date must be in the future.")
        if expires_at > self.policy.latest_key_expiry(now):
            return InvalidInput(
                "expiresAt",
                f"The expiry date must be at most {self.policy.max_key_lifetime_days} days from now.",
            )
        return None

    # -- verification -------------------------------------------------------------------

    async def verify_key(
        self, admin: Admin, key_id: str, code: str | None, passkey_assertion: str | None = None
    ) -> ApiKey | InvalidInput | VerificationFailed:
        """Check ``code`` (or ``passkey_assertion``, :meth:`Passkeys.verify`) for the admin's
        pending key; ACTIVE on success.

        Every failure, whatever its cause, returns the same :class:`VerificationFailed`
        after the same minimum time. A failure on the creator's pending key counts one
        attempt; the last allowed failure locks the key.
        """
        started = self.monotonic()
        if (code is None) == (passkey_assertion is None):
            metrics.verification("invalid")
            return InvalidInput("code", "Give either the emailed code or a passkey assertion.")
        if passkey_assertion is not None:
            if (problem := refuse_control_characters(keyId=key_id)) is not None:
                metrics.verification("invalid")
                return problem
            return await self.passkeys.verify(admin, key_id, passkey_assertion, started)
        assert code is not None
        if (problem := refuse_control_characters(keyId=key_id, code=code)) is not None:
            metrics.verification("invalid")
            return problem
        if not codes.CODE_PATTERN.match(code):
            metrics.verification("invalid")
            return InvalidInput("code", "The code is six digits, 0-9.")
        now = self.clock.now()
        parsed = parse_key_id(key_id)
        if parsed is not None and (rotation := await self.rotations.pending_for(admin, parsed)) is not None:
            return await self.rotations.verify(rotation, code, started)
        key = await fastpath.get(ApiKey, id=parsed, created_by_id=admin.id) if parsed else None
        if key is None:
            codes.code_matches(self._secret, _ABSENT_KEY, 0, code)
            metrics.verification("failed")
            return await self._failed(started)
        matched = codes.code_matches(self._secret, key.id, key.code_generation, code) and key.release_proof.takes_code
        if matched:
            verified = await self._activate(key, now)
            if verified is not None:
                metrics.verification("verified")
                return verified
        await self._count_failed_attempt(key, now)
        metrics.verification("failed")
        return await self._failed(started)

    async def _activate(self, key: ApiKey, now: datetime, proof: Q | None = None) -> ApiKey | None:
        """Verify ``key`` if it is still pending and ``proof`` still holds (by default: the
        code of ``key``'s generation, still within its lifetime); any passkey challenge
        outstanding is consumed with it."""
        if proof is None:
            proof = Q(code_generation=key.code_generation, code_issued_at__gt=self.policy.codes_issued_after(now))
        async with in_transaction():
            won = await ApiKey.filter(
                _pending(now),
                proof,
                id=key.id,
                attempts_used__lt=self.policy.max_attempts,
            ).update(verified_at=now, passkey_nonce=None)
            if not won:
                return None
            await _event(key.id, EventType.VERIFIED, now)
            if key.kind is KeyKind.PARTNER:
                await ApiKey.filter(id=key.id).update(partner_otp_issued_at=now)
                institution = await Institution.get(id=key.institution_id)
                await outbox.queue_partner_otp(
                    key,
                    institution_name=institution.name,
                    otp_expires_at=self.policy.partner_password_expires_at(now),
                    now=now,
                )
                await _event(key.id, EventType.PARTNER_OTP_SENT, now, f"to {_mask_email(key.partner_email or '')}")
            fresh = await ApiKey.get(id=key.id)
        if key.kind is KeyKind.PARTNER:
            self._on_mail_queued()
        return fresh

    async def _count_failed_attempt(self, key: ApiKey, now: datetime) -> None:
        limit = self.policy.max_attempts
        key_id = key.id
        alerted = False
        async with in_transaction():
            if key.created_by_id is not None:  # the admin's lock first, as everywhere (no deadlock)
                await budget.hold(key.created_by_id)
            counted = await ApiKey.filter(_pending(now), id=key_id, attempts_used__lt=limit).update(
                attempts_used=F("attempts_used") + 1
            )
            if not counted:
                await self._record_window_lock(key_id, now)
                return
            used = await ApiKey.filter(id=key_id).values_list("attempts_used", flat=True)
            await _event(key_id, EventType.VERIFICATION_FAILED, now, f"attempt {used[0]} of {limit}")
            locked = await ApiKey.filter(
                id=key_id, attempts_used__gte=limit, verified_at=None, locked_at=None, revoked_at=None
            ).update(locked_at=now, lock_reason=LockReason.ATTEMPTS)
            if locked:
                await _event(key_id, EventType.LOCKED, now, LockReason.ATTEMPTS.value)
                metrics.lock(LockReason.ATTEMPTS.value)
                if key.created_by_id is not None:
                    alerted = await self._record_attempts_lock(key.created_by_id, now)
        if alerted:
            self._on_mail_queued()

    async def _record_attempts_lock(self, admin_id: int, now: datetime) -> bool:
        """Count a lock against the admin's budget. The lock that brings the admin to the
        limit suspends their createKey, and mails every admin of the institution; under the
        admin's row lock exactly one transaction sees the count reach the limit. Whether mail
        was queued."""
        await self.budget.record(admin_id, BudgetItem.KEY_LOCKED, now)
        state = await self.budget.state(admin_id, self.budget.keys_locked, now)
        if state is None or state.count != state.rule.limit:
            return False
        admin = await Admin.get(id=admin_id)
        institution = await Institution.get(id=admin.institution_id)
        recipients = await Admin.filter(institution_id=admin.institution_id).order_by("id").values_list("email", flat=True)
        for recipient in recipients:
            await outbox.queue_creation_suspended(
                recipient,  # type: ignore[arg-type]  # flat values_list
                admin_email=admin.email,
                admin_name=admin.name,
                institution_name=institution.name,
                locked_keys=state.count,
                suspended_until=_second_up(state.reopens_at),
                expires_at=now + ALERT_TTL,
                now=now,
            )
        metrics.creation_suspended()
        log.warning(
            "admin %d: key creation suspended until %s after %d keys locked by wrong codes in 24 hours; "
            "%d admin(s) of the institution mailed",
            admin_id,
            _second_up(state.reopens_at).isoformat(),
            state.count,
            len(recipients),
        )
        return True

    async def _record_window_lock(self, key_id: uuid.UUID, now: datetime) -> bool:
        """Record that a key's window has closed (its status already reads LOCKED)."""
        key = await ApiKey.get_or_none(
            id=key_id, verified_at=None, locked_at=None, revoked_at=None, verification_deadline__lte=now
        )
        if key is None or key.verification_deadline is None:
            return False
        deadline = key.verification_deadline
        recorded = await ApiKey.filter(id=key_id, locked_at=None, verified_at=None, revoked_at=None).update(
            locked_at=deadline, lock_reason=LockReason.WINDOW
        )
        if recorded:
            await _event(key_id, EventType.LOCKED, deadline, LockReason.WINDOW.value)
            metrics.lock(LockReason.WINDOW.value)
        return bool(recorded)

    async def record_window_locks(self, limit: int = 500) -> int:
        """Sweep: record LOCKED for keys whose window closed unobserved. Safe to run in
        several processes at once (each record is a conditional update)."""
        now = self.clock.now()
        ids = await ApiKey.filter(
            verified_at=None, locked_at=None, revoked_at=None, verification_deadline__lte=now
        ).limit(limit).values_list("id", flat=True)
        recorded = 0
        for key_id in ids:
            async with in_transaction():
                recorded += await self._record_window_lock(key_id, now)  # type: ignore[arg-type]  # flat values_list
        return recorded

    async def _failed(self, started: float) -> VerificationFailed:
        remaining = self.policy.failure_floor_ms / 1000 - (self.monotonic() - started)
        if remaining > 0:
            await self.sleep(remaining)
        return VerificationFailed()

    # -- resend -------------------------------------------------------------------------

    async def resend_code(
        self, admin: Admin, key_id: str
    ) -> ApiKey | InvalidInput | VerificationFailed | CodeEmailLimitReached:
        """Issue a new code (invalidating the previous one). Never resets attempts, never
        extends the window. Refused with :class:`CodeEmailLimitReached` when the admin's
        hourly code-email budget is spent (the key's own resend is then not used up)."""
        if (problem := refuse_control_characters(keyId=key_id)) is not None:
            metrics.resend("refused")
            return problem
        started = self.monotonic()
        now = self.clock.now()
        parsed = parse_key_id(key_id)
        if parsed is None:
            return await self._failed(started)
        if (rotation := await self.rotations.pending_for(admin, parsed)) is not None:
            return await self.rotations.resend(admin, rotation, started)
        try:
            async with in_transaction():
                await budget.hold(admin.id)
                issued = await ApiKey.filter(
                    _pending(now),
                    ~Q(release_proof=ReleaseProof.PASSKEY),  # no code is emailed for it
                    id=parsed,
                    created_by_id=admin.id,
                    resends_used__lt=self.policy.max_resends,
                ).update(
                    resends_used=F("resends_used") + 1,
                    code_generation=F("code_generation") + 1,
                    code_issued_at=now,
                )
                if issued:
                    # Only the admin's own resendable key gets this far, so the typed refusal
                    # below tells them nothing about any other key.
                    overspent = await self.budget.spend(
                        admin.id, now, (BudgetItem.CODE_EMAIL,), (self.budget.code_emails,)
                    )
                    if overspent is not None:
                        raise _Undo(self._refusal(overspent))
                    key = await ApiKey.get(id=parsed)
                    await outbox.queue_verification_code(key, code_expires_at=self._code_expiry(key), now=now)
                    await _event(
                        key.id,
                        EventType.CODE_RESENT,
                        now,
                        f"resend {key.resends_used} of {self.policy.max_resends} to {_mask_email(key.notify_email or '')}",
                    )
                else:
                    await self._record_window_lock(parsed, now)
        except _Undo as undo:
            metrics.resend("limited")
            return undo.result  # type: ignore[return-value]  # a CodeEmailLimitReached
        if not issued:
            metrics.resend("refused")
            return await self._failed(started)
        metrics.resend("sent")
        self._on_mail_queued()
        return key

    # -- reveal -------------------------------------------------------------------------

    async def reveal_key(self, admin: Admin, key_id: str) -> Credentials | InvalidInput | VerificationFailed:
        """Mint and return an institutional key's secret, once, to the admin who created it."""
        if (problem := refuse_control_characters(keyId=key_id)) is not None:
            metrics.reveal("institutional", "refused")
            return problem
        started = self.monotonic()
        now = self.clock.now()
        parsed = parse_key_id(key_id)
        secret = credentials.new_client_secret()
        if parsed is not None and (released := await self.rotations.reveal(admin, parsed)) is not None:
            return released
        if parsed is not None:
            async with in_transaction():
                won = await ApiKey.filter(
                    _not_expired(now),
                    id=parsed,
                    created_by_id=admin.id,
                    kind=KeyKind.INSTITUTIONAL,
                    verified_at__not_isnull=True,
                    revoked_at=None,
                    revealed_at=None,
                ).update(revealed_at=now, secret_hash=credentials.hash_secret(secret))
                if won:
                    await _event(parsed, EventType.REVEALED, now)
                    metrics.reveal("institutional", "revealed")
                    client_id = (await ApiKey.filter(id=parsed).values_list("client_id", flat=True))[0]
                    return Credentials(client_id=client_id, client_secret=secret)  # type: ignore[arg-type]  # flat values_list
        metrics.reveal("institutional", "refused")
        return await self._failed(started)

    async def reveal_partner_key(
        self, key_id: str, one_time_password: str
    ) -> Credentials | InvalidInput | VerificationFailed:
        """The partner's retrieval: the emailed OTP returns the credentials once. Wrong OTPs
        count; the last allowed one locks partner retrieval for the key. A control character
        in either value is refused before anything is read, and counts no attempt."""
        if (problem := refuse_control_characters(keyId=key_id, oneTimePassword=one_time_password)) is not None:
            metrics.reveal("partner", "refused")
            return problem
        started = self.monotonic()
        now = self.clock.now()
        parsed = parse_key_id(key_id)
        key = await fastpath.get(ApiKey, id=parsed, kind=KeyKind.PARTNER) if parsed else None
        matched = codes.otp_matches(self._secret, key.id if key else _ABSENT_KEY, one_time_password)
        if key is not None and key.revealed_at is not None:  # retrieved once: only a rotation's new secret is left
            released = await self.rotations.reveal_to_partner(key, one_time_password)
            if released is not None:
                return released
            key = None
        if key is None:
            metrics.reveal("partner", "refused")
            return await self._failed(started)
        secret = credentials.new_client_secret()
        limit = self.policy.max_partner_attempts
        async with in_transaction():
            if matched:
                won = await ApiKey.filter(
                    _not_expired(now),
                    id=key.id,
                    verified_at__not_isnull=True,
                    revoked_at=None,
                    revealed_at=None,
                    partner_attempts_used__lt=limit,
                    partner_otp_issued_at__gt=self.policy.partner_passwords_issued_after(now),
                ).update(revealed_at=now, secret_hash=credentials.hash_secret(secret))
                if won:
                    await _event(key.id, EventType.PARTNER_REVEALED, now)
                    metrics.reveal("partner", "revealed")
                    return Credentials(client_id=key.client_id, client_secret=secret)
            counted = await ApiKey.filter(
                id=key.id,
                verified_at__not_isnull=True,
                revealed_at=None,
                partner_attempts_used__lt=limit,
            ).update(partner_attempts_used=F("partner_attempts_used") + 1)
            if counted:
                used = (await ApiKey.filter(id=key.id).values_list("partner_attempts_used", flat=True))[0]
                detail = f"attempt {used} of {limit}" + ("; retrieval locked" if used >= limit else "")  # type: ignore[operator]
                await _event(key.id, EventType.PARTNER_REVEAL_FAILED, now, detail)
        metrics.reveal("partner", "refused")
        return await self._failed(started)

    # -- revocation ---------------------------------------------------------------------

    async def revoke_key(self, admin: Admin, key_id: str) -> ApiKey | InvalidInput | KeyNotFound:
        """Revoke a key of the admin's institution. Revoking twice changes nothing."""
        if (problem := refuse_control_characters(keyId=key_id)) is not None:
            return problem
        now = self.clock.now()
        parsed = parse_key_id(key_id)
        if parsed is None:
            return KeyNotFound()
        async with in_transaction():
            revoked = await ApiKey.filter(id=parsed, institution_id=admin.institution_id, revoked_at=None).update(
                revoked_at=now
            )
            if revoked:
                await _event(parsed, EventType.REVOKED, now, f"by admin {admin.id}")
                await rotation_service.end_open(parsed, now, "revoked")
            key = await ApiKey.get_or_none(id=parsed, institution_id=admin.institution_id)
        return key if key is not None else KeyNotFound()

    # -- derived values -----------------------------------------------------------------

    def _code_expiry(self, key: ApiKey) -> datetime:
        """:meth:`code_expires_at` of a key that has a code (every pending key does)."""
        expires = self.code_expires_at(key)
        assert expires is not None, "a pending key always has a code and a deadline"
        return expires

    def code_expires_at(self, key: ApiKey) -> datetime | None:
        """When the current code stops working (:meth:`VerificationPolicy.code_expires_at`);
        None once the key is verified, or if it never had a code (a legacy key, a key released
        by a passkey only)."""
        if key.verified_at is not None or key.code_issued_at is None or key.verification_deadline is None:
            return None
        if not key.release_proof.takes_code:  # released by a passkey only: no code was sent
            return None
        return self.policy.code_expires_at(key.code_issued_at, key.verification_deadline)

    def resends_remaining(self, key: ApiKey, now: datetime) -> int:
        """New codes this key can still be sent: none once it is no longer pending."""
        if key_status(key, now) is not KeyStatus.PENDING_VERIFICATION:
            return 0
        return self.policy.resends_remaining(key.resends_used)

    def attempts_remaining(self, key: ApiKey, now: datetime) -> int:
        """Codes this key can still be tried with: none once it is no longer pending."""
        if key_status(key, now) is not KeyStatus.PENDING_VERIFICATION:
            return 0
        return self.policy.attempts_remaining(key.attempts_used)

    def lock_reason(self, key: ApiKey, now: datetime) -> LockReason | None:
        """Why a LOCKED key locked (the window may have closed before the sweeper recorded it)."""
        if key_status(key, now) is not KeyStatus.LOCKED:
            return None
        return key.lock_reason or LockReason.WINDOW

    def partner_password_expires_at(self, key: ApiKey) -> datetime | None:
        """When the partner's one-time password stops working (null until one was sent)."""
        if key.partner_otp_issued_at is None:
            return None
        return self.policy.partner_password_expires_at(key.partner_otp_issued_at)


def _second_up(moment: datetime) -> datetime:
    """Whole seconds, rounded up: never a moment at which the request would still be refused."""
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment


def _clean_optional(value: str | None) -> str | None:
    return (value or "").strip() or None


def _mask_email(address: str) -> str:
    """``a***@example.org``: enough for an admin to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


