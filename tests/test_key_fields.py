"""What a key reports about itself: only what can still be used, why it locked, when the
partner's password expires; and the server's clock and policy, for the console."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from keyrelease.testing.api import KEY_QUERY, REVOKE_KEY, released_key

STATE = "query($id: ID!) { key(id: $id) { status resendsRemaining attemptsRemaining lockReason partnerPasswordExpiresAt } }"


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Not the defaults, so that a figure read from the policy cannot pass by coincidence."""
    return {
        "KEYRELEASE_MAX_ATTEMPTS": "4",
        "KEYRELEASE_MAX_RESENDS": "2",
        "KEYRELEASE_CODE_TTL_SECONDS": "240",
        "KEYRELEASE_VERIFICATION_WINDOW_SECONDS": "600",
        "KEYRELEASE_PARTNER_OTP_TTL_SECONDS": "7200",
        "KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN": "7",
        "KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY": "17",
        "KEYRELEASE_MAX_LOCKED_KEYS_PER_ADMIN_PER_DAY": "2",
        "KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "9",
    }


async def state(api, admin, key_id: str) -> dict:
    return (await api.data(STATE, {"id": key_id}, admin.token))["key"]


async def test_a_pending_key_reports_what_is_left_and_no_lock_reason(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    await api.resend(ada, key["id"])
    assert await state(api, ada, key["id"]) == {
        "status": "PENDING_VERIFICATION",
        "resendsRemaining": 1,
        "attemptsRemaining": 4,
        "lockReason": None,
        "partnerPasswordExpiresAt": None,
    }


async def test_a_key_locked_by_wrong_codes_has_nothing_left_and_says_why(api):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    for _ in range(4):
        await api.verify(ada, key["id"], f"{(int(code) + 1) % 1_000_000:06d}")
    assert await state(api, ada, key["id"]) == {
        "status": "LOCKED",
        "resendsRemaining": 0,
        "attemptsRemaining": 0,
        "lockReason": "ATTEMPTS",
        "partnerPasswordExpiresAt": None,
    }


async def test_a_key_whose_window_closed_has_nothing_left_and_says_why(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    clock.advance(api.app.state.services.settings.policy.verification_window_seconds)
    got = await state(api, ada, key["id"])
    assert (got["status"], got["resendsRemaining"], got["attemptsRemaining"], got["lockReason"]) == (
        "LOCKED", 0, 0, "WINDOW"
    )


async def test_active_and_revoked_keys_have_no_resends_or_attempts_left(api):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    active = await state(api, ada, key["id"])
    assert (active["status"], active["resendsRemaining"], active["attemptsRemaining"], active["lockReason"]) == (
        "ACTIVE", 0, 0, None
    )
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    revoked = await state(api, ada, key["id"])
    assert (revoked["status"], revoked["resendsRemaining"], revoked["attemptsRemaining"]) == ("REVOKED", 0, 0)


async def test_a_partner_key_reports_when_its_password_expires(api, clock):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada, kind="PARTNER", partnerName="Acme", partnerEmail="keys@acme.example")
    verified_at = clock.now()
    await api.verify(ada, key["id"], code)
    got = await state(api, ada, key["id"])
    ttl = api.app.state.services.settings.policy.partner_otp_ttl_seconds
    assert datetime.fromisoformat(got["partnerPasswordExpiresAt"]) == verified_at + timedelta(seconds=ttl)
    assert (await api.data(KEY_QUERY, {"id": key["id"]}, ada.token))["key"]["status"] == "ACTIVE"


async def test_server_time_is_the_servers_clock(api, clock):
    clock.advance(12345)
    data = await api.data("{ serverTime }")
    assert datetime.fromisoformat(data["serverTime"]) == clock.now()


async def test_policy_lists_the_enforced_maxima_to_an_admin(api):
    ada = await api.admin()
    policy = api.app.state.services.settings.policy
    got = (await api.data(
        "{ policy { codeTtlSeconds verificationWindowSeconds maxResends maxAttempts partnerPasswordTtlSeconds"
        " maxPendingKeysPerAdmin maxKeyLifetimeDays maxKeysPerAdminPerDay maxLockedKeysPerAdminPerDay"
        " maxCodeEmailsPerAdminPerHour } }", token=ada.token,
    ))["policy"]
    assert (got["maxAttempts"], got["maxResends"], got["codeTtlSeconds"]) == (4, 2, 240)
    assert got == {
        "codeTtlSeconds": policy.code_ttl_seconds,
        "verificationWindowSeconds": policy.verification_window_seconds,
        "maxResends": policy.max_resends,
        "maxAttempts": policy.max_attempts,
        "partnerPasswordTtlSeconds": policy.partner_otp_ttl_seconds,
        "maxPendingKeysPerAdmin": policy.max_pending_keys_per_admin,
        "maxKeyLifetimeDays": policy.max_key_lifetime_days,
        "maxKeysPerAdminPerDay": 17,
        "maxLockedKeysPerAdminPerDay": 2,
        "maxCodeEmailsPerAdminPerHour": 9,
    }
    body = await api.gql("{ policy { maxAttempts } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
