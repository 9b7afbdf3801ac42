"""Every answer of the token endpoint is counted under one outcome: a request the service
could not serve (5xx) is an error, every other refusal that is not about the client's
credentials or its rate is an invalid request."""

from __future__ import annotations

from prometheus_client import REGISTRY
from tortoise.exceptions import DBConnectionError

from keyrelease.testing.tokens import FORM, GRANT, basic_auth

LOGIN = "/ids/auth/login"
UNKNOWN = basic_auth("us-east-1#00000000-0000-0000-0000-000000000000", "no-such-secret")
OUTCOMES = ("granted", "invalid_client", "rate_limited", "error", "invalid_request")


def counts() -> dict[str, float]:
    return {o: REGISTRY.get_sample_value("keyrelease_token_requests_total", {"outcome": o}) or 0.0 for o in OUTCOMES}


async def counted(client, **request) -> dict[str, float]:
    before = counts()
    await client.post(LOGIN, **request)
    after = counts()
    return {o: after[o] - before[o] for o in OUTCOMES if after[o] != before[o]}


async def test_malformed_and_oversize_requests_count_as_invalid_requests(client):
    headers = {**FORM, "Authorization": UNKNOWN}
    assert await counted(client, content="grant_type=password", headers=headers) == {"invalid_request": 1}
    assert await counted(client, content=GRANT + "&x=" + "y" * 5000, headers=headers) == {"invalid_request": 1}


async def test_a_failure_of_the_service_counts_as_an_error(app, client, monkeypatch):
    clients = app.state.services.clients

    async def crash(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(clients, "authenticate", crash)
    headers = {**FORM, "Authorization": UNKNOWN}
    assert await counted(client, content=GRANT, headers=headers) == {"error": 1}  # 500

    async def unreachable(*_args):
        raise DBConnectionError("db down")

    monkeypatch.setattr(clients, "authenticate", unreachable)
    assert await counted(client, content=GRANT, headers=headers) == {"error": 1}  # 503
