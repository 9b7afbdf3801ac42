"""An admin reveals an institutional key's secret once, only their own, only once verified,
and not after it was revoked or expired (a second before expiry still works)."""

from __future__ import annotations

from datetime import timedelta

from keyrelease.testing.api import REVOKE_KEY


async def verified_key(api, admin, **fields) -> dict:
    key, code = await api.create_key_with_code(admin, **fields)
    assert (await api.verify(admin, key["id"], code))["__typename"] == "ApiKey"
    return key


async def test_an_expired_key_is_not_revealed_from_its_expiry_on(api, clock):
    ada = await api.admin()
    soon = await verified_key(api, ada, expiresAt=(clock.now() + timedelta(hours=1)).isoformat())
    later = await verified_key(api, ada, expiresAt=(clock.now() + timedelta(hours=1)).isoformat())
    clock.advance(hours=1, seconds=-1)
    assert (await api.reveal(ada, later["id"]))["__typename"] == "KeyCredentials"
    clock.advance(seconds=1)
    assert (await api.reveal(ada, soon["id"]))["__typename"] == "VerificationError"


async def test_a_revoked_key_is_not_revealed(api):
    ada = await api.admin()
    key = await verified_key(api, ada)
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"


async def test_a_colleague_cannot_reveal_the_key_and_revealing_one_key_leaves_the_other(api):
    ada = await api.admin("ada@uni.example", "Example University")
    bob = await api.admin("bob@uni.example", "Example University")
    first = await verified_key(api, ada)
    second = await verified_key(api, ada)
    assert (await api.reveal(bob, first["id"]))["__typename"] == "VerificationError"
    assert (await api.reveal(ada, first["id"]))["__typename"] == "KeyCredentials"
    assert (await api.key(ada, second["id"]))["revealed"] is False
    assert (await api.reveal(ada, second["id"]))["__typename"] == "KeyCredentials"
