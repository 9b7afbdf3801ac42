"""An admin token counts only under the Bearer scheme (spacing around the token aside), is
looked up once per request however many fields ask who is calling, and a request from a
connection without a peer address (a Unix socket) is still answered and counted."""

from __future__ import annotations

import uuid

import httpx
import pytest

UNAUTHENTICATED = "Authentication required: send the header Authorization: Bearer <admin token>."
NOT_ACCEPTED = "The admin token was not accepted: it is wrong, expired or revoked."


async def me(api, authorization: str) -> dict:
    response = await api.client.post("/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": authorization})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_token_counts_under_the_bearer_scheme_only(api):
    ada = await api.admin()
    assert (await me(api, f"Bearer {ada.token}"))["data"] == {"me": {"email": ada.email}}
    assert (await me(api, f"bearer   {ada.token}  "))["data"] == {"me": {"email": ada.email}}
    for other in (f"Token {ada.token}", f"Basic {ada.token}", f"Bearer{ada.token}", f"X {ada.token}"):
        body = await me(api, other)
        assert body["data"] is None, other
        assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [(NOT_ACCEPTED, "UNAUTHENTICATED")], other


async def test_without_the_header_the_caller_is_asked_to_authenticate(api):
    body = (await api.client.post("/graphql", json={"query": "{ me { email } }"})).json()
    assert [e["message"] for e in body["errors"]] == [UNAUTHENTICATED]
    body = await me(api, "Bearer   ")  # something was sent: it is not accepted
    assert [e["message"] for e in body["errors"]] == [NOT_ACCEPTED]


async def test_the_token_is_looked_up_once_however_many_fields_ask(statements, api):
    # statements first: on PostgreSQL it counts only on a pool the app creates after it
    await statements.attach_sqlite()
    ada = await api.admin()
    query = "{ a: me { email } b: me { email } c: me { email } }"
    await api.data(query, token=ada.token)  # warm

    async with statements.counting() as block:
        data = await api.data(query, token=ada.token)
    assert data == {name: {"email": ada.email} for name in "abc"}
    token_reads = [sql for sql in block if "admin_token" in sql]
    assert len(token_reads) == 1, token_reads


PARTNER_REVEAL = 'mutation($id: ID!) { revealKey(input: {keyId: $id, oneTimePassword: "AAAA-BBBB-CCCC-DDDD"}) { __typename } }'


class TestNoPeerAddress:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_PARTNER_IP": "2/minute", "KEYRELEASE_RATE_LIMIT_PARTNER_KEY": "100/minute"}

    async def test_a_partner_guess_without_a_peer_address_is_answered_and_counted(self, app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=None)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test") as http:
            answers = []
            for _ in range(3):
                variables = {"id": str(uuid.uuid4())}
                body = (await http.post("/graphql", json={"query": PARTNER_REVEAL, "variables": variables})).json()
                errors = body.get("errors")
                answers.append(errors[0]["extensions"]["code"] if errors else body["data"]["revealKey"]["__typename"])
        assert answers == ["VerificationError", "VerificationError", "RATE_LIMITED"]
