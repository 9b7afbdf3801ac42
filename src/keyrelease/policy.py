"""The numbers of the verification flow, in one object.

The defaults are written here only; ``keyrelease.config.SETTINGS`` declares the variable,
bounds and help of each number and takes its default from this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class VerificationPolicy:
    code_ttl_seconds: int = 300
    verification_window_seconds: int = 900
    max_resends: int = 3
    max_attempts: int = 5
    partner_otp_ttl_seconds: int = 259200
    max_partner_attempts: int = 5
    max_pending_keys_per_admin: int = 5
    max_key_lifetime_days: int = 365
    #: An admin's budget (keyrelease.service.budget): keys created in any 24 hours, whatever
    #: became of them; keys locked by wrong codes in any 24 hours before createKey is refused;
    #: code emails (creates and resends) in any hour.
    max_keys_per_admin_per_day: int = 20
    max_locked_keys_per_admin_per_day: int = 3
    max_code_emails_per_admin_per_hour: int = 10
    #: Every verification failure is answered no sooner than this after the request began,
    #: so a failure that writes (a counted attempt) and one that only reads (unknown key)
    #: take the same time from outside.
    failure_floor_ms: int = 50

    @property
    def code_ttl(self) -> timedelta:
        return timedelta(seconds=self.code_ttl_seconds)

    @property
    def verification_window(self) -> timedelta:
        return timedelta(seconds=self.verification_window_seconds)

    @property
    def partner_otp_ttl(self) -> timedelta:
        return timedelta(seconds=self.partner_otp_ttl_seconds)

    @property
    def max_key_lifetime(self) -> timedelta:
        return timedelta(days=self.max_key_lifetime_days)
