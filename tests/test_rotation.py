"""Rotation of a key's secret with overlap (issue 15 point 1), through the real HTTP stack on
SQLite and PostgreSQL, with the frozen clock: released like a new key's secret, both secrets
authenticate during the overlap, the old one stops at the grace or the maximum overlap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from keyrelease.models import EventType, KeyRotation, OutboxMessage
from keyrelease.testing.api import CODE_LINE, OTP_LINE, AdminUser, Api, released_key
from keyrelease.testing.tokens import request_token

ROTATE = """
mutation($input: RotateKeyInput!) {
  rotateKey(input: $input) {
    __typename
    ... on ApiKey { id status expiresAt rotation { status attemptsRemaining resendsRemaining codeExpiresAt
                    verificationDeadline releasedAt newSecretFirstUsedAt oldSecretRetiresAt startedAt } }
    ... on Error { message }
    ... on ValidationError { field }
  }
}"""
CANCEL = """
mutation($input: CancelRotationInput!) {
  cancelRotation(input: $input) { __typename ... on ApiKey { id status rotation { status } } ... on Error { message } }
}"""
ROTATION_QUERY = """
query($id: ID!) { key(id: $id) { status expiresAt events { type detail }
  rotation { status attemptsRemaining resendsRemaining releasedAt newSecretFirstUsedAt oldSecretRetiresAt
             lockReason requestedBy } } }"""
INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}


async def rotate(api: Api, admin: AdminUser, key_id: str, **fields: object) -> dict:
    return (await api.data(ROTATE, {"input": {"keyId": key_id, **fields}}, admin.token))["rotateKey"]


async def rotation_code(api: Api, admin: AdminUser, nth: int) -> str:
    """The ``nth`` code mailed to ``admin`` (the key's own code is the first)."""
    mails = await api.mails_to(admin.email, nth)
    match = CODE_LINE.search(mails[nth - 1].text)
    assert match, mails[nth - 1].text
    return match.group(1)


async def shown_key(api: Api, admin: AdminUser, key_id: str) -> dict:
    return (await api.data(ROTATION_QUERY, {"id": key_id}, admin.token))["key"]


async def token_status(api: Api, client_id: str, secret: str) -> int:
    return (await request_token(api.client, client_id, secret)).status_code


async def rotated(api: Api, admin: AdminUser, **fields: object) -> tuple[dict, dict, dict]:
    """A released key, rotated, verified and revealed: the key, old and new credentials."""
    key, old = await released_key(api, admin)
    assert (await rotate(api, admin, key["id"], **fields))["__typename"] == "ApiKey"
    verified = await api.verify(admin, key["id"], await rotation_code(api, admin, 2))
    assert verified["__typename"] == "ApiKey" and verified["status"] == "ACTIVE", verified
    new = await api.reveal(admin, key["id"])
    assert new["__typename"] == "KeyCredentials", new
    return key, old, new


async def test_a_dap_style_client_switches_within_the_window_without_a_failed_request(api, clock):
    ada = await api.admin()
    key, old = await released_key(api, ada)
    client_id = old["clientId"]
    assert await token_status(api, client_id, old["clientSecret"]) == 200
    started = await rotate(api, ada, key["id"])
    assert started["rotation"]["status"] == "PENDING_VERIFICATION"
    assert started["rotation"]["attemptsRemaining"] == 5 and started["rotation"]["resendsRemaining"] == 3
    assert await token_status(api, client_id, old["clientSecret"]) == 200  # pending: the old one works
    code = await rotation_code(api, ada, 2)
    assert code != await rotation_code(api, ada, 1)
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"
    assert await token_status(api, client_id, old["clientSecret"]) == 200  # verified, not released
    new = await api.reveal(ada, key["id"])
    assert new["clientId"] == client_id and new["clientSecret"] != old["clientSecret"]
    again = await api.reveal(ada, key["id"])
    assert again["__typename"] == "VerificationError"  # once
    # The client keeps the old secret a while, then switches: every request succeeds.
    clock.advance(hours=3)
    assert await token_status(api, client_id, old["clientSecret"]) == 200
    assert await token_status(api, client_id, new["clientSecret"]) == 200
    first_use = clock.now()
    clock.advance(hours=23, minutes=59)
    assert await token_status(api, client_id, old["clientSecret"]) == 200  # a straggler, within the grace
    assert await token_status(api, client_id, new["clientSecret"]) == 200
    state = (await shown_key(api, ada, key["id"]))["rotation"]
    assert state["status"] == "OVERLAP"
    assert state["oldSecretRetiresAt"].startswith((first_use + timedelta(days=1)).isoformat()[:19])
    clock.advance(minutes=1)
    refused = await request_token(api.client, client_id, old["clientSecret"])
    assert refused.status_code == 401 and refused.json() == INVALID_CLIENT
    unknown = await request_token(api.client, client_id, "krs_" + "x" * 40)
    assert unknown.content == refused.content
    assert await token_status(api, client_id, new["clientSecret"]) == 200
    # The periodic pass drops the old hash for good; nothing changes for either secret.
    assert await api.app.state.services.keys.rotations.finish_due() == 1
    assert await token_status(api, client_id, old["clientSecret"]) == 401
    assert await token_status(api, client_id, new["clientSecret"]) == 200
    shown = await shown_key(api, ada, key["id"])
    types = [event["type"] for event in shown["events"]]
    for expected in ("ROTATION_STARTED", "ROTATION_VERIFIED", "ROTATION_REVEALED", "NEW_SECRET_FIRST_USED", "OLD_SECRET_RETIRED"):
        assert types.count(expected) == 1, types
    assert shown["rotation"]["status"] == "COMPLETED"


async def test_the_old_secret_stops_at_the_maximum_overlap_if_the_new_one_is_never_used(api, clock):
    ada = await api.admin()
    key, old, new = await rotated(api, ada)
    clock.advance(days=7, seconds=-1)
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
    clock.advance(seconds=1)
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 401
    assert await token_status(api, old["clientId"], new["clientSecret"]) == 200


async def test_a_second_rotation_is_refused_while_one_is_open_and_allowed_after(api, clock):
    ada = await api.admin()
    bob = await api.admin("bob@uni.example")
    key, old, new = await rotated(api, ada)
    refused = await rotate(api, bob, key["id"])
    assert refused["__typename"] == "ValidationError" and refused["field"] == "keyId"
    clock.advance(days=8)  # the overlap ended: rotateKey finishes it first
    assert (await rotate(api, bob, key["id"]))["__typename"] == "ApiKey"
    assert await rotation_code(api, bob, 1)
    assert await token_status(api, old["clientId"], new["clientSecret"]) == 200
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 401


async def test_parallel_rotate_key_opens_one_rotation(api):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    answers = await asyncio.gather(*(rotate(api, ada, key["id"]) for _ in range(4)))
    assert sorted(answer["__typename"] for answer in answers) == ["ApiKey", "ValidationError", "ValidationError", "ValidationError"]
    assert await KeyRotation.filter(key_id=key["id"]).count() == 1


async def test_only_a_released_active_key_of_the_institution_rotates(api):
    ada = await api.admin()
    eve = await api.admin("eve@other.example", institution="Other")
    pending = await api.create_key(ada, name="Pending")
    assert (await rotate(api, ada, pending["id"]))["__typename"] == "ValidationError"
    key, _ = await released_key(api, ada)
    assert (await rotate(api, eve, key["id"]))["__typename"] == "KeyNotFoundError"
    assert (await rotate(api, ada, "not-a-uuid"))["__typename"] == "KeyNotFoundError"


async def test_wrong_codes_lock_the_rotation_not_the_key_with_the_generic_error(api, clock):
    ada = await api.admin()
    key, old = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    wrong = "000000" if code != "000000" else "111111"
    failures = [await api.verify(ada, key["id"], wrong) for _ in range(5)]
    unknown = await api.verify(ada, "00000000-0000-0000-0000-000000000001", wrong)
    assert all(failure == unknown for failure in failures), (failures, unknown)
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"  # locked
    shown = await shown_key(api, ada, key["id"])
    assert shown["status"] == "ACTIVE" and shown["rotation"]["status"] == "LOCKED"
    assert shown["rotation"]["lockReason"] == "ATTEMPTS"
    assert [e["type"] for e in shown["events"]].count("ROTATION_LOCKED") == 1
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
    assert (await rotate(api, ada, key["id"]))["__typename"] == "ApiKey"  # a new rotation may start
    assert await rotation_code(api, ada, 3)  # with a code of its own series


async def test_parallel_wrong_codes_on_a_rotation_count_exactly_five(api):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    wrong = "000000" if code != "000000" else "111111"
    answers = await asyncio.gather(*(api.verify(ada, key["id"], wrong) for _ in range(12)))
    assert {answer["__typename"] for answer in answers} == {"VerificationError"}
    rotation = await KeyRotation.get(key_id=key["id"])
    assert rotation.attempts_used == 5 and rotation.locked_at is not None
    events = (await shown_key(api, ada, key["id"]))["events"]
    assert sum(e["type"] == "VERIFICATION_FAILED" for e in events) == 5


async def test_resend_and_window_follow_the_policy(api, clock):
    ada = await api.admin()
    key, old = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    first = await rotation_code(api, ada, 2)
    for _ in range(3):
        resent = await api.resend(ada, key["id"])
        assert resent["__typename"] == "ApiKey", resent
    assert (await api.resend(ada, key["id"]))["__typename"] == "VerificationError"
    latest = await rotation_code(api, ada, 5)
    assert (await api.verify(ada, key["id"], first))["__typename"] == "VerificationError" or first == latest
    clock.advance(minutes=15)
    assert (await api.verify(ada, key["id"], latest))["__typename"] == "VerificationError"
    shown = await shown_key(api, ada, key["id"])
    assert shown["rotation"]["status"] == "LOCKED" and shown["status"] == "ACTIVE"
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200


async def test_cancel_leaves_the_old_secret(api):
    ada = await api.admin()
    bob = await api.admin("bob@uni.example")
    key, old = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    cancelled = (await api.data(CANCEL, {"input": {"keyId": key["id"]}}, bob.token))["cancelRotation"]
    assert cancelled["__typename"] == "ApiKey" and cancelled["rotation"]["status"] == "CANCELLED"
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
    again = (await api.data(CANCEL, {"input": {"keyId": key["id"]}}, bob.token))["cancelRotation"]
    assert again["__typename"] == "ValidationError"


async def test_expires_at_becomes_the_keys_expiry_at_the_release(api, clock):
    ada = await api.admin()
    renewed = (clock.now() + timedelta(days=200)).replace(microsecond=0)
    key, _ = await released_key(api, ada, expiresAt=(clock.now() + timedelta(days=10)).isoformat())
    await rotate(api, ada, key["id"], expiresAt=renewed.isoformat())
    before = await shown_key(api, ada, key["id"])
    assert before["expiresAt"].startswith((clock.now() + timedelta(days=10)).isoformat()[:19])
    assert (await api.verify(ada, key["id"], await rotation_code(api, ada, 2)))["status"] == "ACTIVE"
    await api.reveal(ada, key["id"])
    after = await shown_key(api, ada, key["id"])
    assert after["expiresAt"].startswith(renewed.isoformat()[:19])


async def test_a_partner_key_rotation_goes_to_the_partner_once(api, clock):
    ada = await api.admin()
    partner = "pat@partner.example"
    key = await api.create_key(ada, name="Partner feed", kind="PARTNER", partnerEmail=partner)
    assert (await api.verify(ada, key["id"], await rotation_code(api, ada, 1)))["status"] == "ACTIVE"
    old = await api.reveal(None, key["id"], await api.otp_for(partner))
    assert old["__typename"] == "KeyCredentials"
    await rotate(api, ada, key["id"])
    assert (await api.verify(ada, key["id"], await rotation_code(api, ada, 2)))["status"] == "ACTIVE"
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"  # not the admin's
    mails = await api.mails_to(partner, 2)
    match = OTP_LINE.search(mails[1].text)
    assert match
    first_otp = OTP_LINE.search(mails[0].text)
    assert first_otp and first_otp.group(1) != match.group(1)
    assert (await api.reveal(None, key["id"], first_otp.group(1)))["__typename"] == "VerificationError"
    new = await api.reveal(None, key["id"], match.group(1))
    assert new["__typename"] == "KeyCredentials" and new["clientId"] == old["clientId"]
    assert (await api.reveal(None, key["id"], match.group(1)))["__typename"] == "VerificationError"
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
    assert await token_status(api, old["clientId"], new["clientSecret"]) == 200


async def test_the_new_secrets_first_use_is_recorded_once_under_parallel_requests(api, clock):
    ada = await api.admin()
    key, old, new = await rotated(api, ada)
    statuses = await asyncio.gather(*(token_status(api, new["clientId"], new["clientSecret"]) for _ in range(6)))
    assert set(statuses) == {200}
    events = (await shown_key(api, ada, key["id"]))["events"]
    assert sum(e["type"] == EventType.NEW_SECRET_FIRST_USED.value for e in events) == 1


async def test_the_rotation_code_is_not_in_any_event_or_payload(api):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    shown = await shown_key(api, ada, key["id"])
    assert all(code not in (e["detail"] or "") for e in shown["events"])


async def test_disabling_the_requesting_admin_locks_the_pending_rotation_only(api, clock):
    from keyrelease.service.offboarding import disable_admin

    ada = await api.admin()
    bob = await api.admin("bob@uni.example")
    key, old = await released_key(api, ada)
    await rotate(api, bob, key["id"])
    done = await disable_admin(clock, bob.email)
    assert done.locked == ()
    shown = await shown_key(api, ada, key["id"])
    assert shown["status"] == "ACTIVE" and shown["rotation"]["status"] == "LOCKED"
    assert shown["rotation"]["lockReason"] == "ADMIN_DISABLED" and shown["rotation"]["requestedBy"] == bob.email
    types = [event["type"] for event in shown["events"]]
    assert types[-2:] == ["ADMIN_DISABLED", "ROTATION_LOCKED"]
    assert (await KeyRotation.get(key_id=key["id"])).lock_reason == "ADMIN_DISABLED"
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
    assert (await rotate(api, ada, key["id"]))["__typename"] == "ApiKey"  # the institution's other admin may
    assert await rotation_code(api, ada, 2)


async def test_a_leaked_new_secret_during_the_overlap_retires_the_key(api):
    ada = await api.admin()
    key, old, new = await rotated(api, ada)
    outcome = await api.app.state.services.leaks.report(new["clientSecret"], url=None, source="operator")
    assert outcome.verdict.value == "RETIRED" and [str(k) for k in outcome.key_ids] == [key["id"]]
    assert (await shown_key(api, ada, key["id"]))["status"] == "COMPROMISED"
    assert await token_status(api, old["clientId"], new["clientSecret"]) == 401
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 401


async def test_a_closed_window_is_the_lock_reason_before_anything_records_the_lock(api, clock):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    clock.advance(minutes=15, seconds=-1)
    pending = (await shown_key(api, ada, key["id"]))["rotation"]
    assert pending["status"] == "PENDING_VERIFICATION" and pending["lockReason"] is None
    clock.advance(seconds=1)
    shown = await shown_key(api, ada, key["id"])
    assert shown["rotation"]["status"] == "LOCKED" and shown["rotation"]["lockReason"] == "WINDOW"
    assert "ROTATION_LOCKED" not in [event["type"] for event in shown["events"]]
    row = await KeyRotation.get(key_id=key["id"])
    assert row.locked_at is None and row.lock_reason is None  # derived, not yet recorded
    # Recording it (the next rotateKey closes the stale one first) changes nothing shown.
    assert (await rotate(api, ada, key["id"]))["__typename"] == "ApiKey"
    recorded = await KeyRotation.get(id=row.id)
    assert recorded.lock_reason == "WINDOW" and recorded.locked_at == row.verification_deadline


async def test_requested_by_names_the_requesting_admin_to_the_institution_and_no_lock_reason_while_open(api):
    ada = await api.admin()
    bob = await api.admin("bob@uni.example")
    eve = await api.admin("eve@other.example", institution="Other")
    key, _ = await released_key(api, ada)
    started = await rotate(api, bob, key["id"])
    assert started["__typename"] == "ApiKey"
    for viewer in (ada, bob):
        rotation = (await shown_key(api, viewer, key["id"]))["rotation"]
        assert rotation["requestedBy"] == "bob@uni.example" and rotation["lockReason"] is None
    assert (await api.data(ROTATION_QUERY, {"id": key["id"]}, eve.token))["key"] is None
    verified = await api.verify(bob, key["id"], await rotation_code(api, bob, 1))
    assert verified["status"] == "ACTIVE"
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"  # not the requester
    assert (await api.reveal(bob, key["id"]))["__typename"] == "KeyCredentials"
    overlap = (await shown_key(api, ada, key["id"]))["rotation"]
    assert overlap["status"] == "OVERLAP" and overlap["lockReason"] is None and overlap["requestedBy"] == bob.email


class TestTheRotationNumbersInThePolicy:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_ROTATION_GRACE_SECONDS": "3600", "KEYRELEASE_ROTATION_MAX_OVERLAP_SECONDS": "172800"}

    async def test_are_the_ones_the_overlap_follows(self, api, clock):
        ada = await api.admin()
        policy = (await api.data("{ policy { rotationGraceSeconds rotationMaxOverlapSeconds } }", token=ada.token))["policy"]
        assert policy == {"rotationGraceSeconds": 3600, "rotationMaxOverlapSeconds": 172800}
        key, old, new = await rotated(api, ada)
        released = clock.now()
        state = (await shown_key(api, ada, key["id"]))["rotation"]
        assert state["oldSecretRetiresAt"].startswith((released + timedelta(seconds=172800)).isoformat()[:19])
        clock.advance(hours=5)
        assert await token_status(api, new["clientId"], new["clientSecret"]) == 200
        clock.advance(seconds=3600)
        assert await token_status(api, old["clientId"], old["clientSecret"]) == 401


async def test_the_policy_shows_the_default_rotation_numbers(api):
    ada = await api.admin()
    policy = (await api.data("{ policy { rotationGraceSeconds rotationMaxOverlapSeconds } }", token=ada.token))["policy"]
    assert policy == {"rotationGraceSeconds": 86400, "rotationMaxOverlapSeconds": 604800}


REVOKE = "mutation($input: RevokeKeyInput!) { revokeKey(input: $input) { __typename ... on ApiKey { status } } }"


async def test_revoking_a_key_ends_its_open_rotation(api, clock):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    queued = await OutboxMessage.filter(key_id=key["id"]).count()
    revoked = (await api.data(REVOKE, {"input": {"keyId": key["id"]}}, ada.token))["revokeKey"]
    assert revoked == {"__typename": "ApiKey", "status": "REVOKED"}
    unknown = await api.verify(ada, "00000000-0000-0000-0000-000000000001", code)
    assert await api.verify(ada, key["id"], code) == unknown  # the generic error, as for an unknown key
    assert await api.resend(ada, key["id"]) == await api.resend(ada, "00000000-0000-0000-0000-000000000001")
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"
    shown = await shown_key(api, ada, key["id"])
    assert shown["status"] == "REVOKED" and shown["rotation"]["status"] == "CANCELLED"
    assert {"type": "ROTATION_CANCELLED", "detail": "revoked"} in shown["events"]
    assert "ROTATION_VERIFIED" not in [event["type"] for event in shown["events"]]
    assert await OutboxMessage.filter(key_id=key["id"]).count() == queued  # nothing more was mailed
    row = await KeyRotation.get(key_id=key["id"])
    assert row.open_key_id is None and row.verified_at is None and row.resends_used == 0


async def test_a_revoked_partner_keys_rotation_mails_no_one_time_password(api, clock):
    ada = await api.admin()
    partner = "pat@partner.example"
    key = await api.create_key(ada, name="Partner feed", kind="PARTNER", partnerEmail=partner)
    assert (await api.verify(ada, key["id"], await rotation_code(api, ada, 1)))["status"] == "ACTIVE"
    assert (await api.reveal(None, key["id"], await api.otp_for(partner)))["__typename"] == "KeyCredentials"
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    queued = await OutboxMessage.filter(key_id=key["id"]).count()
    await api.data(REVOKE, {"input": {"keyId": key["id"]}}, ada.token)
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert await OutboxMessage.filter(key_id=key["id"]).count() == queued  # no one-time password
    assert (await KeyRotation.get(key_id=key["id"])).partner_otp_issued_at is None


async def test_a_leak_of_the_old_secret_ends_the_pending_rotation(api, clock):
    ada = await api.admin()
    key, old = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    outcome = await api.app.state.services.leaks.report(old["clientSecret"], url=None, source="operator")
    assert outcome.verdict.value == "RETIRED"
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    shown = await shown_key(api, ada, key["id"])
    assert shown["status"] == "COMPROMISED" and shown["rotation"]["status"] == "CANCELLED"
    assert {"type": "ROTATION_CANCELLED", "detail": "leak reported"} in shown["events"]


async def test_an_expired_keys_pending_rotation_cannot_be_verified_or_resent(api, clock):
    ada = await api.admin()
    key, _ = await released_key(api, ada, expiresAt=(clock.now() + timedelta(days=1)).isoformat())
    clock.advance(days=1, minutes=-10)
    await rotate(api, ada, key["id"])
    code = await rotation_code(api, ada, 2)
    queued = await OutboxMessage.filter(key_id=key["id"]).count()
    clock.advance(minutes=10)  # the key expires; the rotation's window is still open
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.resend(ada, key["id"]))["__typename"] == "VerificationError"
    row = await KeyRotation.get(key_id=key["id"])
    assert row.verified_at is None and row.resends_used == 0 and row.attempts_used == 0
    assert await OutboxMessage.filter(key_id=key["id"]).count() == queued


async def test_cancel_after_the_window_closed_records_the_lock_and_cancels_nothing(api, clock):
    ada = await api.admin()
    key, old = await released_key(api, ada)
    await rotate(api, ada, key["id"])
    clock.advance(minutes=15)  # the window closed; nothing recorded the lock yet
    late = (await api.data(CANCEL, {"input": {"keyId": key["id"]}}, ada.token))["cancelRotation"]
    assert late == {"__typename": "ValidationError", "message": "This key has no rotation to cancel."}
    row = await KeyRotation.get(key_id=key["id"])
    assert row.cancelled_at is None and row.open_key_id is None
    assert row.lock_reason == "WINDOW" and row.locked_at == row.verification_deadline
    shown = await shown_key(api, ada, key["id"])
    assert shown["rotation"]["status"] == "LOCKED" and shown["rotation"]["lockReason"] == "WINDOW"
    types = [event["type"] for event in shown["events"]]
    assert types.count("ROTATION_LOCKED") == 1 and "ROTATION_CANCELLED" not in types
    # A recorded lock answers the same.
    again = (await api.data(CANCEL, {"input": {"keyId": key["id"]}}, ada.token))["cancelRotation"]
    assert again == late
    assert await token_status(api, old["clientId"], old["clientSecret"]) == 200
