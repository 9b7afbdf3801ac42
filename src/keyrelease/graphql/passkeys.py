"""GraphQL types and inputs of passkeys (keyrelease.service.passkeys): an admin's passkeys,
their registration, and the options of a key's release by a passkey."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry

from keyrelease import models
from keyrelease.graphql.types import Error


@strawberry.type(description="A passkey of yours. Only its name and dates: the key material stays on your device.")
class Passkey:
    id: strawberry.ID
    name: str
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(description="Its last assertion that was accepted.")

    @classmethod
    def of(cls, passkey: models.Passkey) -> Passkey:
        return cls(
            id=strawberry.ID(str(passkey.id)), name=passkey.name, created_at=passkey.created_at, last_used_at=passkey.last_used_at
        )


@strawberry.type(
    description="A passkey registration waiting for its proof: the emailed code (codeExpiresAt), or an assertion "
    "of a passkey you already have (requestOptions: JSON for navigator.credentials.get)."
)
class PasskeyRegistration:
    registration_id: strawberry.ID
    code_expires_at: datetime | None
    request_options: str | None


@strawberry.type(description="WebAuthn options as JSON (PublicKeyCredentialCreationOptions or RequestOptions).")
class PasskeyOptions:
    options: str


@strawberry.type(description="No passkey of yours has this id.")
class PasskeyNotFoundError(Error):
    message: str


@strawberry.enum(description="How a new passkey's registration is proven.")
class PasskeyProof(StrEnum):
    EMAIL = "EMAIL"
    PASSKEY = "PASSKEY"


@strawberry.input
class StartPasskeyRegistrationInput:
    proof: PasskeyProof = PasskeyProof.EMAIL


@strawberry.input
class ResendPasskeyCodeInput:
    registration_id: strawberry.ID


@strawberry.input(description="The emailed code, or passkeyAssertion: the JSON of navigator.credentials.get's answer.")
class ConfirmPasskeyRegistrationInput:
    registration_id: strawberry.ID
    code: str | None = None
    passkey_assertion: str | None = None


@strawberry.input(description="credential: the JSON of navigator.credentials.create's answer.")
class FinishPasskeyRegistrationInput:
    registration_id: strawberry.ID
    name: str
    credential: str


@strawberry.input
class RenamePasskeyInput:
    passkey_id: strawberry.ID
    name: str


@strawberry.input
class RemovePasskeyInput:
    passkey_id: strawberry.ID


@strawberry.input
class BeginPasskeyVerificationInput:
    key_id: strawberry.ID
