"""The partner's revealKey is counted per client address: the connecting peer, or behind a
trusted proxy the address it forwards; every distinct key ID, readable or not, has a budget
of its own."""

from __future__ import annotations

import uuid

import httpx
import pytest

PARTNER_REVEAL = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) { __typename }
}"""


async def guess(http: httpx.AsyncClient, key_id: str, forwarded_for: str | None = None) -> str:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    variables = {"input": {"keyId": key_id, "oneTimePassword": "AAAA-BBBB-CCCC-DDDD"}}
    body = (await http.post("/graphql", json={"query": PARTNER_REVEAL, "variables": variables}, headers=headers)).json()
    return body["errors"][0]["extensions"]["code"] if "errors" in body else body["data"]["revealKey"]["__typename"]


def client_from(app, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test")


class TestDirectClients:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_PARTNER_IP": "2/minute", "KEYRELEASE_RATE_LIMIT_PARTNER_KEY": "2/minute"}

    async def test_each_peer_address_has_its_own_budget_and_forwarded_headers_are_ignored(self, app):
        async with client_from(app, "192.0.2.10") as first, client_from(app, "192.0.2.11") as second:
            assert [await guess(first, str(uuid.uuid4()), f"198.51.100.{i}") for i in range(3)] == [
                "VerificationError", "VerificationError", "RATE_LIMITED"
            ]
            assert await guess(second, str(uuid.uuid4())) == "VerificationError"


class TestBehindATrustedProxy:
    @pytest.fixture
    def env_overrides(self):
        return {
            "KEYRELEASE_TRUSTED_PROXIES": "10.0.0.0/8",
            "KEYRELEASE_RATE_LIMIT_PARTNER_IP": "2/minute",
            "KEYRELEASE_RATE_LIMIT_PARTNER_KEY": "2/minute",
        }

    async def test_each_forwarded_address_has_its_own_budget(self, app):
        async with client_from(app, "10.0.0.2") as proxy:
            assert [await guess(proxy, str(uuid.uuid4()), "198.51.100.1") for _ in range(3)] == [
                "VerificationError", "VerificationError", "RATE_LIMITED"
            ]
            assert await guess(proxy, str(uuid.uuid4()), "198.51.100.2") == "VerificationError"


class TestPerKey:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_PARTNER_IP": "100/minute", "KEYRELEASE_RATE_LIMIT_PARTNER_KEY": "1/minute"}

    async def test_unreadable_key_ids_are_counted_each_on_its_own(self, client):
        assert [await guess(client, f"not-a-key-{i}") for i in range(3)] == ["VerificationError"] * 3
        assert await guess(client, "not-a-key-0") == "RATE_LIMITED"
