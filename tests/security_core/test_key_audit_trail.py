"""Every step of a key's life leaves an event an auditor can read: what happened, when, and a
detail that counts attempts and resends against their limits and names where mail went with
the address masked (first letter and domain only)."""

from __future__ import annotations

from keyrelease.service.keys import _mask_email
from keyrelease.testing.api import REVOKE_KEY


def trail(key: dict) -> list[tuple[str, str | None]]:
    return [(e["type"], e["detail"]) for e in key["events"]]


async def test_an_institutional_key_records_each_step_with_counted_details(api, clock):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    await api.verify(ada, key["id"], "000000" if code != "000000" else "111111")
    clock.advance(seconds=1)
    await api.resend(ada, key["id"])
    new_code = await api.code_for(ada, nth=2)
    await api.verify(ada, key["id"], new_code)
    await api.reveal(ada, key["id"])
    me = (await api.data("{ me { id } }", token=ada.token))["me"]
    revoked = (await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token))["revokeKey"]
    assert trail(revoked) == [
        ("CREATED", "INSTITUTIONAL"),
        ("CODE_SENT", "to a***@uni.example"),
        ("VERIFICATION_FAILED", "attempt 1 of 5"),
        ("CODE_RESENT", "resend 1 of 3 to a***@uni.example"),
        ("VERIFIED", None),
        ("REVEALED", None),
        ("REVOKED", f"by admin {me['id']}"),
    ]


async def test_a_partner_key_records_the_otp_mail_and_each_failed_retrieval(api):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada, kind="PARTNER", partnerEmail="pat@acme.example")
    await api.verify(ada, key["id"], code)
    for _ in range(5):
        assert (await api.reveal(None, key["id"], otp="AAAA-AAAA-AAAA-AAAA"))["__typename"] == "VerificationError"
    after = await api.key(ada, key["id"])
    assert trail(after) == [
        ("CREATED", "PARTNER"),
        ("CODE_SENT", "to a***@uni.example"),
        ("VERIFIED", None),
        ("PARTNER_OTP_SENT", "to p***@acme.example"),
        ("PARTNER_REVEAL_FAILED", "attempt 1 of 5"),
        ("PARTNER_REVEAL_FAILED", "attempt 2 of 5"),
        ("PARTNER_REVEAL_FAILED", "attempt 3 of 5"),
        ("PARTNER_REVEAL_FAILED", "attempt 4 of 5"),
        ("PARTNER_REVEAL_FAILED", "attempt 5 of 5; retrieval locked"),
    ]


def test_a_masked_address_keeps_the_first_letter_and_the_domain_only():
    assert _mask_email("ada.lovelace@uni.example") == "a***@uni.example"
    assert _mask_email("x@y.example") == "x***@y.example"
    assert _mask_email("no-domain") == "***"
    assert _mask_email("") == "***"
