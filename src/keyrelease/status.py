"""A key's status, derived from its timestamps, and the one answer to "may it authenticate"."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol


class KeyStatus(StrEnum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    #: Its secret was found in public (a secret-scanning report or ``keyrelease keys
    #: report-leak``) and retired; recovery is a new key.
    COMPROMISED = "COMPROMISED"


class KeyTimes(Protocol):
    @property
    def verified_at(self) -> datetime | None: ...
    @property
    def locked_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def compromised_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def verification_deadline(self) -> datetime | None: ...


def key_status(key: KeyTimes, now: datetime) -> KeyStatus:
    # A leak outranks every other state: it is what an admin most needs to see, and it stays
    # true after a later revocation or expiry.
    if key.compromised_at is not None:
        return KeyStatus.COMPROMISED
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.verified_at is None:
        if key.locked_at is not None:
            return KeyStatus.LOCKED
        if key.verification_deadline is not None and now >= key.verification_deadline:
            return KeyStatus.LOCKED
        return KeyStatus.PENDING_VERIFICATION
    if key.expires_at is not None and now >= key.expires_at:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def may_authenticate(key: KeyTimes, now: datetime) -> bool:
    """Whether the key's credentials may be exchanged for an access token: only while ACTIVE."""
    return key_status(key, now) is KeyStatus.ACTIVE
