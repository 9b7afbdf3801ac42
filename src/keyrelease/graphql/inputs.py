"""GraphQL input types, one per mutation: ``<Verb><Noun>Input``."""

from __future__ import annotations

from datetime import datetime

import strawberry

from keyrelease.graphql.types import KeyKind


@strawberry.input
class CreateKeyInput:
    name: str
    kind: KeyKind
    expires_at: datetime | None = None
    partner_name: str | None = None
    partner_email: str | None = None


@strawberry.input(description="The emailed code, or passkeyAssertion: the JSON of navigator.credentials.get's answer.")
class VerifyKeyInput:
    key_id: strawberry.ID
    code: str | None = None
    passkey_assertion: str | None = None


@strawberry.input
class ResendCodeInput:
    key_id: strawberry.ID


@strawberry.input(description="An admin reveals an institutional key with keyId alone; a partner adds oneTimePassword.")
class RevealKeyInput:
    key_id: strawberry.ID
    one_time_password: str | None = None


@strawberry.input
class RevokeKeyInput:
    key_id: strawberry.ID


@strawberry.input(description="Start a rotation of an active key's secret; expiresAt becomes the key's expiry at the release.")
class RotateKeyInput:
    key_id: strawberry.ID
    expires_at: datetime | None = None


@strawberry.input
class CancelRotationInput:
    key_id: strawberry.ID
