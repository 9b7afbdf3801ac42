"""Rule 7: every verifyKey failure looks the same from outside: type, message, status,
extensions, and the time it takes (a floor that covers the slowest failure path)."""

from __future__ import annotations

import time
import uuid

from keyrelease.service.results import GENERIC_VERIFICATION_ERROR
from keyrelease.testing.api import VERIFY_KEY


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def raw_verify(api, admin, key_id, code):
    started = time.perf_counter()
    response = await api.post(VERIFY_KEY, {"input": {"keyId": key_id, "code": code}}, admin.token)
    return response, time.perf_counter() - started


async def test_every_verification_failure_is_identical(api, clock):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")  # same institution, not the creator
    eve = await api.admin("eve@other.example", institution="Other College")

    async def fresh_key():
        return await api.create_key_with_code(ada)

    cases = {}
    key, code = await fresh_key()
    cases["wrong code"] = (ada, key["id"], wrong(code))

    key, code = await fresh_key()
    await api.resend(ada, key["id"])
    cases["superseded code"] = (ada, key["id"], code)

    key, code = await fresh_key()
    for _ in range(5):
        await api.verify(ada, key["id"], wrong(code))
    cases["locked key"] = (ada, key["id"], code)

    key, code = await fresh_key()
    await api.verify(ada, key["id"], code)
    cases["already verified"] = (ada, key["id"], code)

    key, code = await fresh_key()
    cases["another admin's key"] = (bob, key["id"], code)
    cases["another institution's key"] = (eve, key["id"], code)
    cases["unknown key"] = (ada, str(uuid.uuid4()), code)
    cases["malformed key id"] = (ada, "not-a-key-id", code)

    expired_key, expired_code = await fresh_key()
    window_key, window_code = await fresh_key()

    responses = {}
    for name, (admin, key_id, c) in cases.items():
        responses[name] = (await raw_verify(api, admin, key_id, c))[0]
    clock.advance(301)
    responses["expired code"] = (await raw_verify(api, ada, expired_key["id"], expired_code))[0]
    clock.advance(900)
    responses["key past its window"] = (await raw_verify(api, ada, window_key["id"], window_code))[0]

    expected = {"data": {"verifyKey": {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}}}
    for name, response in responses.items():
        assert response.status_code == 200, name
        assert response.json() == expected, name
        assert response.headers["content-type"] == responses["wrong code"].headers["content-type"], name
    bodies = {r.content for r in responses.values()}
    assert len(bodies) == 1


async def test_failures_by_others_do_not_count_against_the_key(api):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    for _ in range(6):
        assert (await api.verify(bob, key["id"], wrong(code)))["__typename"] == "VerificationError"
    assert (await api.verify(bob, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.resend(bob, key["id"]))["__typename"] == "VerificationError"
    mine = await api.key(ada, key["id"])
    assert mine["attemptsRemaining"] == 5 and mine["resendsRemaining"] == 3
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"


async def test_failures_take_at_least_the_floor_whatever_the_cause(api, settings):
    """The unknown-key path only reads; the wrong-code path writes. Both answer after the
    same floor, so the difference does not show."""
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    floor = settings.policy.failure_floor_ms / 1000
    _, unknown = await raw_verify(api, ada, str(uuid.uuid4()), code)
    _, wrong_code = await raw_verify(api, ada, key["id"], wrong(code))
    _, malformed = await raw_verify(api, ada, "x", code)
    assert min(unknown, wrong_code, malformed) >= floor
