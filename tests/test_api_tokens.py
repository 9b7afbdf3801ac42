"""An admin's API tokens through GraphQL: created named with a bounded expiry and shown once,
hashed at rest, listed (the CLI's too) with their last use, revoked at once, each admin's own."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st

import dbutil
from keyrelease import credentials
from keyrelease.service import api_tokens
from keyrelease.testing.api import AdminUser, Api
from test_fuzz import cases, check, ids, json_values

TOKEN_FIELDS = "id name status createdAt expiresAt lastUsedAt revokedAt inUse"
CREATE = f"""
mutation($input: CreateApiTokenInput!) {{
  createApiToken(input: $input) {{
    __typename
    ... on CreatedApiToken {{ value token {{ {TOKEN_FIELDS} }} }}
    ... on Error {{ message }}
    ... on ValidationError {{ field }}
    ... on ApiTokenLimitError {{ limit }}
  }}
}}"""
REVOKE = f"""
mutation($input: RevokeApiTokenInput!) {{
  revokeApiToken(input: $input) {{
    __typename
    ... on ApiToken {{ {TOKEN_FIELDS} }}
    ... on Error {{ message }}
  }}
}}"""
LIST = f"{{ apiTokens {{ {TOKEN_FIELDS} }} }}"
ME = "{ me { email } }"


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def create(api: Api, admin: AdminUser, name: str = "deploy bot", expires_in: timedelta = timedelta(days=30),
                 token: str | None = None) -> dict:
    expires_at = api.app.state.services.clock.now() + expires_in
    variables = {"input": {"name": name, "expiresAt": iso(expires_at)}}
    return (await api.data(CREATE, variables, token or admin.token))["createApiToken"]


async def listed(api: Api, token: str) -> list[dict]:
    return (await api.data(LIST, token=token))["apiTokens"]


async def revoke(api: Api, token: str, token_id: str) -> dict:
    return (await api.data(REVOKE, {"input": {"id": token_id}}, token))["revokeApiToken"]


def refused(body: dict) -> bool:
    return body.get("data") is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_created_token_is_shown_once_works_and_rests_only_as_its_hash(api, settings, clock):
    ada = await api.admin()
    created = await create(api, ada, name="  deploy bot ")
    assert created["__typename"] == "CreatedApiToken"
    value, token = created["value"], created["token"]
    assert value.startswith(credentials.ADMIN_TOKEN_PREFIX)
    assert token["name"] == "deploy bot" and token["status"] == "ACTIVE" and not token["inUse"]
    assert token["createdAt"] == iso(clock.now()) and token["expiresAt"] == iso(clock.now() + timedelta(days=30))
    assert (await api.data(ME, token=value))["me"]["email"] == ada.email

    listing = await api.post(LIST, token=value)
    assert value not in listing.text  # never shown again, not even to itself
    rows = await dbutil.query(settings.database_url, "SELECT name, token_hash FROM admin_token WHERE name = ?", "deploy bot")
    assert rows == [{"name": "deploy bot", "token_hash": credentials.hash_secret(value)}]
    assert value not in await dbutil.dump(settings.database_url)


async def test_the_list_has_the_cli_token_marks_the_one_in_use_and_shows_no_value(api):
    ada = await api.admin()
    first = await create(api, ada, name="first")
    second = await create(api, ada, name="second")
    tokens = await listed(api, first["value"])
    assert [t["name"] for t in tokens] == ["second", "first", "cli"]
    assert [t["inUse"] for t in tokens] == [False, True, False]
    assert [t["id"] for t in tokens[:2]] == [second["token"]["id"], first["token"]["id"]]
    assert [t["inUse"] for t in await listed(api, ada.token)] == [False, False, True]


async def test_last_use_is_recorded_with_the_clock_at_the_next_flush_not_per_request(api, clock):
    ada = await api.admin()
    created = await create(api, ada)
    recorder = api.app.state.services.last_use
    await recorder.flush()
    clock.advance(minutes=5)
    used_at = clock.now()
    await api.data(ME, token=created["value"])
    clock.advance(minutes=1)
    await api.data(ME, token=ada.token)
    [new, _cli] = await listed(api, ada.token)
    assert new["lastUsedAt"] is None  # remembered, not yet written
    assert recorder.pending_tokens[int(new["id"])] == used_at
    await recorder.flush()
    [new, cli] = await listed(api, ada.token)
    assert new["lastUsedAt"] == iso(used_at)
    assert cli["lastUsedAt"] == iso(clock.now())


async def test_a_revoked_token_is_refused_with_the_very_next_request(api, clock):
    ada = await api.admin()
    created = await create(api, ada)
    value, token_id = created["value"], created["token"]["id"]
    assert (await api.data(ME, token=value))["me"]["email"] == ada.email
    revoked = await revoke(api, ada.token, token_id)
    assert revoked["__typename"] == "ApiToken"
    assert (revoked["status"], revoked["revokedAt"]) == ("REVOKED", iso(clock.now()))
    assert refused(await api.gql(ME, token=value))
    clock.advance(seconds=30)
    again = await revoke(api, ada.token, token_id)
    assert again["revokedAt"] == revoked["revokedAt"]  # revoking twice keeps the first time


async def test_an_admin_may_revoke_the_token_the_request_is_sent_with(api):
    ada = await api.admin()
    created = await create(api, ada)
    value = created["value"]
    revoked = await revoke(api, value, created["token"]["id"])
    assert (revoked["status"], revoked["inUse"]) == ("REVOKED", True)
    assert refused(await api.gql(LIST, token=value))


async def test_a_token_stops_at_its_expiry(api, clock):
    ada = await api.admin()
    created = await create(api, ada, expires_in=timedelta(days=7))
    clock.advance(days=7, seconds=-1)
    assert (await api.data(ME, token=created["value"]))["me"]["email"] == ada.email
    clock.advance(seconds=1)
    assert refused(await api.gql(ME, token=created["value"]))
    # live tokens come first in the list, then the ended ones
    assert [(t["name"], t["status"]) for t in await listed(api, ada.token)] == [("cli", "ACTIVE"), ("deploy bot", "EXPIRED")]


async def test_another_admins_token_is_neither_listed_nor_revocable_and_looks_unknown(api):
    ada = await api.admin()
    bob = await api.admin(email="bob@uni.example")
    adas = await create(api, ada)
    assert [t["name"] for t in await listed(api, bob.token)] == ["cli"]
    theirs = await revoke(api, bob.token, adas["token"]["id"])
    unknown = await revoke(api, bob.token, "999999")
    malformed = await revoke(api, bob.token, "not-an-id")
    assert theirs == unknown == malformed == {
        "__typename": "ApiTokenNotFoundError", "message": api_tokens.ApiTokenNotFound.message
    }
    assert (await api.data(ME, token=adas["value"]))["me"]["email"] == ada.email


@pytest.mark.parametrize(
    ("name", "expires_in", "field", "message"),
    [
        ("  ", timedelta(days=1), "name", "Name must not be empty."),
        ("x" * 101, timedelta(days=1), "name", "Name must be at most 100 characters."),
        ("bad\u202ename", timedelta(days=1), "name", "The name must not contain control characters (found U+202E)."),
        ("ok", timedelta(0), "expiresAt", "The expiry date must be in the future."),
        ("ok", timedelta(days=90, seconds=1), "expiresAt", "The expiry date must be at most 90 days from now."),
    ],
)
async def test_bad_input_is_refused_clearly_and_nothing_is_written(api, name, expires_in, field, message):
    ada = await api.admin()
    result = await create(api, ada, name=name, expires_in=expires_in)
    assert result == {"__typename": "ValidationError", "message": message, "field": field}
    assert [t["name"] for t in await listed(api, ada.token)] == ["cli"]


async def test_the_expiry_is_required_and_must_carry_a_time_zone(api, clock):
    ada = await api.admin()
    missing = await api.gql("mutation { createApiToken(input: {name: \"x\"}) { __typename } }", token=ada.token)
    assert "expiresAt" in missing["errors"][0]["message"]
    naive = (clock.now() + timedelta(days=1)).replace(tzinfo=None).isoformat()
    result = (await api.data(CREATE, {"input": {"name": "x", "expiresAt": naive}}, ada.token))["createApiToken"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "expiresAt")


class TestTheMaximumLifetimeIsASetting:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_API_TOKEN_MAX_LIFETIME_DAYS": "7"}

    async def test_beyond_it_is_refused(self, api):
        ada = await api.admin()
        assert (await create(api, ada, expires_in=timedelta(days=7)))["__typename"] == "CreatedApiToken"
        refusal = await create(api, ada, expires_in=timedelta(days=8))
        assert refusal["message"] == "The expiry date must be at most 7 days from now."


async def test_parallel_creations_never_pass_the_live_token_limit(api, clock):
    ada = await api.admin()  # its CLI token is one of the live ones
    results = await asyncio.gather(*(create(api, ada, name=f"t{i}") for i in range(api_tokens.MAX_LIVE_TOKENS + 5)))
    kinds = [r["__typename"] for r in results]
    assert kinds.count("CreatedApiToken") == api_tokens.MAX_LIVE_TOKENS - 1
    limited = [r for r in results if r["__typename"] == "ApiTokenLimitError"]
    assert len(limited) == 6 and limited[0]["limit"] == api_tokens.MAX_LIVE_TOKENS
    # A revoked or expired token frees its place.
    some = next(r for r in results if r["__typename"] == "CreatedApiToken")
    await revoke(api, ada.token, some["token"]["id"])
    assert (await create(api, ada, name="after a revocation"))["__typename"] == "CreatedApiToken"


class TestTheMutationsCountAgainstTheAdminsMutationLimit:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_ADMIN": "2/minute"}

    async def test_the_third_mutation_in_a_minute_is_refused(self, api):
        ada = await api.admin()
        first = await create(api, ada)
        await revoke(api, ada.token, first["token"]["id"])
        third = await api.gql(REVOKE, {"input": {"id": first["token"]["id"]}}, ada.token)
        assert third["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_disabled_admins_api_tokens_are_refused(api, clock):
    from keyrelease.service.offboarding import disable_admin

    ada = await api.admin()
    created = await create(api, ada)
    await disable_admin(clock, ada.email)
    assert refused(await api.gql(ME, token=created["value"]))


async def test_no_token_value_reaches_a_log_or_another_response(api, caplog):
    caplog.set_level(logging.DEBUG)
    responses: list[str] = []

    async def record(response: Any) -> None:
        await response.aread()
        responses.append(response.text)

    api.client.event_hooks["response"].append(record)
    ada = await api.admin()
    created = await create(api, ada)
    value = created["value"]
    await api.data(ME, token=value)
    await revoke(api, value, created["token"]["id"])
    await api.gql(ME, token=value)
    assert [text for text in responses if value in text] == [responses[0]]  # the creation's answer only
    assert value not in "\n".join(record.getMessage() for record in caplog.records)
    assert any("created API token" in r.getMessage() for r in caplog.records)


async def test_fuzzed_token_mutations_never_fail_inside(api, caplog):
    """Generated inputs for both mutations (test_fuzz.py's values, real and random ids, aware,
    naive and malformed expiries): no 5xx, no internal error, nothing logged at ERROR."""
    caplog.set_level(logging.DEBUG)
    ada = await api.admin()
    spare = (await create(api, ada, name="spare"))["token"]["id"]
    expiries = st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        st.datetimes().map(datetime.isoformat),
        st.text(max_size=30),
        json_values,
    )
    documents = st.one_of(
        st.builds(lambda name, expires: (CREATE, {"input": {"name": name, "expiresAt": expires}}),
                  st.one_of(st.text(max_size=120), json_values), expiries),
        st.builds(lambda token_id, real: (REVOKE, {"input": {"id": spare if real else token_id}}),
                  st.one_of(ids, json_values), st.booleans()),
        st.builds(lambda value: (CREATE, {"input": value}), json_values),
    )
    for document, variables in cases(documents, 300):
        response = await api.client.post(
            "/graphql",
            content=json.dumps({"query": document, "variables": variables}, default=str),
            headers={"content-type": "application/json", "Authorization": f"Bearer {ada.token}"},
        )
        check(response, "graphql api tokens", caplog)
