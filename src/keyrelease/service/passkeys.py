"""Passkeys (WebAuthn, via py_webauthn): an admin's registered credentials, and a key's or a
rotation's release by an assertion bound to exactly that release (issue 17).

**Registering.** Adding a passkey is itself sensitive, so it is a release that waits for
proof: :meth:`Passkeys.start_registration` opens a :class:`~keyrelease.models.PasskeyEnrollment`
proven either by an emailed six-digit code (a key's rules and the key's code machinery:
:mod:`keyrelease.codes` over the enrollment's id, the policy's lifetime, resends, attempts and
window, the admin's code-email budget, the outbox) or by an assertion of a passkey the admin
already has. :meth:`confirm_registration` checks the proof and answers the creation options
(user verification required, resident key preferred), whose random challenge is used once by
:meth:`finish_registration`. Events PASSKEY_ADDED and PASSKEY_REMOVED go to ``admin_event``.

**Releasing.** :meth:`begin_verification` stores a fresh random nonce on the pending key (or
its pending rotation) and answers request options whose challenge is
:func:`keyrelease.codes.passkey_challenge` over the key id, its kind, the partner address, its
expiry, what is released (the rotation's id and code generation, or the key's code generation)
and the nonce; ``allowCredentials`` lists the creating (for a rotation: the requesting) admin's
passkeys. :meth:`verify` recomputes the challenge from the row as it is now, so an assertion
made for another key, an earlier code generation, another rotation or an older nonce does not
check; py_webauthn checks origin, RP ID hash, the user-verification flag, the signature, and
that the signature counter moved forward. The counter is stored with a conditional update
(``WHERE sign_count < new``), and the nonce is consumed by the very conditional update that
verifies the key (``WHERE passkey_nonce = ? AND <pending>``), so an assertion works once.
Every failure is the key's: the same generic :class:`VerificationFailed` after the same floor,
counted against the same attempts by the key's (or rotation's) own conditional update.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import webauthn
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from keyrelease import codes, metrics, validation
from keyrelease.mail import outbox
from keyrelease.models import (
    KEY_NAME_MAX,
    Admin,
    AdminEvent,
    AdminEventType,
    ApiKey,
    Institution,
    KeyRotation,
    Passkey,
    PasskeyEnrollment,
    ReleaseProof,
)
from keyrelease.service import budget
from keyrelease.service import keys as key_service  # a module: keys.py imports this one too
from keyrelease.service import rotation as rotation_service
from keyrelease.service.results import CodeEmailLimitReached, InvalidInput, SignInRefused, VerificationFailed

if TYPE_CHECKING:
    from keyrelease.service.keys import BudgetRefusal, KeyService

#: What an admin without a passkey is told where a passkey is required.
NO_PASSKEY = (
    "Your institution releases keys with a passkey, and you have none yet. Add one in the console "
    "(Passkeys, then Add a passkey: you confirm with a code emailed to you), then try again."
)
#: The most passkeys one admin may have (GraphQL sizes the ``passkeys`` list by it).
MAX_PASSKEYS = 10
#: How long the browser may take over a WebAuthn ceremony (milliseconds).
CEREMONY_TIMEOUT_MS = 300_000
_WEBAUTHN_FAILURES = (WebAuthnException, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class RelyingParty:
    """The WebAuthn relying party: its ID (the host) and the one origin assertions must come
    from, both derived from ``KEYRELEASE_PUBLIC_URL``."""

    id: str
    origin: str
    name: str = "keyrelease"

    @classmethod
    def of_url(cls, public_url: str) -> RelyingParty:
        parts = urlsplit(public_url)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"not an absolute URL: {public_url!r}")
        return cls(id=parts.hostname, origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class RegistrationStarted:
    """An open passkey registration: confirm it with the emailed code (``code_expires_at``)
    or with an existing passkey (``request_options``, JSON for ``navigator.credentials.get``)."""

    enrollment_id: uuid.UUID
    code_expires_at: datetime | None
    request_options: str | None


@dataclass(frozen=True)
class CeremonyOptions:
    """Options for the browser, as JSON: creation options after a confirmed registration,
    request options for a key's release."""

    options: str


@dataclass(frozen=True)
class PasskeyNotFound:
    message: str = "No passkey of yours has this id."


def _enrollment_pending(now: datetime) -> Q:
    return Q(verified_at=None, locked_at=None, verification_deadline__gt=now)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def release_bound_to(key: ApiKey, rotation: KeyRotation | None, nonce: str) -> list[str]:
    """What a release's passkey challenge is bound to."""
    if rotation is not None:
        release = ["rotation", str(rotation.id), str(rotation.code_generation), _iso(rotation.expires_at)]
    else:
        release = ["key", str(key.code_generation)]
    return ["release", str(key.id), key.kind.value, key.partner_email or "", _iso(key.expires_at), *release, nonce]


def _new_nonce() -> str:
    return secrets.token_urlsafe(32)


class Passkeys:
    """The passkey use-cases, sharing the key service's secret, policy, clock, failure floor,
    budget and counting (so every rule and answer is the key's own)."""

    def __init__(self, keys: KeyService, relying_party: RelyingParty) -> None:
        self.keys = keys
        self.relying_party = relying_party

    # -- the admin's passkeys -----------------------------------------------------------

    async def of_admin(self, admin: Admin) -> list[Passkey]:
        return await Passkey.filter(admin_id=admin.id).order_by("created_at", "id")

    async def rename(self, admin: Admin, passkey_id: str, name: str) -> Passkey | InvalidInput | PasskeyNotFound:
        if (problem := _check_name(name)) is not None:
            return problem
        parsed = key_service.parse_key_id(passkey_id)
        renamed = await Passkey.filter(id=parsed, admin_id=admin.id).update(name=name.strip()) if parsed else 0
        if not renamed:
            return PasskeyNotFound()
        return await Passkey.get(id=parsed)

    async def remove(self, admin: Admin, passkey_id: str) -> Passkey | PasskeyNotFound:
        parsed = key_service.parse_key_id(passkey_id)
        now = self.keys.clock.now()
        async with in_transaction():
            passkey = await Passkey.get_or_none(id=parsed, admin_id=admin.id) if parsed else None
            if passkey is None or not await Passkey.filter(id=passkey.id).delete():
                return PasskeyNotFound()
            await _admin_event(admin.id, AdminEventType.PASSKEY_REMOVED, now, passkey.name)
        return passkey

    # -- registering one ----------------------------------------------------------------

    async def start_registration(
        self, admin: Admin, *, with_passkey: bool
    ) -> RegistrationStarted | InvalidInput | SignInRefused | BudgetRefusal:
        """Open a registration, proven by an emailed code or (``with_passkey``) an assertion of
        one of the admin's passkeys."""
        now = self.keys.clock.now()
        policy = self.keys.policy
        try:
            async with in_transaction():
                await budget.hold(admin.id)
                if await Admin.filter(id=admin.id, disabled_at__not_isnull=True).exists():
                    raise key_service._Undo(SignInRefused())
                owned = await self._descriptors(admin.id)
                if len(owned) >= MAX_PASSKEYS:
                    raise key_service._Undo(_too_many())
                if with_passkey and not owned:
                    raise key_service._Undo(InvalidInput("proof", "You have no passkey yet: confirm with an emailed code."))
                if not with_passkey:
                    await self.keys.spend_code_email(admin.id, now)
                enrollment = await PasskeyEnrollment.create(
                    id=uuid.uuid4(),
                    admin_id=admin.id,
                    notify_email=admin.email,
                    started_at=now,
                    verification_deadline=policy.verification_deadline(now),
                    code_sent_at=None if with_passkey else now,
                    nonce=_new_nonce() if with_passkey else None,
                )
                if not with_passkey:
                    await outbox.queue_passkey_code(enrollment, code_expires_at=self._code_expiry(enrollment), now=now)
        except key_service._Undo as undo:
            return undo.result  # type: ignore[return-value]  # one of the refusals above
        if with_passkey:
            return RegistrationStarted(enrollment.id, None, self._request_options(self._enrollment_challenge(enrollment), owned))
        self.keys._on_mail_queued()
        return RegistrationStarted(enrollment.id, self._code_expiry(enrollment), None)

    async def resend_registration_code(
        self, admin: Admin, enrollment_id: str
    ) -> RegistrationStarted | VerificationFailed | CodeEmailLimitReached:
        """A new code for an open registration proven by email: the previous one stops working;
        the attempts and the window are not reset."""
        started = self.keys.monotonic()
        now = self.keys.clock.now()
        parsed = key_service.parse_key_id(enrollment_id)
        if parsed is None:
            return await self.keys._failed(started)
        try:
            async with in_transaction():
                await budget.hold(admin.id)
                issued = await PasskeyEnrollment.filter(
                    _enrollment_pending(now),
                    id=parsed,
                    admin_id=admin.id,
                    code_sent_at__not_isnull=True,
                    resends_used__lt=self.keys.policy.max_resends,
                ).update(resends_used=F("resends_used") + 1, code_generation=F("code_generation") + 1, code_sent_at=now)
                if issued:
                    await self.keys.spend_code_email(admin.id, now)
                    enrollment = await PasskeyEnrollment.get(id=parsed)
                    await outbox.queue_passkey_code(enrollment, code_expires_at=self._code_expiry(enrollment), now=now)
        except key_service._Undo as undo:
            return undo.result  # type: ignore[return-value]  # a CodeEmailLimitReached
        if not issued:
            return await self.keys._failed(started)
        self.keys._on_mail_queued()
        return RegistrationStarted(enrollment.id, self._code_expiry(enrollment), None)

    async def confirm_registration(
        self, admin: Admin, enrollment_id: str, *, code: str | None = None, passkey_assertion: str | None = None
    ) -> CeremonyOptions | InvalidInput | VerificationFailed:
        """Check the registration's proof (the code, or an assertion); on success the creation
        options for ``navigator.credentials.create``. Failures: the generic error, counted
        against the registration's attempts; the last one locks it."""
        started = self.keys.monotonic()
        if (code is None) == (passkey_assertion is None):
            return InvalidInput("code", "Give either the emailed code or a passkey assertion.")
        if code is not None and not codes.CODE_PATTERN.match(code):
            return InvalidInput("code", "The code is six digits, 0-9.")
        now = self.keys.clock.now()
        parsed = key_service.parse_key_id(enrollment_id)
        enrollment = await PasskeyEnrollment.get_or_none(id=parsed, admin_id=admin.id) if parsed else None
        if enrollment is None:
            codes.code_matches(self.keys._secret, key_service._ABSENT_KEY, 0, code or "")
            return await self.keys._failed(started)
        challenge = bytes(32)
        async with in_transaction():
            if code is not None:
                matched = enrollment.code_sent_at is not None and codes.code_matches(
                    self.keys._secret, enrollment.id, enrollment.code_generation, code
                )
                proof = Q(code_generation=enrollment.code_generation, code_sent_at__gt=self.keys.policy.codes_issued_after(now))
            else:
                assert passkey_assertion is not None
                matched = enrollment.nonce is not None and await self._assertion_checks(
                    admin.id, self._enrollment_challenge(enrollment), passkey_assertion, now
                )
                proof = Q(nonce=enrollment.nonce)
            if matched:
                challenge = secrets.token_bytes(32)
                matched = bool(
                    await PasskeyEnrollment.filter(
                        _enrollment_pending(now), proof, id=enrollment.id, attempts_used__lt=self.keys.policy.max_attempts
                    ).update(verified_at=now, nonce=None, challenge=bytes_to_base64url(challenge))
                )
        if matched:
            return CeremonyOptions(await self._creation_options(admin, challenge))
        await self._count_failed_attempt(enrollment.id, now)
        return await self.keys._failed(started)

    async def _count_failed_attempt(self, enrollment_id: uuid.UUID, now: datetime) -> None:
        limit = self.keys.policy.max_attempts
        async with in_transaction():
            counted = await PasskeyEnrollment.filter(
                _enrollment_pending(now), id=enrollment_id, attempts_used__lt=limit
            ).update(attempts_used=F("attempts_used") + 1)
            if counted:
                await PasskeyEnrollment.filter(id=enrollment_id, attempts_used__gte=limit, verified_at=None, locked_at=None).update(
                    locked_at=now
                )

    async def finish_registration(
        self, admin: Admin, enrollment_id: str, *, name: str, credential: str
    ) -> Passkey | InvalidInput:
        """Register the browser's new credential against the confirmed registration's
        challenge, once; PASSKEY_ADDED."""
        if (problem := _check_name(name)) is not None:
            return problem
        now = self.keys.clock.now()
        parsed = key_service.parse_key_id(enrollment_id)
        enrollment = (
            await PasskeyEnrollment.get_or_none(
                id=parsed, admin_id=admin.id, verified_at__not_isnull=True, completed_at=None, verification_deadline__gt=now
            )
            if parsed
            else None
        )
        closed = InvalidInput("registrationId", "This passkey registration is not open (finished, or its time ran out): start again.")
        if enrollment is None or enrollment.challenge is None:
            return closed
        try:
            registered = webauthn.verify_registration_response(
                credential=credential,
                expected_challenge=webauthn.base64url_to_bytes(enrollment.challenge),
                expected_rp_id=self.relying_party.id,
                expected_origin=self.relying_party.origin,
                require_user_verification=True,
            )
        except _WEBAUTHN_FAILURES:
            return InvalidInput("credential", "The passkey could not be registered: the browser's answer did not check out. Try again.")
        credential_id = bytes_to_base64url(registered.credential_id)
        try:
            async with in_transaction():
                await budget.hold(admin.id)  # parallel finishes of the admin's registrations queue up for the count
                if await Passkey.filter(admin_id=admin.id).count() >= MAX_PASSKEYS:
                    raise key_service._Undo(_too_many())
                won = await PasskeyEnrollment.filter(
                    id=enrollment.id, completed_at=None, verified_at__not_isnull=True, verification_deadline__gt=now
                ).update(completed_at=now, challenge=None)
                if not won:
                    raise key_service._Undo(closed)
                if await Passkey.filter(credential_id=credential_id).exists():
                    raise key_service._Undo(InvalidInput("credential", "This passkey is already registered."))
                passkey = await Passkey.create(
                    id=uuid.uuid4(),
                    admin_id=admin.id,
                    credential_id=credential_id,
                    public_key=bytes_to_base64url(registered.credential_public_key),
                    sign_count=registered.sign_count,
                    name=name.strip(),
                    created_at=now,
                )
                await _admin_event(admin.id, AdminEventType.PASSKEY_ADDED, now, passkey.name)
        except key_service._Undo as undo:
            return undo.result  # type: ignore[return-value]  # one of the refusals above
        return passkey

    # -- releasing a key ----------------------------------------------------------------

    async def begin_verification(self, admin: Admin, key_id: str) -> CeremonyOptions | InvalidInput | VerificationFailed:
        """Request options for the admin's pending key (or its pending rotation), bound to
        that release with a fresh nonce (which replaces any earlier one)."""
        if (problem := key_service.refuse_control_characters(keyId=key_id)) is not None:
            return problem
        started = self.keys.monotonic()
        now = self.keys.clock.now()
        found = await self._release(admin, key_service.parse_key_id(key_id))
        if found is None:
            return await self.keys._failed(started)
        key, rotation = found
        proof = rotation.release_proof if rotation is not None else key.release_proof
        if not proof.takes_passkey:
            return InvalidInput("keyId", "Your institution releases keys with the emailed code only.")
        owned = await self._descriptors(admin.id)
        if not owned:
            return InvalidInput("passkey", NO_PASSKEY)
        nonce = _new_nonce()
        if rotation is not None:
            stored = await KeyRotation.filter(rotation_service.pending(now), id=rotation.id).update(passkey_nonce=nonce)
        else:
            stored = await ApiKey.filter(key_service._pending(now), id=key.id).update(passkey_nonce=nonce)
        if not stored:
            return await self.keys._failed(started)
        challenge = codes.passkey_challenge(self.keys._secret, release_bound_to(key, rotation, nonce))
        return CeremonyOptions(self._request_options(challenge, owned))

    async def verify(self, admin: Admin, key_id: str, assertion: str, started: float) -> ApiKey | VerificationFailed:
        """verifyKey with a passkey assertion (:meth:`KeyService.verify_key` calls this)."""
        now = self.keys.clock.now()
        found = await self._release(admin, key_service.parse_key_id(key_id))
        if found is None:
            metrics.verification("failed")
            return await self.keys._failed(started)
        key, rotation = found
        release = rotation if rotation is not None else key
        verified: ApiKey | None = None
        nonce = release.passkey_nonce
        if nonce is not None and release.release_proof.takes_passkey:
            challenge = codes.passkey_challenge(self.keys._secret, release_bound_to(key, rotation, nonce))
            # The counter's advance stands even if the release then loses (a parallel use of the
            # nonce, a resend meanwhile): the device did sign with it.
            if await self._assertion_checks(admin.id, challenge, assertion, now):
                if rotation is not None:
                    proof = Q(passkey_nonce=nonce, code_generation=rotation.code_generation)
                    verified = await self.keys.rotations._activate(rotation, now, proof)
                else:
                    verified = await self.keys._activate(key, now, Q(passkey_nonce=nonce, code_generation=key.code_generation))
        if verified is not None:
            metrics.verification("verified")
            return verified
        if rotation is not None:
            await self.keys.rotations._count_failed_attempt(rotation, now)
        else:
            await self.keys._count_failed_attempt(key, now)
        metrics.verification("failed")
        return await self.keys._failed(started)

    async def _release(self, admin: Admin, key_id: uuid.UUID | None) -> tuple[ApiKey, KeyRotation | None] | None:
        """The key ``admin`` may release, with its pending rotation if one waits, or None."""
        if key_id is None:
            return None
        rotation = await self.keys.rotations.pending_for(admin, key_id)
        if rotation is not None:
            return await ApiKey.get(id=rotation.key_id), rotation
        key = await ApiKey.get_or_none(id=key_id, created_by_id=admin.id)
        return (key, None) if key is not None else None

    # -- WebAuthn -----------------------------------------------------------------------

    async def _assertion_checks(self, admin_id: int, challenge: bytes, assertion: str, now: datetime) -> bool:
        """Whether ``assertion`` is one of the admin's passkeys signing
        ``challenge`` from our origin and RP ID with user verification; if so, its counter
        moves forward by a conditional update (a parallel use of the same counter loses)."""
        try:
            credential = parse_authentication_credential_json(assertion)
        except _WEBAUTHN_FAILURES:
            return False
        passkey = await Passkey.get_or_none(admin_id=admin_id, credential_id=bytes_to_base64url(credential.raw_id))
        if passkey is None:
            return False
        try:
            checked = webauthn.verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.relying_party.id,
                expected_origin=self.relying_party.origin,
                credential_public_key=webauthn.base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except _WEBAUTHN_FAILURES:
            return False
        new = checked.new_sign_count
        counter = Q(sign_count__lt=new) if new > 0 else Q(sign_count=0)
        return bool(await Passkey.filter(counter, id=passkey.id).update(sign_count=new, last_used_at=now))

    async def _descriptors(self, admin_id: int) -> list[PublicKeyCredentialDescriptor]:
        ids = await Passkey.filter(admin_id=admin_id).order_by("created_at").values_list("credential_id", flat=True)
        return [PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(i)) for i in ids]  # type: ignore[arg-type]  # flat values_list

    def _request_options(self, challenge: bytes, allowed: list[PublicKeyCredentialDescriptor]) -> str:
        return webauthn.options_to_json(
            webauthn.generate_authentication_options(
                rp_id=self.relying_party.id,
                challenge=challenge,
                timeout=CEREMONY_TIMEOUT_MS,
                allow_credentials=allowed,
                user_verification=UserVerificationRequirement.REQUIRED,
            )
        )

    async def _creation_options(self, admin: Admin, challenge: bytes) -> str:
        return webauthn.options_to_json(
            webauthn.generate_registration_options(
                rp_id=self.relying_party.id,
                rp_name=self.relying_party.name,
                user_name=admin.email,
                user_id=f"keyrelease-admin-{admin.id}".encode(),
                user_display_name=admin.name or admin.email,
                challenge=challenge,
                timeout=CEREMONY_TIMEOUT_MS,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.PREFERRED,
                    user_verification=UserVerificationRequirement.REQUIRED,
                ),
                exclude_credentials=await self._descriptors(admin.id),
            )
        )

    def _enrollment_challenge(self, enrollment: PasskeyEnrollment) -> bytes:
        return codes.passkey_challenge(self.keys._secret, ["enrollment", str(enrollment.id), enrollment.nonce or ""])

    def _code_expiry(self, enrollment: PasskeyEnrollment) -> datetime:
        assert enrollment.code_sent_at is not None
        return self.keys.policy.code_expires_at(enrollment.code_sent_at, enrollment.verification_deadline)


def _too_many() -> InvalidInput:
    return InvalidInput("proof", f"You have {MAX_PASSKEYS} passkeys, the most one admin may have: remove one first.")


def _check_name(name: str) -> InvalidInput | None:
    cleaned = name.strip()
    if validation.control_character_problem({"name": name}, {"name": "The name"}):
        return InvalidInput("name", "The name must not contain control characters.")
    if not cleaned:
        return InvalidInput("name", "Name the passkey, e.g. the device it lives on.")
    if len(cleaned) > KEY_NAME_MAX:
        return InvalidInput("name", f"The name must be at most {KEY_NAME_MAX} characters.")
    return None


async def _admin_event(admin_id: int, type_: AdminEventType, at: datetime, name: str) -> None:
    await AdminEvent.create(admin_id=admin_id, type=type_, at=at, detail=f"“{name}”"[:200])


async def set_release_proof(institution_name: str, proof: ReleaseProof) -> bool:
    """``keyrelease institution set-policy``: what releases the institution's keys and rotations
    from now on (pending ones keep the rule they started under). Whether the institution exists."""
    return bool(await Institution.filter(name=institution_name).update(release_proof=proof))
