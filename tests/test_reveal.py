"""Releasing credentials: institutional reveal once, partner retrieval with the emailed OTP."""

from __future__ import annotations

import json

import pytest

import dbutil
from keyrelease import credentials
from keyrelease.credentials import hash_secret
from keyrelease.service.results import GENERIC_VERIFICATION_ERROR

PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}


async def activate(api, admin, **fields):
    key, code = await api.create_key_with_code(admin, **fields)
    verified = await api.verify(admin, key["id"], code)
    assert verified["status"] == "ACTIVE", verified
    return verified


async def test_institutional_secret_is_revealed_exactly_once(api, settings):
    ada = await api.admin()
    key = await activate(api, ada)
    creds = await api.reveal(ada, key["id"])
    assert creds["__typename"] == "KeyCredentials"
    assert creds["clientId"] == key["clientId"]
    assert creds["clientId"].startswith("us-east-1#")
    secret = creds["clientSecret"]
    assert credentials.is_client_secret(secret)  # krs_ + 256 random bits in base62 + checksum
    assert (await api.reveal(ada, key["id"])) == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}
    after = await api.key(ada, key["id"])
    assert after["revealed"] is True
    assert [e["type"] for e in after["events"]][-1] == "REVEALED"
    [row] = await dbutil.query(settings.database_url, "SELECT secret_hash FROM api_key WHERE id = ?", key["id"])
    stored = row["secret_hash"]
    assert stored == hash_secret(secret)


async def test_no_secret_exists_before_reveal(api, settings):
    ada = await api.admin()
    key = await activate(api, ada)
    [row] = await dbutil.query(settings.database_url, "SELECT secret_hash FROM api_key WHERE id = ?", key["id"])
    stored = row["secret_hash"]
    assert stored is None


async def test_pending_key_cannot_be_revealed(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"
    assert (await api.key(ada, key["id"]))["revealed"] is False


async def test_each_secret_is_different(api):
    ada = await api.admin()
    secrets_seen = set()
    for _ in range(3):
        key = await activate(api, ada)
        secrets_seen.add((await api.reveal(ada, key["id"]))["clientSecret"])
    assert len(secrets_seen) == 3


async def test_no_partner_mail_before_verification(api):
    ada = await api.admin()
    key = await api.create_key(ada, **PARTNER)
    await api.code_for(ada)
    assert not [m for m in api.mailbox.messages if m.to == PARTNER["partnerEmail"]]
    assert "PARTNER_OTP_SENT" not in [e["type"] for e in key["events"]]


async def test_partner_gets_an_otp_and_retrieves_the_key_once(api):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    assert [e["type"] for e in key["events"]][-2:] == ["VERIFIED", "PARTNER_OTP_SENT"]
    [mail] = await api.mails_to(PARTNER["partnerEmail"])
    otp = await api.otp_for(PARTNER["partnerEmail"])
    assert len(otp.replace("-", "")) * 5 >= 80
    assert f"Key ID: {key['id']}" in mail.text
    assert key["clientId"] not in mail.text
    creds = await api.reveal(None, key["id"], otp)
    assert creds["__typename"] == "KeyCredentials"
    assert creds["clientId"] == key["clientId"]
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "VerificationError"
    events = [e["type"] for e in (await api.key(ada, key["id"]))["events"]]
    assert events[-1] == "PARTNER_REVEALED"


async def test_partner_otp_accepts_lower_case_and_no_dashes(api):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    otp = (await api.otp_for(PARTNER["partnerEmail"])).replace("-", "").lower()
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "KeyCredentials"


async def test_creating_admin_cannot_reveal_a_partner_key(api):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"
    otp = await api.otp_for(PARTNER["partnerEmail"])
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "KeyCredentials"


async def test_five_wrong_otps_lock_partner_retrieval(api):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    for _ in range(5):
        assert (await api.reveal(None, key["id"], "AAAA-AAAA-AAAA-AAAA"))["__typename"] == "VerificationError"
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "VerificationError"
    failed = [e for e in (await api.key(ada, key["id"]))["events"] if e["type"] == "PARTNER_REVEAL_FAILED"]
    assert len(failed) == 5
    assert "locked" in failed[-1]["detail"]


async def test_partner_otp_expires_after_72_hours(api, clock):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    clock.advance(hours=72)
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "VerificationError"


async def test_partner_otp_works_just_before_it_expires(api, clock):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    clock.advance(hours=72, seconds=-1)
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "KeyCredentials"


async def test_another_keys_otp_does_not_work(api):
    ada = await api.admin()
    first = await activate(api, ada, **PARTNER)
    second = await activate(api, ada, **{**PARTNER, "partnerEmail": "other@acme.example"})
    otp_first = await api.otp_for(PARTNER["partnerEmail"])
    assert (await api.reveal(None, second["id"], otp_first))["__typename"] == "VerificationError"
    assert (await api.reveal(None, first["id"], otp_first))["__typename"] == "KeyCredentials"


@pytest.mark.parametrize("otp", ["", "short", "A" * 500, "0000-0000-0000-0000"])
async def test_malformed_otps_are_the_generic_error(api, otp):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    result = await api.reveal(None, key["id"], otp)
    assert result == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}


async def test_partner_failures_are_identical(api):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    pending = await api.create_key(ada, **{**PARTNER, "partnerEmail": "p2@acme.example"})
    institutional = await activate(api, ada)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    bodies = set()
    for key_id, candidate in [
        (key["id"], "AAAA-AAAA-AAAA-AAAA"),
        (pending["id"], otp),
        (institutional["id"], otp),
        ("00000000-0000-0000-0000-000000000000", otp),
        ("nonsense", otp),
    ]:
        response = await api.post(
            "mutation($i: RevealKeyInput!) { revealKey(input: $i) { __typename ... on Error { message } } }",
            {"i": {"keyId": key_id, "oneTimePassword": candidate}},
        )
        bodies.add((response.status_code, response.content))
    [(status, body)] = bodies  # byte for byte the same answer, and it is the generic error
    assert status == 200
    assert json.loads(body) == {"data": {"revealKey": {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}}}
