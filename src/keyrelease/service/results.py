"""What the use-cases return when things go as expected, including expected failures.

Each failure is a value, so the GraphQL layer maps it to a member of a result union and the
HTTP layer never sees an exception for an ordinary refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The one answer to every failed verifyKey, resendCode and revealKey, whatever the cause:
#: wrong, expired or superseded code, locked key, key past its window, already verified or
#: revealed, unknown or malformed id, another admin's key, wrong one-time password.
GENERIC_VERIFICATION_ERROR = (
    "Verification failed. The key or code is not valid for this request; "
    "check them or create a new key."
)


@dataclass(frozen=True)
class VerificationFailed:
    message: str = GENERIC_VERIFICATION_ERROR


@dataclass(frozen=True)
class InvalidInput:
    field: str
    message: str


@dataclass(frozen=True)
class PendingLimitReached:
    limit: int

    @property
    def message(self) -> str:
        return (
            f"You already have {self.limit} keys waiting for verification. "
            "Verify one of them, or wait until its window closes, before creating another."
        )


@dataclass(frozen=True)
class KeyNotFound:
    message: str = "No key with this id."


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"Credentials(client_id={self.client_id!r}, client_secret=<hidden>)"
