"""The partner's retrieval takes the right password once, and only while the key is verified,
unrevoked, unexpired, not yet retrieved and not locked by wrong passwords. A wrong password
counts an attempt only against a verified key not yet retrieved; the right password refused
for any of those reasons counts as one too, while it can still count."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from keyrelease.codes import partner_otp
from keyrelease.testing.api import REVOKE_KEY
from keyrelease.testing.settings import SECRET_KEY

PARTNER = {"kind": "PARTNER", "partnerEmail": "pat@acme.example"}
WRONG = "AAAA-AAAA-AAAA-AAAA"


def otp_of(key_id: str) -> str:
    return partner_otp(SECRET_KEY.encode(), uuid.UUID(key_id))


async def failures(api, admin, key_id: str) -> list[str]:
    events = (await api.key(admin, key_id))["events"]
    return [e["detail"] for e in events if e["type"] == "PARTNER_REVEAL_FAILED"]


async def verified_partner_key(api, admin, **fields) -> dict:
    key, code = await api.create_key_with_code(admin, **{**PARTNER, **fields})
    assert (await api.verify(admin, key["id"], code))["__typename"] == "ApiKey"
    return key


async def test_an_unverified_key_refuses_the_right_password_and_counts_nothing(api):
    ada = await api.admin()
    key, _ = await api.create_key_with_code(ada, **PARTNER)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "VerificationError"
    assert (await api.reveal(None, key["id"], WRONG))["__typename"] == "VerificationError"
    assert await failures(api, ada, key["id"]) == []


async def test_after_retrieval_nothing_more_is_given_or_counted(api):
    ada = await api.admin()
    key = await verified_partner_key(api, ada)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "KeyCredentials"
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "VerificationError"
    assert (await api.reveal(None, key["id"], WRONG))["__typename"] == "VerificationError"
    assert await failures(api, ada, key["id"]) == []


async def test_a_revoked_key_refuses_the_right_password_and_counts_it(api):
    ada = await api.admin()
    key = await verified_partner_key(api, ada)
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "VerificationError"
    assert await failures(api, ada, key["id"]) == ["attempt 1 of 5"]


async def test_an_expired_key_refuses_the_right_password_from_its_expiry_on(api, clock):
    ada = await api.admin()
    expires = clock.now() + timedelta(hours=1)
    key = await verified_partner_key(api, ada, expiresAt=expires.isoformat())
    clock.advance(hours=1)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "VerificationError"
    assert await failures(api, ada, key["id"]) == ["attempt 1 of 5"]


async def test_an_unexpired_key_gives_its_secret_a_second_before_expiry(api, clock):
    ada = await api.admin()
    key = await verified_partner_key(api, ada, expiresAt=(clock.now() + timedelta(hours=1)).isoformat())
    clock.advance(hours=1, seconds=-1)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "KeyCredentials"


async def test_the_fifth_wrong_password_locks_and_later_ones_are_not_counted(api):
    ada = await api.admin()
    key = await verified_partner_key(api, ada)
    for _ in range(4):
        await api.reveal(None, key["id"], WRONG)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "KeyCredentials", "four do not lock"

    other = await verified_partner_key(api, ada, partnerEmail="other@acme.example", name="other")
    for _ in range(7):
        await api.reveal(None, other["id"], WRONG)
    assert (await api.reveal(None, other["id"], otp_of(other["id"])))["__typename"] == "VerificationError"
    assert await failures(api, ada, other["id"]) == [f"attempt {n} of 5" for n in range(1, 5)] + ["attempt 5 of 5; retrieval locked"]


async def test_the_password_expires_with_its_ttl_from_verification(api, clock):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada, **PARTNER)
    clock.advance(minutes=4)  # verified later than created: the TTL runs from verification
    verified_at = clock.now()
    assert (await api.verify(ada, key["id"], code))["__typename"] == "ApiKey"
    fields = "query($id: ID!) { key(id: $id) { partnerPasswordExpiresAt } }"
    shown = (await api.data(fields, {"id": key["id"]}, ada.token))["key"]["partnerPasswordExpiresAt"]
    assert datetime.fromisoformat(shown) == verified_at + timedelta(hours=72)
    clock.advance(hours=72, seconds=-1)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "KeyCredentials"


async def test_an_institutional_key_is_never_given_through_the_partner_path(api):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    await api.verify(ada, key["id"], code)
    assert (await api.reveal(None, key["id"], otp_of(key["id"])))["__typename"] == "VerificationError"
    assert (await api.reveal(None, key["id"], WRONG))["__typename"] == "VerificationError"
    assert await failures(api, ada, key["id"]) == []
    assert (await api.reveal(ada, key["id"]))["__typename"] == "KeyCredentials", "still unrevealed for its admin"


async def test_a_control_character_in_the_key_id_is_refused_before_any_read(api):
    ada = await api.admin()
    key = await verified_partner_key(api, ada)
    refused = await api.reveal(None, key["id"] + "\x07", otp_of(key["id"]))
    assert refused["__typename"] == "ValidationError"
    assert await failures(api, ada, key["id"]) == []


async def test_retrieving_one_key_leaves_another_retrievable(api):
    ada = await api.admin()
    first = await verified_partner_key(api, ada)
    second = await verified_partner_key(api, ada, partnerEmail="other@acme.example", name="second")
    assert (await api.reveal(None, first["id"], otp_of(first["id"])))["__typename"] == "KeyCredentials"
    assert (await api.key(ada, second["id"]))["revealed"] is False
    assert (await api.reveal(None, second["id"], otp_of(second["id"])))["__typename"] == "KeyCredentials"


async def test_a_wrong_password_counts_against_its_own_key_only(api):
    ada = await api.admin()
    first = await verified_partner_key(api, ada)
    second = await verified_partner_key(api, ada, partnerEmail="other@acme.example", name="second")
    await api.reveal(None, first["id"], WRONG)
    assert await failures(api, ada, first["id"]) == ["attempt 1 of 5"]
    assert await failures(api, ada, second["id"]) == []
    for _ in range(5):
        await api.reveal(None, first["id"], WRONG)
    assert (await api.reveal(None, second["id"], otp_of(second["id"])))["__typename"] == "KeyCredentials"
