"""What the use-cases return when things go as expected, including expected failures.

Each failure is a value, so the GraphQL layer maps it to a member of a result union and the
HTTP layer never sees an exception for an ordinary refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
class SignInRefused:
    """The admin was disabled after their token was accepted for this request: answered as a
    refused token (the GraphQL layer's UNAUTHENTICATED), nothing done."""


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


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class DailyKeyLimitReached:
    """The admin created ``limit`` keys in the last day (24 hours plus one verification window);
    the next may be created at ``retry_at``."""

    limit: int
    retry_at: datetime

    @property
    def message(self) -> str:
        return (
            f"You have created {self.limit} keys in the last day, the most allowed. "
            f"You can create another from {_when(self.retry_at)}."
        )


@dataclass(frozen=True)
class CodeEmailLimitReached:
    """``limit`` verification codes were emailed to the admin in the last hour (creates and
    resends together); the next may be sent at ``retry_at``."""

    limit: int
    retry_at: datetime

    @property
    def message(self) -> str:
        return (
            f"{self.limit} verification codes have been emailed to you in the last hour, the most allowed. "
            f"No other code can be sent before {_when(self.retry_at)}."
        )


@dataclass(frozen=True)
class KeyCreationSuspended:
    """``locked`` of the admin's keys were locked by wrong codes in the last 24 hours (at least
    ``limit``): no createKey before ``retry_at``. Every admin of the institution has been mailed."""

    limit: int
    locked: int
    retry_at: datetime

    @property
    def message(self) -> str:
        return (
            f"Key creation is suspended until {_when(self.retry_at)}: {self.locked} of your keys were locked "
            "by wrong verification codes in the last 24 hours, and every admin of your institution has been told. "
            "If you did not enter those codes, someone else may hold your admin token: have it revoked."
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
