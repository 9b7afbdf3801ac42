"""The database tables (Tortoise ORM). State changes go through ``keyrelease.service`` only.

A key's *status* is not a column: it is derived from timestamps by
:func:`keyrelease.status.key_status`, so a key past its verification window *is* LOCKED
whether or not anything has recorded it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from keyrelease.validation import EMAIL_MAX

# The longest value of each text column that takes outside input or outside text. The input
# checks (keyrelease.service) and the cuts before a write (the mail dispatcher) use these names,
# so each limit is written once, here. An email address column is EMAIL_MAX wide.
KEY_NAME_MAX = 100
#: An admin API token's name (``keyrelease.service.api_tokens``).
TOKEN_NAME_MAX = 100
#: An institution's, an admin's or a partner's name.
NAME_MAX = 200
CLIENT_ID_MAX = 80
URL_MAX = 2048
EVENT_DETAIL_MAX = 200
PROVIDER_MESSAGE_ID_MAX = 200
DELIVERY_ERROR_MAX = 500
#: A WebAuthn credential id is at most 1023 bytes: 1364 characters of base64url.
PASSKEY_CREDENTIAL_ID_MAX = 1364


class KeyKind(StrEnum):
    INSTITUTIONAL = "INSTITUTIONAL"
    PARTNER = "PARTNER"


class LockReason(StrEnum):
    ATTEMPTS = "ATTEMPTS"
    WINDOW = "WINDOW"
    #: The creating admin was disabled (``keyrelease admin disable``) while the key was pending.
    ADMIN_DISABLED = "ADMIN_DISABLED"


class EventType(StrEnum):
    CREATED = "CREATED"
    CODE_SENT = "CODE_SENT"
    CODE_RESENT = "CODE_RESENT"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    VERIFIED = "VERIFIED"
    LOCKED = "LOCKED"
    REVEALED = "REVEALED"
    PARTNER_OTP_SENT = "PARTNER_OTP_SENT"
    PARTNER_REVEAL_FAILED = "PARTNER_REVEAL_FAILED"
    PARTNER_REVEALED = "PARTNER_REVEALED"
    REVOKED = "REVOKED"
    LEAK_REPORTED = "LEAK_REPORTED"
    #: The creating admin was disabled: a pending key locked, an active one kept working.
    ADMIN_DISABLED = "ADMIN_DISABLED"
    #: An expiry notice went out (detail: the threshold, ``14d``).
    EXPIRY_NOTICE = "EXPIRY_NOTICE"
    # A rotation of the key's secret (keyrelease.service.rotation).
    ROTATION_STARTED = "ROTATION_STARTED"
    ROTATION_VERIFIED = "ROTATION_VERIFIED"
    ROTATION_REVEALED = "ROTATION_REVEALED"
    NEW_SECRET_FIRST_USED = "NEW_SECRET_FIRST_USED"
    OLD_SECRET_RETIRED = "OLD_SECRET_RETIRED"
    ROTATION_LOCKED = "ROTATION_LOCKED"
    ROTATION_CANCELLED = "ROTATION_CANCELLED"


class ReleaseProof(StrEnum):
    """What releases a key of an institution (``keyrelease institution set-policy``): an emailed
    code, a passkey assertion bound to the key, or either. Snapshotted on each key and rotation
    when it starts, so a pending release keeps the rule it was announced under."""

    EMAIL = "EMAIL"
    PASSKEY_OR_EMAIL = "PASSKEY_OR_EMAIL"
    PASSKEY = "PASSKEY"

    @property
    def takes_code(self) -> bool:
        return self is not ReleaseProof.PASSKEY

    @property
    def takes_passkey(self) -> bool:
        return self is not ReleaseProof.EMAIL


class AdminEventType(StrEnum):
    PASSKEY_ADDED = "PASSKEY_ADDED"
    PASSKEY_REMOVED = "PASSKEY_REMOVED"


class MessageKind(StrEnum):
    VERIFICATION_CODE = "VERIFICATION_CODE"
    #: The code that confirms adding a passkey (keyrelease.service.passkeys).
    PASSKEY_CODE = "PASSKEY_CODE"
    PARTNER_OTP = "PARTNER_OTP"
    CREATION_SUSPENDED = "CREATION_SUSPENDED"
    SECRET_LEAKED = "SECRET_LEAKED"
    EXPIRY_NOTICE = "EXPIRY_NOTICE"


class BudgetItem(StrEnum):
    """What an admin's budget counts (see ``keyrelease.service.budget``)."""

    KEY_CREATED = "KEY_CREATED"
    CODE_EMAIL = "CODE_EMAIL"
    KEY_LOCKED = "KEY_LOCKED"


class NoticeOutcome(StrEnum):
    """What became of one expiry-notice threshold of a key (see ``keyrelease.service.notices``)."""

    SENT = "SENT"
    #: A nearer threshold was due at the same time (the service was down past this one).
    SKIPPED = "SKIPPED"
    #: The threshold was already behind when the key was verified.
    NOT_AHEAD = "NOT_AHEAD"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class Institution(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=NAME_MAX, unique=True)
    created_at = fields.DatetimeField()
    #: What releases its keys (``keyrelease institution set-policy --verification``).
    release_proof = fields.CharEnumField(ReleaseProof, max_length=16, default=ReleaseProof.EMAIL)

    class Meta:
        table = "institution"


class Admin(Model):
    id = fields.IntField(primary_key=True)
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField(
        "models.Institution", related_name="admins", on_delete=fields.RESTRICT
    )
    email = fields.CharField(max_length=EMAIL_MAX, unique=True)
    name = fields.CharField(max_length=NAME_MAX, default="")
    created_at = fields.DatetimeField()
    #: Set by ``keyrelease admin disable`` (offboarding): every token of the admin is refused
    #: while it is set; ``keyrelease admin enable`` clears it.
    disabled_at = fields.DatetimeField(null=True)

    institution_id: int
    tokens: fields.ReverseRelation[AdminToken]

    class Meta:
        table = "admin"


class AdminToken(Model):
    id = fields.IntField(primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="tokens", on_delete=fields.CASCADE
    )
    #: What the admin called it (``cli`` for a token from ``keyrelease admin create``/``token``).
    name = fields.CharField(max_length=TOKEN_NAME_MAX, default="cli", db_default="cli")
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    #: Written in batches by :class:`keyrelease.service.clients.LastUseRecorder`, as a key's is.
    last_used_at = fields.DatetimeField(null=True)

    admin_id: int

    class Meta:
        table = "admin_token"


class ApiKey(Model):
    id = fields.UUIDField(primary_key=True)
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField(
        "models.Institution", related_name="keys", on_delete=fields.RESTRICT
    )
    created_by: fields.ForeignKeyNullableRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="keys", null=True, on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(KeyKind, max_length=16)
    name = fields.CharField(max_length=KEY_NAME_MAX)
    client_id = fields.CharField(max_length=CLIENT_ID_MAX, unique=True)
    secret_hash = fields.CharField(max_length=64, null=True)
    #: The creating admin's address when the key was made: later changes do not redirect codes.
    notify_email = fields.CharField(max_length=EMAIL_MAX, null=True)
    partner_name = fields.CharField(max_length=NAME_MAX, null=True)
    partner_email = fields.CharField(max_length=EMAIL_MAX, null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    verification_deadline = fields.DatetimeField(null=True)
    code_generation = fields.IntField(default=0)
    code_issued_at = fields.DatetimeField(null=True)
    attempts_used = fields.IntField(default=0)
    resends_used = fields.IntField(default=0)
    verified_at = fields.DatetimeField(null=True)
    locked_at = fields.DatetimeField(null=True)
    lock_reason = fields.CharEnumField(LockReason, max_length=16, null=True)
    revealed_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    partner_otp_issued_at = fields.DatetimeField(null=True)
    partner_attempts_used = fields.IntField(default=0)
    legacy = fields.BooleanField(default=False)
    #: When a leak of the secret was reported (status COMPROMISED), and where it was found.
    compromised_at = fields.DatetimeField(null=True)
    compromise_url = fields.CharField(max_length=URL_MAX, null=True)
    last_used_at = fields.DatetimeField(null=True)
    #: The institution's rule when the key was created (:class:`ReleaseProof`).
    release_proof = fields.CharEnumField(ReleaseProof, max_length=16, default=ReleaseProof.EMAIL)
    #: The random part of the one outstanding passkey challenge, from beginPasskeyVerification.
    #: The conditional update that verifies the key consumes it: an assertion works once.
    passkey_nonce = fields.CharField(max_length=64, null=True)

    institution_id: int
    created_by_id: int | None

    class Meta:
        table = "api_key"
        # secret_hash: the secret-scanning lookup by secret (keyrelease.service.leaks); not
        # unique, since imported legacy keys may share a secret.
        # expires_at: the expiry-notice pass and keys(expiringWithin:) read keys by expiry.
        indexes = (("institution_id", "created_at"), ("secret_hash",), ("expires_at",))


class KeyEvent(Model):
    """Append-only history of a key. ``detail`` never holds a code, OTP or secret."""

    id = fields.BigIntField(primary_key=True)
    key: fields.ForeignKeyRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="events", on_delete=fields.CASCADE
    )
    type = fields.CharEnumField(EventType, max_length=32)
    at = fields.DatetimeField()
    detail = fields.CharField(max_length=EVENT_DETAIL_MAX, null=True)

    key_id: str

    class Meta:
        table = "key_event"
        ordering = ["id"]
        # A key's history, and a page's histories at once (``key_id IN (…) ORDER BY id``).
        indexes = (("key_id", "id"),)


class ExpiryNotice(Model):
    """One threshold of one key's expiry, decided once (``keyrelease.service.notices``).

    Unique per key, expiry and threshold: a row is inserted insert-or-nothing with no outcome,
    and the one conditional update that sets its outcome decides, in the transaction that queues
    the mail. A key whose expiry changes (a renewal) gets its notices again for the new one.
    """

    id = fields.BigIntField(primary_key=True)
    key: fields.ForeignKeyRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="expiry_notices", on_delete=fields.CASCADE
    )
    #: The key's expiry this notice is about.
    expires_at = fields.DatetimeField()
    threshold_seconds = fields.IntField()
    outcome = fields.CharEnumField(NoticeOutcome, max_length=16, null=True)
    decided_at = fields.DatetimeField(null=True)

    key_id: str

    class Meta:
        table = "expiry_notice"
        unique_together = (("key_id", "expires_at", "threshold_seconds"),)
        # The pass's "already decided" subquery reads notices by the expiry they are about.
        indexes = (("expires_at", "threshold_seconds"),)
class KeyRotation(Model):
    """A new secret for a key's client ID, released exactly like a new key's secret
    (keyrelease.service.rotation): the same code, counters and window, its own code series
    (codes derive from this row's id, so they differ from the key's).

    ``open_key_id`` is the key's id while the rotation is open (pending, verified, or in its
    overlap) and NULL once it is closed (locked, cancelled, finished): its unique index lets
    at most one open rotation exist per key, on every database, without a partial index.
    ``new_secret_hash`` is set only at release (reveal or partner retrieval), in the same
    conditional update that sets ``revealed_at``: no credential leaves before verification.
    """

    id = fields.UUIDField(primary_key=True)
    key: fields.ForeignKeyRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="rotations", on_delete=fields.CASCADE
    )
    open_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name=False, null=True, unique=True, on_delete=fields.CASCADE
    )
    requested_by: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="rotations", on_delete=fields.RESTRICT
    )
    #: The requesting admin's address when the rotation started: where its codes go.
    notify_email = fields.CharField(max_length=EMAIL_MAX)
    started_at = fields.DatetimeField()
    verification_deadline = fields.DatetimeField()
    code_generation = fields.IntField(default=0)
    code_sent_at = fields.DatetimeField()
    resends_used = fields.IntField(default=0)
    attempts_used = fields.IntField(default=0)
    verified_at = fields.DatetimeField(null=True)
    locked_at = fields.DatetimeField(null=True)
    lock_reason = fields.CharEnumField(LockReason, max_length=16, null=True)
    cancelled_at = fields.DatetimeField(null=True)
    #: The key's expiry from the release on (null: the key's expiry is kept).
    expires_at = fields.DatetimeField(null=True)
    partner_otp_issued_at = fields.DatetimeField(null=True)
    partner_attempts_used = fields.IntField(default=0)
    #: The release: the new secret revealed to the admin, or retrieved by the partner.
    revealed_at = fields.DatetimeField(null=True)
    new_secret_hash = fields.CharField(max_length=64, null=True)
    new_secret_first_used_at = fields.DatetimeField(null=True)
    #: When the periodic pass made the new secret the key's only one.
    old_secret_retired_at = fields.DatetimeField(null=True)
    #: As a key's: the institution's rule when the rotation started, and the outstanding
    #: passkey challenge's nonce.
    release_proof = fields.CharEnumField(ReleaseProof, max_length=16, default=ReleaseProof.EMAIL)
    passkey_nonce = fields.CharField(max_length=64, null=True)

    key_id: str
    open_key_id: str | None
    requested_by_id: int

    class Meta:
        table = "key_rotation"
        indexes = (("key_id", "started_at"),)


class Passkey(Model):
    """A WebAuthn credential of an admin (keyrelease.service.passkeys). Only public material:
    the credential id and COSE public key (base64url), the signature counter last seen."""

    id = fields.UUIDField(primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="passkeys", on_delete=fields.CASCADE
    )
    credential_id = fields.CharField(max_length=PASSKEY_CREDENTIAL_ID_MAX, unique=True)
    public_key = fields.TextField()
    sign_count = fields.BigIntField(default=0)
    name = fields.CharField(max_length=KEY_NAME_MAX)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)

    admin_id: int

    class Meta:
        table = "passkey"
        indexes = (("admin_id", "created_at"),)


class PasskeyEnrollment(Model):
    """Adding a passkey: proven first by an emailed code (a key's rules: code lifetime,
    resends, attempts, window; codes derive from this row's id) or by an assertion of an
    existing passkey (``nonce``); then ``challenge`` is the registration's, used once."""

    id = fields.UUIDField(primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="passkey_enrollments", on_delete=fields.CASCADE
    )
    notify_email = fields.CharField(max_length=EMAIL_MAX)
    started_at = fields.DatetimeField()
    verification_deadline = fields.DatetimeField()
    #: Null when the proof is a passkey (no code was sent).
    code_sent_at = fields.DatetimeField(null=True)
    code_generation = fields.IntField(default=0)
    resends_used = fields.IntField(default=0)
    attempts_used = fields.IntField(default=0)
    nonce = fields.CharField(max_length=64, null=True)
    verified_at = fields.DatetimeField(null=True)
    locked_at = fields.DatetimeField(null=True)
    challenge = fields.CharField(max_length=64, null=True)
    completed_at = fields.DatetimeField(null=True)

    admin_id: int

    class Meta:
        table = "passkey_enrollment"
        indexes = (("admin_id", "started_at"),)


class AdminEvent(Model):
    """Append-only history of an admin (passkeys added and removed). ``detail`` names, never secrets."""

    id = fields.BigIntField(primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="events", on_delete=fields.CASCADE
    )
    type = fields.CharEnumField(AdminEventType, max_length=32)
    at = fields.DatetimeField()
    detail = fields.CharField(max_length=EVENT_DETAIL_MAX, null=True)

    admin_id: int

    class Meta:
        table = "admin_event"
        indexes = (("admin_id", "id"),)


class OutboxMessage(Model):
    """A message waiting to be sent, written in the transaction that caused it.

    ``payload`` holds only references (key id, code generation, expiry): the code or OTP is
    derived from the server secret when the message is rendered for sending, so it never
    rests in the database.
    """

    id = fields.UUIDField(primary_key=True)
    key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="messages", null=True, on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(MessageKind, max_length=32)
    recipient = fields.CharField(max_length=EMAIL_MAX)
    payload: dict[str, Any] = fields.JSONField()
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=DELIVERY_ERROR_MAX, null=True)
    sent_at = fields.DatetimeField(null=True)
    provider_message_id = fields.CharField(max_length=PROVIDER_MESSAGE_ID_MAX, null=True)

    key_id: str | None

    class Meta:
        table = "outbox_message"
        # The dispatcher's queue; a key's (and a page's) latest deliveries.
        indexes = (("status", "next_attempt_at"), ("key_id", "created_at"))


class RateLimitCounter(Model):
    """One fixed-window request counter (see ``keyrelease.service.ratelimit``).

    ``bucket`` names the rule and its subject (``token_ip:203.0.113.7``); ``window_end`` is
    the end of the current window in whole seconds since the epoch. Rows are updated by one
    atomic upsert per request and pruned once their window has ended.
    """

    bucket = fields.CharField(max_length=200, primary_key=True)
    window_end = fields.BigIntField()
    count = fields.IntField()

    class Meta:
        table = "rate_limit_counter"


class AdminBudgetEntry(Model):
    """One spending of an admin's budget: a key created, a code emailed, a key locked by
    wrong codes (see ``keyrelease.service.budget``).

    Kept apart from the keys on purpose: a key's later fate (revoked, locked, purged) must not
    give its creator the budget back. ``at_ms`` is milliseconds since the epoch, so the
    conditional insert compares integers on every backend. Entries older than the longest
    window are pruned.
    """

    id = fields.BigIntField(primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="budget_entries", on_delete=fields.CASCADE
    )
    item = fields.CharEnumField(BudgetItem, max_length=16)
    at_ms = fields.BigIntField()

    admin_id: int

    class Meta:
        table = "admin_budget_entry"
        indexes = (("admin_id", "item", "at_ms"),)


class IdentityProvider(Model):
    """An institution's OpenID Connect provider (``keyrelease institution set-idp``, see
    ``keyrelease.service.sso``). ``client_secret_sealed`` is the client secret encrypted under a
    key derived from the server secret (:mod:`keyrelease.sealing`), never the secret itself."""

    id = fields.IntField(primary_key=True)
    institution: fields.OneToOneRelation[Institution] = fields.OneToOneField(
        "models.Institution", related_name="identity_provider", on_delete=fields.CASCADE
    )
    issuer = fields.CharField(max_length=URL_MAX)
    client_id = fields.CharField(max_length=NAME_MAX)
    client_secret_sealed = fields.TextField()
    #: The claim that marks an admin, and the value it must have (or contain), null for none.
    admin_claim = fields.CharField(max_length=NAME_MAX, null=True)
    admin_claim_value = fields.CharField(max_length=NAME_MAX, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    institution_id: int
    domains: fields.ReverseRelation[IdentityProviderDomain]

    class Meta:
        table = "identity_provider"


class IdentityProviderDomain(Model):
    """An email domain whose admins sign in with ``provider``: one institution per domain."""

    id = fields.IntField(primary_key=True)
    provider: fields.ForeignKeyRelation[IdentityProvider] = fields.ForeignKeyField(
        "models.IdentityProvider", related_name="domains", on_delete=fields.CASCADE
    )
    domain = fields.CharField(max_length=EMAIL_MAX, unique=True)

    provider_id: int

    class Meta:
        table = "identity_provider_domain"


class AdminIdentity(Model):
    """Who an admin is at their institution's provider: the ID token's ``sub``, which stays
    when their email or name changes (both are updated from the provider at each sign-in)."""

    id = fields.IntField(primary_key=True)
    admin: fields.OneToOneRelation[Admin] = fields.OneToOneField(
        "models.Admin", related_name="identity", on_delete=fields.CASCADE
    )
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField(
        "models.Institution", related_name="admin_identities", on_delete=fields.CASCADE
    )
    subject = fields.CharField(max_length=255)
    created_at = fields.DatetimeField()

    admin_id: int
    institution_id: int

    class Meta:
        table = "admin_identity"
        unique_together = (("institution_id", "subject"),)


class SignInRequest(Model):
    """One authorization request sent to a provider, waiting for its answer.

    ``state_hash`` is the SHA-256 of the ``state`` sent (the state itself lives only in the
    browser); the PKCE verifier and the nonce are derived from the state and the server
    secret, so this row alone can finish no sign-in. ``used_at`` is set by the one conditional
    update that accepts the answer: a replayed answer finds it set."""

    state_hash = fields.CharField(max_length=64, primary_key=True)
    provider: fields.ForeignKeyRelation[IdentityProvider] = fields.ForeignKeyField(
        "models.IdentityProvider", related_name="sign_in_requests", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    used_at = fields.DatetimeField(null=True)

    provider_id: int

    class Meta:
        table = "sign_in_request"


class AdminSession(Model):
    """A signed-in browser (``keyrelease.service.sessions``): only the SHA-256 of the cookie's
    value is stored. It ends at ``ended_at`` (sign-out), ``idle_seconds`` after ``last_seen_at``,
    or at ``expires_at``, whichever comes first."""

    id_hash = fields.CharField(max_length=64, primary_key=True)
    admin: fields.ForeignKeyRelation[Admin] = fields.ForeignKeyField(
        "models.Admin", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    ended_at = fields.DatetimeField(null=True)

    admin_id: int

    class Meta:
        table = "admin_session"
