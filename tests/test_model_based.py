"""Model-based testing of the key lifecycle.

Hypothesis drives the real service layer on a real (SQLite) database with random sequences of
create, verify (right, wrong, stale, another admin's), resend, reveal, partner reveal, revoke
and clock moves, and compares every outcome with a small reference model of the rules. After
every step it checks the invariants on what the database holds.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule, run_state_machine_as_test
from tortoise import Tortoise

from keyrelease import codes, db
from keyrelease.clock import FrozenClock
from keyrelease.models import Admin, ApiKey, KeyEvent, KeyKind, MessageKind, OutboxMessage
from keyrelease.policy import VerificationPolicy
from keyrelease.service.admins import create_admin
from keyrelease.service.keys import KeyService
from keyrelease.service.results import Credentials, VerificationFailed
from keyrelease.status import KeyStatus, key_status

SECRET = b"model-based-test-secret-0123456789abcdef"
#: The admin's budget (tests/test_budget.py) is out of this model's scope: set beyond reach.
POLICY = VerificationPolicy(
    failure_floor_ms=0,
    max_keys_per_admin_per_day=100_000,
    max_code_emails_per_admin_per_hour=100_000,
    max_locked_keys_per_admin_per_day=100_000,
)


@dataclass
class ModelKey:
    """What the rules say a key's state is."""

    id: str
    kind: KeyKind
    creator: str
    created: datetime
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
        return KeyStatus.ACTIVE


class KeyLifecycle(RuleBasedStateMachine):
    template: Path  # set by the test

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        shutil.copy(self.template, self.dir / "db.sqlite3")
        self.clock = FrozenClock()
        self.service = KeyService(server_secret=SECRET, policy=POLICY, clock=self.clock, region="test")
        self.model: dict[str, ModelKey] = {}
        self.admins: dict[str, Admin] = {}
        self.run(Tortoise.init(config=db.tortoise_config(f"sqlite://{self.dir / 'db.sqlite3'}"), _enable_global_fallback=True))
        for name in ("ada", "bob"):
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

    # -- rules ----------------------------------------------------------------------------

    @rule(target=keys, creator=st.sampled_from(["ada", "bob"]), kind=st.sampled_from(list(KeyKind)))
    def create(self, creator: str, kind: KeyKind) -> str:
        partner = {"partner_email": "p@partner.example"} if kind is KeyKind.PARTNER else {}
        pending = sum(1 for k in self.model.values() if k.creator == creator and k.pending(self.now))
        result = self.run(self.service.create_key(self.admins[creator], name="model", kind=kind, **partner))
        if pending >= POLICY.max_pending_keys_per_admin:
            assert not isinstance(result, ApiKey)
            return "00000000-0000-0000-0000-000000000000"
        assert isinstance(result, ApiKey), result
        key = ModelKey(id=str(result.id), kind=kind, creator=creator, created=self.now, issued=self.now)
        self.model[key.id] = key
        return key.id

    @rule(key_id=keys, guesses=st.lists(st.sampled_from(["wrong", "wrong", "stale", "other admin", "right"]), min_size=1, max_size=7))
    def verify(self, key_id: str, guesses: list[str]) -> None:
        for guess in guesses:
            self._verify(key_id, guess)

    def _verify(self, key_id: str, guess: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            result = self.run(self.service.verify_key(self.admins["ada"], key_id, "123456"))
            assert isinstance(result, VerificationFailed)
            return
        admin = key.creator if guess != "other admin" else ("bob" if key.creator == "ada" else "ada")
        generation = key.generation - 1 if guess == "stale" and key.generation > 0 else key.generation
        code = codes.verification_code(SECRET, uuid.UUID(key_id), generation)
        if guess == "wrong":
            code = f"{(int(code) + 1) % 1_000_000:06d}"
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

    @rule(key_id=keys, by_creator=st.lists(st.booleans(), min_size=1, max_size=5))
    def resend(self, key_id: str, by_creator: list[bool]) -> None:
        for each in by_creator:
            self._resend(key_id, each)

    def _resend(self, key_id: str, by_creator: bool) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        admin = key.creator if by_creator else ("bob" if key.creator == "ada" else "ada")
        result = self.run(self.service.resend_code(self.admins[admin], key_id))
        if by_creator and key.pending(self.now) and key.resends < POLICY.max_resends:
            assert isinstance(result, ApiKey)
            key.resends += 1
            key.generation += 1
            key.issued = self.now
        else:
            assert isinstance(result, VerificationFailed)

    @rule(key_id=keys, by_creator=st.booleans())
    def reveal(self, key_id: str, by_creator: bool) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        admin = key.creator if by_creator else ("bob" if key.creator == "ada" else "ada")
        result = self.run(self.service.reveal_key(self.admins[admin], key_id))
        allowed = (
            by_creator
            and key.kind is KeyKind.INSTITUTIONAL
            and key.verified is not None
            and not key.revoked
            and not key.revealed
        )
        if allowed:
            assert isinstance(result, Credentials)
            key.revealed = True
            key.secrets_returned += 1
        else:
            assert isinstance(result, VerificationFailed)

    @rule(key_id=keys, tries=st.lists(st.booleans(), min_size=1, max_size=7))
    def partner_reveal(self, key_id: str, tries: list[bool]) -> None:
        for right in tries:
            self._partner_reveal(key_id, right)

    def _partner_reveal(self, key_id: str, right: bool) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        otp = codes.partner_otp(SECRET, uuid.UUID(key_id)) if right else "AAAA-BBBB-CCCC-DDDD"
        result = self.run(self.service.reveal_partner_key(key_id, otp))
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
            return
        assert isinstance(result, VerificationFailed)
        if key.kind is KeyKind.PARTNER and key.verified is not None and not key.revealed and key.partner_attempts < POLICY.max_partner_attempts:
            key.partner_attempts += 1

    @rule(key_id=consumes(keys))
    def revoke(self, key_id: str) -> None:
        key = self.model.get(key_id)
        if key is None:
            return
        self.run(self.service.revoke_key(self.admins["ada"], key_id))
        key.revoked = True

    @rule(seconds=st.sampled_from([301, 1, 60, 299, 450, 899, 901, 72 * 3600, 72 * 3600 + 1]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def let_the_current_code_expire(self) -> None:
        self.clock.advance(POLICY.code_ttl_seconds)

    @rule()
    def sweep(self) -> None:
        self.run(self.service.record_window_locks())

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
        partner_mail = Counter(
            str(k) for k in self.run(OutboxMessage.filter(kind=MessageKind.PARTNER_OTP).values_list("key_id", flat=True))
        )
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
            if status is KeyStatus.ACTIVE:
                assert key_id in verified_at and verified_at[key_id] < row.verification_deadline
            if key.history and key.history[-1] in (KeyStatus.LOCKED, KeyStatus.REVOKED):
                assert status is not KeyStatus.ACTIVE
            key.history.append(status)
            assert partner_mail[key_id] == (1 if key.kind is KeyKind.PARTNER and key.verified else 0)
            assert counts["VERIFIED"] == (1 if key.verified else 0)
            assert counts["VERIFICATION_FAILED"] == key.attempts
            assert counts["CODE_RESENT"] == key.resends
            assert counts["REVEALED"] + counts["PARTNER_REVEALED"] == (1 if key.revealed else 0)
            assert counts["PARTNER_REVEAL_FAILED"] == key.partner_attempts
            assert counts["LOCKED"] <= 1 and counts["REVOKED"] == (1 if key.revoked else 0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_key_lifecycle_follows_the_rules(migrated_template):
    KeyLifecycle.template = migrated_template
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

