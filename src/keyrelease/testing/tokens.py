"""Requests to the token endpoint (``POST /ids/auth/login``), as a partner's client sends them."""

from __future__ import annotations

import base64

import httpx

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GRANT = "grant_type=client_credentials"


def basic_auth(client_id: str, secret: str) -> str:
    """An ``Authorization`` header value for HTTP Basic, as most client libraries build it."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def request_token(
    client: httpx.AsyncClient, client_id: str, secret: str, *, body: str = GRANT
) -> httpx.Response:
    headers = {**FORM, "Authorization": basic_auth(client_id, secret)}
    return await client.post("/ids/auth/login", content=body, headers=headers)
