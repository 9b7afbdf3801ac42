"""The request deadline: a request still running when it passes is cancelled and answered 503
with Retry-After, in the shape its API answers errors: RFC 6749's on the token endpoint,
GraphQL's everywhere else. The deadline is a real timer, at its least allowed value (1 s)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

UNAVAILABLE = "The service is temporarily unavailable; try again shortly."
REVEAL = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) { __typename }
}"""


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_REQUEST_TIMEOUT_SECONDS": "1"}


async def never_answers(*args: object, **kwargs: object) -> None:
    await asyncio.Event().wait()


def assert_unavailable(response, body: dict) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1" and response.headers["cache-control"] == "no-store"
    assert response.json() == body


async def test_a_token_request_past_its_deadline_gets_an_oauth_error(app, client, monkeypatch, caplog):
    monkeypatch.setattr(app.state.services.limiter, "token_request", never_answers)
    caplog.set_level(logging.WARNING, logger="keyrelease")

    response = await client.post(
        "/ids/auth/login", data={"grant_type": "client_credentials"}, auth=("some-client", "some-secret")
    )

    assert_unavailable(response, {"error": "temporarily_unavailable", "error_description": UNAVAILABLE})
    assert "request to /ids/auth/login passed its 1.0s deadline" in caplog.messages


async def test_a_graphql_request_past_its_deadline_gets_a_graphql_error(app, client, monkeypatch, caplog):
    monkeypatch.setattr(app.state.services.limiter, "partner_reveal", never_answers)
    caplog.set_level(logging.WARNING, logger="keyrelease")

    response = await client.post(
        "/graphql",
        json={"query": REVEAL, "variables": {"input": {"keyId": str(uuid.uuid4()), "oneTimePassword": "123456"}}},
    )

    assert_unavailable(response, {"errors": [{"message": UNAVAILABLE, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]})
    assert "request to /graphql passed its 1.0s deadline" in caplog.messages
