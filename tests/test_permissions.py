"""Who may do what: tokens, institutions, creators, revocation, the pending-key cap."""

from __future__ import annotations

import pytest

from keyrelease.testing.api import CREATE_KEY, KEY_QUERY, REVOKE_KEY


async def test_requests_without_a_token_are_unauthenticated(api):
    body = await api.gql(CREATE_KEY, {"input": {"name": "x", "kind": "INSTITUTIONAL"}})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize("header", ["Bearer kra_wrong", "Bearer ", "Basic abc", "kra_x", "Bearer " + "x" * 5000])
async def test_a_wrong_token_is_unauthenticated(api, client, header):
    response = await client.post("/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": header})
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_me_names_the_admin_and_institution(api):
    ada = await api.admin()
    me = (await api.data("{ me { email name institution { name } } }", token=ada.token))["me"]
    assert me == {"email": ada.email, "name": "Ada", "institution": {"name": ada.institution}}


async def test_another_institution_cannot_see_a_key(api):
    ada = await api.admin("ada@uni.example")
    eve = await api.admin("eve@other.example", institution="Other College")
    key = await api.create_key(ada)
    assert (await api.data(KEY_QUERY, {"id": key["id"]}, eve.token))["key"] is None
    listed = await api.data("{ keys { edges { node { id } } } }", token=eve.token)
    assert listed["keys"]["edges"] == []
    revoked = (await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, eve.token))["revokeKey"]
    assert revoked["__typename"] == "KeyNotFoundError"
    assert (await api.key(ada, key["id"]))["status"] == "PENDING_VERIFICATION"


async def test_colleagues_see_the_key_but_only_the_creator_verifies_and_reveals(api):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")
    key = await api.create_key(ada)
    assert (await api.key(bob, key["id"]))["id"] == key["id"]
    await api.verify(ada, key["id"], await api.code_for(ada))
    assert (await api.reveal(bob, key["id"]))["__typename"] == "VerificationError"
    assert (await api.reveal(ada, key["id"]))["__typename"] == "KeyCredentials"


async def test_any_admin_of_the_institution_revokes_for_good(api):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    revoked = (await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, bob.token))["revokeKey"]
    assert revoked["status"] == "REVOKED"
    assert (await api.verify(ada, key["id"], code))["__typename"] == "VerificationError"
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"
    again = (await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token))["revokeKey"]
    assert again["status"] == "REVOKED"
    assert [e["type"] for e in again["events"]].count("REVOKED") == 1


async def test_revoking_an_active_key_before_reveal_prevents_reveal(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    await api.verify(ada, key["id"], await api.code_for(ada))
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"


async def test_pending_keys_per_admin_are_capped(api, clock):
    ada = await api.admin()
    for _ in range(5):
        assert (await api.create_key(ada))["__typename"] == "ApiKey"
    refused = await api.create_key(ada)
    assert refused["__typename"] == "PendingKeyLimitError"
    assert refused["limit"] == 5
    clock.advance(900)  # their windows close: they are LOCKED, no longer pending
    assert (await api.create_key(ada))["__typename"] == "ApiKey"


async def test_pending_cap_is_per_admin(api):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")
    for _ in range(5):
        await api.create_key(ada)
    assert (await api.create_key(bob))["__typename"] == "ApiKey"


async def test_a_sent_token_that_is_wrong_expired_or_revoked_is_named_not_accepted_alike(api, client, clock):
    """A client that sent a token learns that it was not accepted (not that none was sent);
    which of wrong, expired or revoked is not said."""
    from keyrelease.service.admins import issue_token_for, revoke_token

    ada = await api.admin()
    expiring = await issue_token_for(clock, ada.email, ttl_days=1)
    revoked = await issue_token_for(clock, ada.email)
    await revoke_token(clock, revoked)
    assert "errors" not in await api.gql("{ me { email } }", token=expiring)
    clock.advance(2 * 86400)

    answers = []
    for token in ("kra_" + "x" * 40, expiring, revoked):
        body = await api.gql("{ me { email } }", token=token)
        [error] = body["errors"]
        answers.append((error["message"], error["extensions"]))
    assert len(set(map(repr, answers))) == 1, answers
    message, extensions = answers[0]
    assert extensions == {"code": "UNAUTHENTICATED"}
    assert message == "The admin token was not accepted: it is wrong, expired or revoked."

    # No header at all keeps the instruction of how to send one.
    [missing] = (await api.gql("{ me { email } }"))["errors"]
    assert missing["message"] != message and "Authorization: Bearer" in missing["message"]
