"""The verification rules, through GraphQL over HTTP against the real database."""

from __future__ import annotations

import pytest

from keyrelease.service.results import GENERIC_VERIFICATION_ERROR


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def events(key: dict) -> list[str]:
    return [e["type"] for e in key["events"]]


async def test_new_key_is_pending_and_its_code_goes_to_the_creating_admin(api):
    ada = await api.admin()
    key = await api.create_key(ada, name="Nightly export")
    assert key["__typename"] == "ApiKey"
    assert key["status"] == "PENDING_VERIFICATION"
    assert key["attemptsRemaining"] == 5 and key["resendsRemaining"] == 3
    assert events(key) == ["CREATED", "CODE_SENT"]
    [mail] = await api.mails_to(ada.email)
    code = await api.code_for(ada)
    assert len(code) == 6 and code.isdigit()
    assert "Nightly export" in mail.subject
    assert "expires at" in mail.text
    assert key["clientId"] not in mail.text and key["id"] not in mail.text


async def test_code_email_says_when_the_code_expires(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    [mail] = await api.mails_to(ada.email)
    assert "The code expires at 2030-01-01 12:05:00 (UTC)." in mail.text
    assert key["codeExpiresAt"].startswith("2030-01-01T12:05:00")


async def test_right_code_activates_the_key(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    verified = await api.verify(ada, key["id"], await api.code_for(ada))
    assert verified["__typename"] == "ApiKey"
    assert verified["status"] == "ACTIVE"
    assert verified["codeExpiresAt"] is None
    assert events(verified) == ["CREATED", "CODE_SENT", "VERIFIED"]


async def test_code_address_is_the_one_on_file_at_creation(api):
    from keyrelease.models import Admin

    ada = await api.admin()
    key = await api.create_key(ada)
    await Admin.filter(email=ada.email).update(email="someone-else@evil.example")
    await api.resend(ada, key["id"])
    mails = await api.mails_to(ada.email, count=2)
    assert len(mails) == 2
    assert not [m for m in api.mailbox.messages if m.to == "someone-else@evil.example"]


async def test_code_is_valid_for_five_minutes(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    clock.advance(300)
    result = await api.verify(ada, key["id"], code)
    assert result["__typename"] == "VerificationError"
    assert (await api.key(ada, key["id"]))["attemptsRemaining"] == 4


async def test_code_still_works_just_before_it_expires(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    clock.advance(299)
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"


async def test_resend_invalidates_the_previous_code(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    first = await api.code_for(ada)
    resent = await api.resend(ada, key["id"])
    assert resent["resendsRemaining"] == 2
    second = await api.code_for(ada, nth=2)
    assert first != second
    assert (await api.verify(ada, key["id"], first))["__typename"] == "VerificationError"
    assert (await api.verify(ada, key["id"], second))["status"] == "ACTIVE"


async def test_at_most_three_resends(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    for remaining in (2, 1, 0):
        assert (await api.resend(ada, key["id"]))["resendsRemaining"] == remaining
    refused = await api.resend(ada, key["id"])
    assert refused == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}
    await api.mails_to(ada.email, count=4)
    assert len([m for m in api.mailbox.messages if m.to == ada.email]) == 4
    assert events(await api.key(ada, key["id"])).count("CODE_RESENT") == 3


async def test_resend_keeps_attempts_and_window(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    await api.verify(ada, key["id"], wrong(code))
    await api.verify(ada, key["id"], wrong(code))
    clock.advance(600)
    resent = await api.resend(ada, key["id"])
    assert resent["attemptsRemaining"] == 3
    assert resent["verificationDeadline"] == key["verificationDeadline"]
    # The new code is cut short by the window: 5 minutes from now would pass the deadline.
    assert resent["codeExpiresAt"] == key["verificationDeadline"]


async def test_fifth_wrong_code_locks_the_key(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    for left in (4, 3, 2, 1):
        assert (await api.verify(ada, key["id"], wrong(code)))["__typename"] == "VerificationError"
        assert (await api.key(ada, key["id"]))["attemptsRemaining"] == left
    await api.verify(ada, key["id"], wrong(code))
    locked = await api.key(ada, key["id"])
    assert locked["status"] == "LOCKED"
    assert locked["attemptsRemaining"] == 0
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.key(ada, key["id"]))["status"] == "LOCKED"
    lock_events = [e for e in locked["events"] if e["type"] == "LOCKED"]
    assert [e["detail"] for e in lock_events] == ["ATTEMPTS"]
    assert events(locked).count("VERIFICATION_FAILED") == 5


async def test_attempts_count_across_codes(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    first = await api.code_for(ada)
    for _ in range(3):
        await api.verify(ada, key["id"], wrong(first))
    await api.resend(ada, key["id"])
    second = await api.code_for(ada, nth=2)
    await api.verify(ada, key["id"], first)  # superseded: counts
    await api.verify(ada, key["id"], wrong(second))
    assert (await api.key(ada, key["id"]))["status"] == "LOCKED"
    assert (await api.verify(ada, key["id"], second))["__typename"] == "VerificationError"


async def test_key_locks_when_its_window_closes_even_if_nobody_asks(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    clock.advance(899)
    assert (await api.key(ada, key["id"]))["status"] == "PENDING_VERIFICATION"
    clock.advance(1)
    assert (await api.key(ada, key["id"]))["status"] == "LOCKED"


async def test_window_is_fifteen_minutes_whatever_the_resends(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    await api.code_for(ada)
    clock.advance(890)
    await api.resend(ada, key["id"])
    code = await api.code_for(ada, nth=2)
    clock.advance(10)
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.resend(ada, key["id"]))["__typename"] == "VerificationError"
    locked = await api.key(ada, key["id"])
    assert locked["status"] == "LOCKED"
    assert [e["detail"] for e in locked["events"] if e["type"] == "LOCKED"] == ["WINDOW"]


async def test_sweeper_records_window_locks(app, api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    clock.advance(901)
    assert await app.state.services.keys.record_window_locks() == 1
    assert await app.state.services.keys.record_window_locks() == 0
    locked = await api.key(ada, key["id"])
    [event] = [e for e in locked["events"] if e["type"] == "LOCKED"]
    assert event["detail"] == "WINDOW"
    assert event["at"] == locked["verificationDeadline"]


async def test_locked_key_can_never_be_activated_or_revealed(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    for _ in range(5):
        await api.verify(ada, key["id"], wrong(code))
    assert (await api.resend(ada, key["id"]))["__typename"] == "VerificationError"
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"
    clock.advance(3600)
    assert (await api.key(ada, key["id"]))["status"] == "LOCKED"


async def test_verified_key_cannot_be_verified_again(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    await api.verify(ada, key["id"], code)
    again = await api.verify(ada, key["id"], code)
    assert again == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}
    after = await api.key(ada, key["id"])
    assert events(after).count("VERIFIED") == 1


@pytest.mark.parametrize("code", ["12345", "1234567", "12 456", "abcdef", "", "١٢٣٤٥٦"])
async def test_malformed_codes_are_a_validation_error_and_do_not_count(api, code):
    ada = await api.admin()
    key = await api.create_key(ada)
    result = await api.verify(ada, key["id"], code)
    assert result["__typename"] == "ValidationError"
    assert result["field"] == "code"
    assert (await api.key(ada, key["id"]))["attemptsRemaining"] == 5
