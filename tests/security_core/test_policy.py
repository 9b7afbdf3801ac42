"""The policy's arithmetic: when a code or a partner's password stops working, when a key's
window ends, what is left of its attempts and resends. Pure functions of moments and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyrelease.policy import VerificationPolicy

POLICY = VerificationPolicy(
    code_ttl_seconds=300,
    verification_window_seconds=900,
    max_resends=3,
    max_attempts=5,
    partner_otp_ttl_seconds=3600,
    max_key_lifetime_days=30,
)
T0 = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


def test_the_window_ends_its_length_after_creation() -> None:
    assert POLICY.verification_deadline(T0) == T0 + timedelta(seconds=900)


def test_a_code_lives_its_ttl_when_the_window_outlasts_it() -> None:
    assert POLICY.code_expires_at(T0, T0 + timedelta(seconds=900)) == T0 + timedelta(seconds=300)


def test_the_window_cuts_a_code_short() -> None:
    deadline = T0 + timedelta(seconds=900)
    late = deadline - timedelta(seconds=60)  # a resend one minute before the deadline
    assert POLICY.code_expires_at(late, deadline) == deadline


def test_a_code_works_only_if_issued_after_the_ttl_before_now() -> None:
    now = T0 + timedelta(seconds=1000)
    cutoff = POLICY.codes_issued_after(now)
    assert cutoff == now - timedelta(seconds=300)
    # the condition and the expiry say the same: issued after the cutoff <=> expires after now
    far = now + timedelta(days=1)
    assert POLICY.code_expires_at(cutoff, far) == now
    assert POLICY.code_expires_at(cutoff + timedelta(microseconds=1), far) > now


def test_a_partner_password_lives_its_ttl() -> None:
    assert POLICY.partner_password_expires_at(T0) == T0 + timedelta(hours=1)
    assert POLICY.partner_passwords_issued_after(T0 + timedelta(hours=1)) == T0


def test_the_latest_key_expiry_is_the_lifetime_from_now() -> None:
    assert POLICY.latest_key_expiry(T0) == T0 + timedelta(days=30)


@pytest.mark.parametrize(("used", "left"), [(0, 3), (1, 2), (3, 0), (7, 0)])
def test_resends_remaining_count_down_to_zero_and_no_further(used: int, left: int) -> None:
    assert POLICY.resends_remaining(used) == left


@pytest.mark.parametrize(("used", "left"), [(0, 5), (4, 1), (5, 0), (9, 0)])
def test_attempts_remaining_count_down_to_zero_and_no_further(used: int, left: int) -> None:
    assert POLICY.attempts_remaining(used) == left
