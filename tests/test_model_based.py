"""Model-based testing of the key lifecycle, rotations included.

Hypothesis drives the real service layer on a real (SQLite) database with random sequences of
create, verify (right, wrong, stale, another admin's), resend, reveal, partner reveal, revoke,
rotate (with and without a new expiry, refused when the key may not rotate), cancel, token
requests with every secret a key ever had (and with none of them), and clock moves (among them
jumps to just before, at and just after each deadline a key or its rotation has: the code's
expiry, the 15-minute window, the partner's password, the grace after the new secret's first
use, the maximum overlap, the key's expiry), and compares every outcome with a small reference
model of the rules. After every step it checks the invariants on what the database holds.

Token requests go through :class:`ClientAuthenticator`, the use-case of ``POST /ids/auth/login``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from tortoise import Tortoise

from keyrelease import codes, credentials, db
from keyrelease.clock import FrozenClock
from keyrelease.models import Admin, ApiKey, KeyEvent, KeyKind, KeyRotation, MessageKind, OutboxMessage
from keyrelease.policy import VerificationPolicy
from keyrelease.service.admins import create_admin
from keyrelease.service.clients import ClientAuthenticator, LastUseRecorder
from keyrelease.service.keys import KeyService
from keyrelease.service.results import Credentials, InvalidInput, VerificationFailed
from keyrelease.service.rotation import RotationPolicy, RotationStatus
from keyrelease.status import KeyStatus, key_status

SECRET = b"model-based-test-secret-0123456789abcdef"
#: The admin's budget (tests/test_budget.py) is out of this model's scope: set beyond reach.
POLICY = VerificationPolicy(
    failure_floor_ms=0,
    max_keys_per_admin_per_day=100_000,
    max_code_emails_per_admin_per_hour=100_000,
    max_locked_keys_per_admin_per_day=100_000,
)
#: Shorter than the defaults so that the clock crosses them often; grace < max overlap, so
#: either may end an overlap first.
ROTATION = RotationPolicy(grace_seconds=3600, max_overlap_seconds=7200)
ADMINS = ("ada", "bob")
OPEN_ROTATION = (RotationStatus.PENDING_VERIFICATION, RotationStatus.VERIFIED, RotationStatus.OVERLAP)
#: rotateKey's expiresAt, from now: none, two within the clock's reach, one in the past (refused).
EXPIRIES: dict[str, timedelta | None] = {
    "none": None,
    "in 2 hours": timedelta(hours=2),
    "in 3 days": timedelta(days=3),
    "in the past": timedelta(seconds=-1),
}


#: How often each kind of step happened over the whole run (printed at its end, with -s): a
#: model that never reaches a state tests nothing there.
SEEN: Counter[str] = Counter()


def seen(label: str) -> None:
    SEEN[label] += 1
    event(label)


def other(admin: str) -> str:
    return "bob" if admin == "ada" else "ada"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@dataclass
class ModelRotation:
    """What the rules say a rotation's state is."""

    id: str
    requester: str
    started: datetime
    expires_at: datetime | None
    generation: int = 0
    issued: datetime | None = None
    attempts: int = 0
    resends: int = 0
    verified: datetime | None = None
    locked: bool = False  # by wrong codes (a closed window is read from the clock)
    cancelled: bool = False
    otp_issued: datetime | None = None
    partner_attempts: int = 0
    released: datetime | None = None
    new_secret: str | None = None
    first_used: datetime | None = None

    @property
    def deadline(self) -> datetime:
        return self.started + POLICY.verification_window

    def pending(self, now: datetime) -> bool:
        return self.verified is None and not self.locked and not self.cancelled and now < self.deadline

    def awaiting_code(self) -> bool:
        """Verify and resend act on this rotation rather than on the key."""
        return self.verified is None and not self.locked and not self.cancelled

    def retires_at(self) -> datetime | None:
        """When the old secret stops: the grace after the first use, or the maximum overlap."""
        if self.released is None:
            return None
        latest = self.released + timedelta(seconds=ROTATION.max_overlap_seconds)
        if self.first_used is None:
            return latest
        return min(latest, self.first_used + timedelta(seconds=ROTATION.grace_seconds))

    def status(self, now: datetime) -> RotationStatus:
        if self.cancelled:
            return RotationStatus.CANCELLED
        if self.released is not None:
            retires = self.retires_at()
            assert retires is not None
            return RotationStatus.COMPLETED if now >= retires else RotationStatus.OVERLAP
        if self.verified is not None:
            return RotationStatus.VERIFIED
        if self.locked or now >= self.deadline:
            return RotationStatus.LOCKED
        return RotationStatus.PENDING_VERIFICATION


@dataclass
class ModelKey:
    """What the rules say a key's state is."""

    id: str
    kind: KeyKind
    creator: str
    created: datetime
    client_id: str = ""
    generation: int = 0
    issued: datetime | None = None
    attempts: int = 0
    resends: int = 0
    verified: datetime | None = None
    locked: bool = False
    revoked: bool = False
    revealed: bool = False
    otp_issued: datetime | None = None
    partner_attempts: int = 0
    secrets_returned: int = 0
    expires_at: datetime | None = None
    #: Every secret the key was given, oldest first (the first reveal, then each rotation's).
    secrets: list[str] = field(default_factory=list)
    rotations: list[ModelRotation] = field(default_factory=list)
    history: list[KeyStatus] = field(default_factory=list)

    @property
    def deadline(self) -> datetime:
        return self.created + POLICY.verification_window

    def pending(self, now: datetime) -> bool:
        return self.verified is None and not self.locked and not self.revoked and now < self.deadline

    def status(self, now: datetime) -> KeyStatus:
        if self.revoked:
            return KeyStatus.REVOKED
        if self.verified is None:
            return KeyStatus.LOCKED if self.locked or now >= self.deadline else KeyStatus.PENDING_VERIFICATION
        if self.expires_at is not None and now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    def active(self, now: datetime) -> bool:
        return self.status(now) is KeyStatus.ACTIVE

    @property
    def rotation(self) -> ModelRotation | None:
        """The latest rotation (only the latest can be open)."""
        return self.rotations[-1] if self.rotations else None

    def open_rotation(self, now: datetime) -> ModelRotation | None:
        rotation = self.rotation
        return rotation if rotation is not None and rotation.status(now) in OPEN_ROTATION else None

    def released_rotation(self) -> ModelRotation | None:
        released = [r for r in self.rotations if r.released is not None]
        return released[-1] if released else None

    def live_secrets(self, now: datetime) -> set[str]:
        """The secrets that authenticate now: the latest, and during an overlap the one before."""
        if not self.secrets or not self.active(now):
            return set()
        live = {self.secrets[-1]}
        latest = self.released_rotation()
        if latest is not None and latest.status(now) is RotationStatus.OVERLAP:
            live.add(self.secrets[-2])
        return live


#: What :meth:`KeyLifecycle._release_now` does right after a rotation's release.
AFTER_RELEASE = st.sampled_from(["nothing", "use the new secret", "wait out the maximum overlap"])


class KeyLifecycle(RuleBasedStateMachine):
    template: Path  # set by the test

    keys = Bundle("keys")
    #: Keys released in one step (:meth:`released`): the ones a rotation can start from.
    released_keys = Bundle("released_keys")
    ANY_KEY = st.one_of(keys, released_keys)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        shutil.copy(self.template, self.dir / "db.sqlite3")
        self.clock = FrozenClock()
        self.service = KeyService(
            server_secret=SECRET, policy=POLICY, clock=self.clock, region="test", rotation_policy=ROTATION
        )
        self.clients = ClientAuthenticator(
            clock=self.clock, last_use=LastUseRecorder(60), rotations=self.service.rotations
        )
        self.model: dict[str, ModelKey] = {}
        self.admins: dict[str, Admin] = {}
        #: (rotation id, "overlap" or "retired"): what :meth:`_count_reached` counted already.
        self.reached: set[tuple[str, str]] = set()
        self.run(Tortoise.init(config=db.tortoise_config(f"sqlite://{self.dir / 'db.sqlite3'}"), _enable_global_fallback=True))
        for name in ADMINS:
            self.admins[name] = self.run(create_admin(self.clock, institution="Model U", email=f"{name}@model.example")).admin

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(Tortoise.close_connections())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # -- rules: a key's own release ---------------------------------------------------------

    @rule(target=keys, creator=st.sampled_from(ADMINS), kind=st.sampled_from(list(KeyKind)))
    def create(self, creator: str, kind: KeyKind) -> str:
        partner = {"partner_email": "p@partner.example"} if kind is KeyKind.PARTNER else {}
        pending = sum(1 for k in self.model.values() if k.creator == creator and k.pending(self.now))
        result = self.run(self.service.create_key(self.admins[creator], name="model", kind=kind, **partner))
        if pending >= POLICY.max_pending_keys_per_admin:
            assert not isinstance(result, ApiKey)
            return "00000000-0000-0000-0000-000000000000"
        assert isinstance(result, ApiKey), result
        key = ModelKey(
            id=str(result.id), kind=kind, creator=creator, created=self.now, issued=self.now, client_id=result.client_id
        )
        self.model[key.id] = key
        return key.id

    @rule(target=released_keys, creator=st.sampled_from(ADMINS), kind=st.sampled_from(list(KeyKind)))
    def released(self, creator: str, kind: KeyKind) -> str:
        """A key created, verified and released in one step (so that rotations come soon)."""
        key_id = self.create(creator, kind)
        if key_id in self.model:
            self._verify(key_id, "right")
            if kind is KeyKind.PARTNER:
                self._partner_reveal(key_id, "right")
            else:
                self._reveal(key_id, creator)
        return key_id

    @rule(key_id=ANY_KEY, guesses=st.lists(st.sampled_from(["wrong", "wrong", "stale", "other admin", "right"]), min_size=1, max_size=7))
    def verify(self, key_id: str, guesses: list[str]) -> None:
        for guess in guesses:
            self._verify(key_id, guess)

    def _verify(self, key_id: str, guess: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            result = self.run(self.service.verify_key(self.admins["ada"], key_id, "123456"))
            assert isinstance(result, VerificationFailed)
            return
        rotation = key.rotation
        if rotation is not None and rotation.awaiting_code():
            self._verify_rotation(key, rotation, guess)
            return
        admin = key.creator if guess != "other admin" else other(key.creator)
        generation = key.generation - 1 if guess == "stale" and key.generation > 0 else key.generation
        code = codes.verification_code(SECRET, uuid.UUID(key_id), generation)
        if guess == "wrong":
            code = wrong(code)
        right = guess in ("right", "other admin") or (guess == "stale" and generation == key.generation)
        result = self.run(self.service.verify_key(self.admins[admin], key_id, code))

        if admin != key.creator or not key.pending(self.now):
            assert isinstance(result, VerificationFailed)
            return
        fresh = key.issued is not None and self.now < key.issued + POLICY.code_ttl
        if right and fresh:
            assert isinstance(result, ApiKey) and key_status(result, self.now) is KeyStatus.ACTIVE
            key.verified = self.now
            if key.kind is KeyKind.PARTNER:
                key.otp_issued = self.now
        else:
            assert isinstance(result, VerificationFailed)
            key.attempts += 1
            key.locked = key.attempts >= POLICY.max_attempts

    def _verify_rotation(self, key: ModelKey, rotation: ModelRotation, guess: str) -> None:
        """verifyKey with the key's id acts on its rotation, under the key's own rules; the
        code comes from the rotation's series, and only the admin who rotated may verify."""
        admin = rotation.requester if guess != "other admin" else other(rotation.requester)
        generation = rotation.generation - 1 if guess == "stale" and rotation.generation > 0 else rotation.generation
        code = codes.verification_code(SECRET, uuid.UUID(rotation.id), generation)
        if guess == "wrong":
            code = wrong(code)
        right = guess in ("right", "other admin") or (guess == "stale" and generation == rotation.generation)
        result = self.run(self.service.verify_key(self.admins[admin], key.id, code))

        if admin != rotation.requester or not key.active(self.now) or not rotation.pending(self.now):
            assert isinstance(result, VerificationFailed), result
            return
        fresh = rotation.issued is not None and self.now < rotation.issued + POLICY.code_ttl
        if right and fresh:
            assert isinstance(result, ApiKey), result
            assert key_status(result, self.now) is KeyStatus.ACTIVE
            rotation.verified = self.now
            seen(f"rotation verified ({key.kind.value})")
            if key.kind is KeyKind.PARTNER:
                rotation.otp_issued = self.now
        else:
            assert isinstance(result, VerificationFailed), result
            rotation.attempts += 1
            rotation.locked = rotation.attempts >= POLICY.max_attempts
            seen("rotation: wrong or late code" + (", locked" if rotation.locked else ""))

    @rule(key_id=ANY_KEY, by_owner=st.lists(st.booleans(), min_size=1, max_size=5))
    def resend(self, key_id: str, by_owner: list[bool]) -> None:
        for each in by_owner:
            self._resend(key_id, each)

    def _resend(self, key_id: str, by_owner: bool) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        rotation = key.rotation
        if rotation is not None and rotation.awaiting_code():
            admin = rotation.requester if by_owner else other(rotation.requester)
            result = self.run(self.service.resend_code(self.admins[admin], key_id))
            if by_owner and key.active(self.now) and rotation.pending(self.now) and rotation.resends < POLICY.max_resends:
                assert isinstance(result, ApiKey), result
                rotation.resends += 1
                rotation.generation += 1
                rotation.issued = self.now
            else:
                assert isinstance(result, VerificationFailed), result
            return
        admin = key.creator if by_owner else other(key.creator)
        result = self.run(self.service.resend_code(self.admins[admin], key_id))
        if by_owner and key.pending(self.now) and key.resends < POLICY.max_resends:
            assert isinstance(result, ApiKey)
            key.resends += 1
            key.generation += 1
            key.issued = self.now
        else:
            assert isinstance(result, VerificationFailed)

    @rule(key_id=ANY_KEY, admin=st.sampled_from(ADMINS))
    def reveal(self, key_id: str, admin: str) -> None:
        self._reveal(key_id, admin)

    def _reveal(self, key_id: str, admin: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        result = self.run(self.service.reveal_key(self.admins[admin], key_id))
        rotation = key.rotation
        new_secret = (
            rotation is not None
            and key.kind is KeyKind.INSTITUTIONAL
            and rotation.requester == admin
            and rotation.status(self.now) is RotationStatus.VERIFIED
            and key.active(self.now)
        )
        first_secret = (
            admin == key.creator
            and key.kind is KeyKind.INSTITUTIONAL
            and key.verified is not None
            and not key.revoked
            and not key.revealed
        )
        if new_secret:
            assert rotation is not None and isinstance(result, Credentials), result
            self._release(key, rotation, result)
        elif first_secret:
            assert isinstance(result, Credentials), result
            assert result.client_id == key.client_id
            key.revealed = True
            key.secrets_returned += 1
            key.secrets.append(result.client_secret)
        else:
            assert isinstance(result, VerificationFailed), result

    def _release(self, key: ModelKey, rotation: ModelRotation, credentials_: Credentials) -> None:
        assert credentials_.client_id == key.client_id  # the same client ID
        assert credentials_.client_secret not in key.secrets
        seen(f"rotation released ({key.kind.value}, {'new expiry' if rotation.expires_at else 'same expiry'})")
        rotation.released = self.now
        rotation.new_secret = credentials_.client_secret
        self.reached.add((rotation.id, "overlap"))
        seen("rotation reached the overlap")
        key.secrets.append(credentials_.client_secret)
        if rotation.expires_at is not None:
            key.expires_at = rotation.expires_at

    @rule(key_id=ANY_KEY, tries=st.lists(st.sampled_from(["right", "wrong", "the key's own"]), min_size=1, max_size=7))
    def partner_reveal(self, key_id: str, tries: list[str]) -> None:
        for each in tries:
            self._partner_reveal(key_id, each)

    def _partner_reveal(self, key_id: str, attempt: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        rotation = key.rotation if key.revealed else None
        series = rotation.id if rotation is not None and attempt == "right" else key_id
        otp = "AAAA-BBBB-CCCC-DDDD" if attempt == "wrong" else codes.partner_otp(SECRET, uuid.UUID(series))
        result = self.run(self.service.reveal_partner_key(key_id, otp))
        if rotation is not None:
            self._partner_reveal_rotation(key, rotation, attempt == "right", result)
            return
        right = attempt != "wrong"
        open_for_partner = (
            key.kind is KeyKind.PARTNER
            and key.verified is not None
            and not key.revoked
            and not key.revealed
            and key.partner_attempts < POLICY.max_partner_attempts
        )
        in_time = key.otp_issued is not None and self.now < key.otp_issued + POLICY.partner_otp_ttl
        if right and open_for_partner and in_time:
            assert isinstance(result, Credentials)
            key.revealed = True
            key.secrets_returned += 1
            key.secrets.append(result.client_secret)
            return
        assert isinstance(result, VerificationFailed)
        if key.kind is KeyKind.PARTNER and key.verified is not None and not key.revealed and key.partner_attempts < POLICY.max_partner_attempts:
            key.partner_attempts += 1

    def _partner_reveal_rotation(self, key: ModelKey, rotation: ModelRotation, right: bool, result: object) -> None:
        """The partner's one retrieval of a rotation's new secret, with the rotation's own
        one-time password (the key's first one, or a wrong one, counts a failure)."""
        waiting = rotation.status(self.now) is RotationStatus.VERIFIED and key.kind is KeyKind.PARTNER
        in_time = rotation.otp_issued is not None and self.now < rotation.otp_issued + POLICY.partner_otp_ttl
        allowed = waiting and rotation.partner_attempts < POLICY.max_partner_attempts and key.active(self.now)
        if right and allowed and in_time:
            assert isinstance(result, Credentials), result
            self._release(key, rotation, result)
            return
        assert isinstance(result, VerificationFailed), result
        if waiting and rotation.partner_attempts < POLICY.max_partner_attempts:
            rotation.partner_attempts += 1

    @rule(key_id=ANY_KEY)  # not consumed: a revoked key and its rotation stay reachable
    def revoke(self, key_id: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        self.run(self.service.revoke_key(self.admins["ada"], key_id))
        rotation = key.rotation
        if not key.revoked and rotation is not None and rotation.status(self.now) in (RotationStatus.PENDING_VERIFICATION, RotationStatus.VERIFIED):
            seen(f"rotation ended by revocation ({rotation.status(self.now).value})")
            rotation.cancelled = True  # revoking a key ends its open rotation
        key.revoked = True

    # -- rules: rotation --------------------------------------------------------------------

    @rule(key_id=released_keys, admin=st.sampled_from(ADMINS), expiry=st.sampled_from(list(EXPIRIES)))
    def rotate(self, key_id: str, admin: str, expiry: str) -> None:
        key = self.model.get(key_id)
        offset = EXPIRIES[expiry]
        expires_at = None if offset is None else self.now + offset
        result = self.run(self.service.rotations.rotate_key(self.admins[admin], key_id, expires_at))
        if key is None:
            assert not isinstance(result, ApiKey), result
            return
        allowed = (
            (offset is None or offset > timedelta(0))
            and key.active(self.now)
            and bool(key.secrets)
            and key.open_rotation(self.now) is None
        )
        if not allowed:
            seen("rotateKey refused")
            assert isinstance(result, InvalidInput), result
            return
        seen("rotation started")
        assert isinstance(result, ApiKey), result
        assert key_status(result, self.now) is KeyStatus.ACTIVE
        row = self.run(KeyRotation.get(open_key_id=key_id))
        key.rotations.append(
            ModelRotation(id=str(row.id), requester=admin, started=self.now, expires_at=expires_at, issued=self.now)
        )

    @rule(key_id=released_keys, admin=st.sampled_from(ADMINS))
    def cancel(self, key_id: str, admin: str) -> None:
        """Any admin of the institution cancels a rotation before its release."""
        key = self.model.get(key_id)
        if key is None:
            return
        result = self.run(self.service.rotations.cancel_rotation(self.admins[admin], key_id))
        rotation = key.rotation
        if rotation is not None and rotation.status(self.now) in (RotationStatus.PENDING_VERIFICATION, RotationStatus.VERIFIED):
            assert isinstance(result, ApiKey), result
            seen(f"rotation cancelled ({rotation.status(self.now).value})")
            rotation.cancelled = True
        else:
            assert isinstance(result, InvalidInput), result

    @rule(key_id=released_keys, which=st.lists(st.sampled_from(["latest", "previous", "earlier", "wrong", "unknown client"]), min_size=1, max_size=4))
    def token(self, key_id: str, which: list[str]) -> None:
        """Token requests (ClientAuthenticator, as POST /ids/auth/login) with the key's secrets."""
        key = self.model.get(key_id)
        if key is None:
            return
        for each in which:
            client_id = key.client_id if each != "unknown client" else f"test#{uuid.uuid4()}"
            by_age = {"latest": -1, "previous": -2, "earlier": -3}
            if each in by_age and len(key.secrets) >= -by_age[each]:
                secret = key.secrets[by_age[each]]
            else:
                secret = credentials.new_client_secret()
            self._authenticate(key, client_id, secret)

    def _authenticate(self, key: ModelKey, client_id: str, secret: str) -> bool:
        live = client_id == key.client_id and secret in key.live_secrets(self.now)
        client = self.run(self.clients.authenticate(client_id, [secret]))
        assert (client is not None) == live, (client_id, secret in key.secrets, key)
        if key.rotations and secret in key.secrets:
            age = len(key.secrets) - key.secrets.index(secret)
            seen(f"token: secret {age} from the latest {'accepted' if live else 'refused'}")
        latest = key.released_rotation()
        in_overlap = latest is not None and latest.status(self.now) is RotationStatus.OVERLAP
        if live and in_overlap and secret == latest.new_secret and latest.first_used is None:  # type: ignore[union-attr]
            latest.first_used = self.now  # type: ignore[union-attr]
        return client is not None

    def _awaiting_release(self) -> list[ModelKey]:
        return [
            key
            for key in self.model.values()
            if key.rotation is not None and key.rotation.pending(self.now) and key.active(self.now)
        ]

    @precondition(lambda self: bool(self._awaiting_release()))
    @rule(pick=st.integers(min_value=0, max_value=7), then=AFTER_RELEASE)
    def verify_and_release_rotation(self, pick: int, then: str) -> None:
        """The requester verifies a pending rotation with the right code at once, and the new
        secret is released right after (revealed, or retrieved by the partner), then maybe used
        or left unused past the maximum overlap: without it random guesses seldom reach the
        overlap, the grace and the maximum overlap."""
        waiting = self._awaiting_release()
        self._release_now(waiting[pick % len(waiting)], then)

    @rule(key_id=released_keys, admin=st.sampled_from(ADMINS), expiry=st.sampled_from(["none", "in 3 days"]), then=AFTER_RELEASE)
    def rotated(self, key_id: str, admin: str, expiry: str, then: str) -> None:
        """rotateKey, then at once the right code, the release, and what ``then`` says."""
        self.rotate(key_id, admin, expiry)
        key = self.model.get(key_id)
        if key is not None and key in self._awaiting_release():
            self._release_now(key, then)

    def _release_now(self, key: ModelKey, then: str) -> None:
        rotation = key.rotation
        assert rotation is not None
        self._verify_rotation(key, rotation, "right")
        if rotation.verified is None:
            return  # the code had expired: a failed attempt, as the model says
        if key.kind is KeyKind.PARTNER:
            self._partner_reveal(key.id, "right")
        else:
            self._reveal(key.id, rotation.requester)
        if rotation.released is None:
            return
        if then == "use the new secret":
            self._authenticate(key, key.client_id, rotation.new_secret)  # type: ignore[arg-type]
        elif then == "wait out the maximum overlap":
            self.clock.advance(ROTATION.max_overlap_seconds)

    # -- rules: the clock and the periodic passes ------------------------------------------

    @rule(seconds=st.sampled_from([301, 1, 60, 299, 450, 899, 901, 3600, 72 * 3600, 72 * 3600 + 1]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def let_the_current_code_expire(self) -> None:
        self.clock.advance(POLICY.code_ttl_seconds)

    @rule(
        key_id=ANY_KEY,
        moment=st.sampled_from(["code expiry", "window", "partner password", "grace", "maximum overlap", "key expiry"]),
        offset=st.sampled_from([-1, 0, 1]),
    )
    def advance_to(self, key_id: str, moment: str, offset: int) -> None:
        """Move the clock to a second before, at or after one of the key's deadlines."""
        key = self.model.get(key_id)
        rotation = key.rotation if key is not None else None
        if key is None or rotation is None and moment != "key expiry":
            return
        target: datetime | None = None
        if moment == "key expiry":
            target = key.expires_at
        elif rotation is None:
            return
        elif moment == "code expiry" and rotation.issued is not None:
            target = min(rotation.issued + POLICY.code_ttl, rotation.deadline)
        elif moment == "window":
            target = rotation.deadline
        elif moment == "partner password" and rotation.otp_issued is not None:
            target = rotation.otp_issued + POLICY.partner_otp_ttl
        elif moment == "grace" and rotation.first_used is not None:
            target = rotation.first_used + timedelta(seconds=ROTATION.grace_seconds)
        elif moment == "maximum overlap" and rotation.released is not None:
            target = rotation.released + timedelta(seconds=ROTATION.max_overlap_seconds)
        if target is not None and target + timedelta(seconds=offset) > self.now:
            self.clock.advance((target + timedelta(seconds=offset) - self.now).total_seconds())

    @rule()
    def sweep(self) -> None:
        self.run(self.service.record_window_locks())
        self.run(self.service.rotations.finish_due())

    # -- invariants, on what the database holds ---------------------------------------------

    @invariant()
    def database_agrees_with_the_model(self) -> None:
        rows = {str(k.id): k for k in self.run(ApiKey.all())}
        events = self.run(KeyEvent.all().values_list("key_id", "type", "at"))
        by_key: dict[str, Counter] = {}
        verified_at: dict[str, datetime] = {}
        for key_id, type_, at in events:
            by_key.setdefault(str(key_id), Counter())[type_] += 1
            if type_ == "VERIFIED":
                verified_at[str(key_id)] = at
        mail = self.run(OutboxMessage.filter(kind__in=[MessageKind.PARTNER_OTP, MessageKind.VERIFICATION_CODE]).values_list("key_id", "kind", "recipient", "payload"))
        partner_mail = Counter(str(k) for k, kind, _, _ in mail if kind == MessageKind.PARTNER_OTP)
        code_mail = Counter((str(k), p.get("rotation_id"), to) for k, kind, to, p in mail if kind == MessageKind.VERIFICATION_CODE)
        self._count_reached()
        rotations: dict[str, list[KeyRotation]] = {}
        for row in self.run(KeyRotation.all().order_by("started_at")):
            rotations.setdefault(str(row.key_id), []).append(row)
        assert set(rows) == set(self.model)
        for key_id, key in self.model.items():
            row, counts = rows[key_id], by_key.get(key_id, Counter())
            status = key_status(row, self.now)
            assert status is key.status(self.now), (key_id, status, key)
            assert row.attempts_used == key.attempts <= POLICY.max_attempts
            assert row.resends_used == key.resends <= POLICY.max_resends
            assert row.partner_attempts_used == key.partner_attempts <= POLICY.max_partner_attempts
            assert key.secrets_returned <= 1
            assert (row.revealed_at is not None) == key.revealed
            assert row.expires_at == key.expires_at
            if status is KeyStatus.ACTIVE:
                assert key_id in verified_at and verified_at[key_id] < row.verification_deadline
            if key.history and key.history[-1] in (KeyStatus.LOCKED, KeyStatus.REVOKED, KeyStatus.EXPIRED):
                assert status is not KeyStatus.ACTIVE
            key.history.append(status)
            assert counts["VERIFIED"] == (1 if key.verified else 0)
            assert counts["REVEALED"] + counts["PARTNER_REVEALED"] == (1 if key.revealed else 0)
            assert counts["LOCKED"] <= 1 and counts["REVOKED"] == (1 if key.revoked else 0)
            assert code_mail[(key_id, None, f"{key.creator}@model.example")] == 1 + key.resends
            self._rotations_agree(key, row, rotations.get(key_id, []), counts, partner_mail[key_id], code_mail)

    def _count_reached(self) -> None:
        """Count, once per rotation, the overlap reached and how the old secret retired."""
        for key in self.model.values():
            for rotation in key.rotations:
                status = rotation.status(self.now)
                if status is RotationStatus.OVERLAP and (rotation.id, "overlap") not in self.reached:
                    self.reached.add((rotation.id, "overlap"))
                    seen("rotation reached the overlap")
                if status is RotationStatus.COMPLETED and (rotation.id, "retired") not in self.reached:
                    self.reached.add((rotation.id, "retired"))
                    assert rotation.released is not None
                    by_grace = rotation.retires_at() != rotation.released + timedelta(seconds=ROTATION.max_overlap_seconds)
                    seen("old secret retired by the " + ("grace" if by_grace else "maximum overlap"))

    def _rotations_agree(
        self, key: ModelKey, row: ApiKey, rows: list[KeyRotation], counts: Counter, partner_mail: int, code_mail: Counter
    ) -> None:
        now = self.now
        assert len(rows) == len(key.rotations), (rows, key.rotations)
        assert sum(r.open_key_id is not None for r in rows) <= 1  # at most one open rotation
        statuses = [self.service.rotations.status(r, now) for r in rows]
        assert sum(s in OPEN_ROTATION for s in statuses) <= 1
        for stored, status, rotation in zip(rows, statuses, key.rotations, strict=True):
            assert str(stored.id) == rotation.id
            assert status is rotation.status(now), (status, rotation)
            assert stored.requested_by_id == self.admins[rotation.requester].id
            assert stored.attempts_used == rotation.attempts <= POLICY.max_attempts
            assert stored.resends_used == rotation.resends == stored.code_generation <= POLICY.max_resends
            assert stored.partner_attempts_used == rotation.partner_attempts <= POLICY.max_partner_attempts
            assert stored.verified_at == rotation.verified and stored.revealed_at == rotation.released
            assert stored.expires_at == rotation.expires_at
            assert (stored.cancelled_at is not None) == rotation.cancelled
            new_hash = credentials.hash_secret(rotation.new_secret) if rotation.new_secret else None
            assert stored.new_secret_hash == new_hash  # minted at the release, never before
            # The first use is the new secret's first success during the overlap; after the
            # maximum overlap, before the periodic pass, a use may still be recorded (it moves
            # nothing: the maximum overlap already retired the old secret).
            if rotation.first_used is not None or status is not RotationStatus.COMPLETED:
                assert stored.new_secret_first_used_at == rotation.first_used
            if stored.old_secret_retired_at is not None:
                assert status is RotationStatus.COMPLETED
                assert stored.old_secret_retired_at == self.service.rotations.policy.old_secret_retires_at(
                    stored.revealed_at, stored.new_secret_first_used_at
                )
            assert code_mail[(key.id, rotation.id, f"{rotation.requester}@model.example")] == 1 + rotation.resends
        # The key's stored secret is the old one until the periodic pass finishes the overlap.
        latest = key.released_rotation()
        if latest is not None:
            finished = rows[key.rotations.index(latest)].old_secret_retired_at is not None
            assert row.secret_hash == credentials.hash_secret(key.secrets[-1 if finished else -2])
        elif key.secrets:
            assert row.secret_hash == credentials.hash_secret(key.secrets[0])
        # Which of the key's secrets authenticate now (only those whose success changes nothing:
        # the new secret's first success is a rule of its own).
        live = key.live_secrets(now)
        assert len(live) <= 2
        if key.rotations:
            for secret in key.secrets:
                if latest is not None and secret == latest.new_secret and latest.first_used is None and secret in live:
                    continue
                assert self._authenticate(key, key.client_id, secret) == (secret in live)
        # Events and mail: every rotation's counters exactly.
        released = [r for r in key.rotations if r.released is not None]
        attempt_locks = sum(r.locked for r in key.rotations)
        locked = sum(s is RotationStatus.LOCKED for s in statuses)
        assert counts["ROTATION_STARTED"] == len(key.rotations)
        assert counts["ROTATION_VERIFIED"] == sum(r.verified is not None for r in key.rotations)
        assert counts["ROTATION_REVEALED"] == len(released)
        assert counts["ROTATION_CANCELLED"] == sum(r.cancelled for r in key.rotations)
        assert attempt_locks <= counts["ROTATION_LOCKED"] <= locked  # a closed window: recorded when seen
        assert sum(r.first_used is not None for r in released) <= counts["NEW_SECRET_FIRST_USED"] <= len(released)
        assert counts["OLD_SECRET_RETIRED"] == sum(r.old_secret_retired_at is not None for r in rows)
        assert counts["VERIFICATION_FAILED"] == key.attempts + sum(r.attempts for r in key.rotations)
        assert counts["CODE_RESENT"] == key.resends + sum(r.resends for r in key.rotations)
        assert counts["PARTNER_REVEAL_FAILED"] == key.partner_attempts + sum(r.partner_attempts for r in key.rotations)
        rotation_otps = sum(r.verified is not None for r in key.rotations)
        assert partner_mail == ((1 if key.verified else 0) + rotation_otps if key.kind is KeyKind.PARTNER else 0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_key_lifecycle_follows_the_rules(migrated_template):
    KeyLifecycle.template = migrated_template
    SEEN.clear()
    run_state_machine_as_test(
        KeyLifecycle,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    print("\nmodel-based steps seen:", dict(sorted(SEEN.items())))
