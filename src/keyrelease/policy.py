"""The numbers of the verification flow, in one object, and the arithmetic on them: when a
code or a partner's password stops working, when a key's window ends, what is left of its
attempts and resends. Pure: moments and counts in, moments and counts out; whether a key is
still pending is :func:`keyrelease.status.key_status`'s to say.

The defaults are written here only; ``keyrelease.config.SETTINGS`` declares the variable,
bounds and help of each number and takes its default from this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


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

    def verification_deadline(self, created_at: datetime) -> datetime:
        """The end of a key's window: verify before this, or the key locks for ever."""
        return created_at + self.verification_window

    def code_expires_at(self, issued_at: datetime, deadline: datetime) -> datetime:
        """When a code issued at ``issued_at`` stops working: its TTL, cut short by the key's window."""
        return min(issued_at + self.code_ttl, deadline)

    def codes_issued_after(self, now: datetime) -> datetime:
        """A code still works at ``now`` only if it was issued after this moment (and the key's
        window is open): :meth:`code_expires_at` as a condition on the issue time."""
        return now - self.code_ttl

    def partner_password_expires_at(self, issued_at: datetime) -> datetime:
        """When a partner's one-time password sent at ``issued_at`` stops working."""
        return issued_at + self.partner_otp_ttl

    def partner_passwords_issued_after(self, now: datetime) -> datetime:
        """A partner's password still works at ``now`` only if it was sent after this moment."""
        return now - self.partner_otp_ttl

    def latest_key_expiry(self, now: datetime) -> datetime:
        """The furthest ``expiresAt`` a key created at ``now`` may have."""
        return now + self.max_key_lifetime

    def resends_remaining(self, resends_used: int) -> int:
        """New codes a pending key with ``resends_used`` resends can still be sent."""
        return max(0, self.max_resends - resends_used)

    def attempts_remaining(self, attempts_used: int) -> int:
        """Codes a pending key with ``attempts_used`` wrong codes can still be tried with."""
        return max(0, self.max_attempts - attempts_used)
