"""GraphQL over the real HTTP stack (an ``httpx`` client on the ASGI app), the key flow step by
step, and the mail the service sent on the way (the ``memory`` transport's list)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from keyrelease.app import create_app
from keyrelease.clock import Clock
from keyrelease.config import Settings
from keyrelease.service.admins import create_admin

#: The lines of the mails that carry a verification code and a partner's one-time password.
CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)
OTP_LINE = re.compile(r"^One-time password: ([A-Z2-7-]+)$", re.MULTILINE)


@dataclass
class AdminUser:
    email: str
    token: str
    institution: str


@dataclass
class Api:
    """GraphQL over the real HTTP stack, and the mail the service sent."""

    client: httpx.AsyncClient
    app: Any

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = await self.gql(query, variables, token)
        assert "errors" not in body, body
        return body["data"]

    async def admin(self, email: str = "ada@uni.example", institution: str = "Example University") -> AdminUser:
        created = await create_admin(self.app.state.services.clock, institution=institution, email=email, name="Ada")
        return AdminUser(email=email, token=created.token, institution=institution)

    # -- the flow, step by step --------------------------------------------------------

    async def create_key(self, admin: AdminUser, **fields: Any) -> dict:
        fields.setdefault("name", "Reporting pipeline")
        fields.setdefault("kind", "INSTITUTIONAL")
        data = await self.data(CREATE_KEY, {"input": fields}, admin.token)
        return data["createKey"]

    async def create_key_with_code(self, admin: AdminUser, **fields: Any) -> tuple[dict, str]:
        """Create a key and wait for its own code mail (found by the key's name, unique unless
        the caller chose one), whatever other mail is still on its way."""
        fields.setdefault("name", f"Key {uuid.uuid4().hex[:8]}")

        def for_this_key(m: Any) -> bool:
            return m.to == admin.email and f"“{fields['name']}”" in m.subject

        before = len([m for m in self.mailbox.messages if for_this_key(m)])
        key = await self.create_key(admin, **fields)
        mails = await self.mailbox.wait_for(for_this_key, count=before + 1)
        match = CODE_LINE.search(mails[before].text)
        assert match, mails[before].text
        return key, match.group(1)

    async def verify(self, admin: AdminUser, key_id: str, code: str) -> dict:
        return (await self.data(VERIFY_KEY, {"input": {"keyId": key_id, "code": code}}, admin.token))["verifyKey"]

    async def resend(self, admin: AdminUser, key_id: str) -> dict:
        return (await self.data(RESEND_CODE, {"input": {"keyId": key_id}}, admin.token))["resendCode"]

    async def reveal(self, admin: AdminUser | None, key_id: str, otp: str | None = None) -> dict:
        variables: dict[str, Any] = {"input": {"keyId": key_id}}
        if otp is not None:
            variables["input"]["oneTimePassword"] = otp
        return (await self.data(REVEAL_KEY, variables, admin.token if admin else None))["revealKey"]

    async def key(self, admin: AdminUser, key_id: str) -> dict | None:
        return (await self.data(KEY_QUERY, {"id": key_id}, admin.token))["key"]

    # -- mail --------------------------------------------------------------------------

    @property
    def mailbox(self) -> Any:
        return self.app.state.services.transport

    async def mails_to(self, address: str, count: int = 1) -> list[Any]:
        return await self.mailbox.wait_for(lambda m: m.to == address, count=count)

    async def code_for(self, admin: AdminUser, nth: int = 1) -> str:
        mails = await self.mails_to(admin.email, nth)
        match = CODE_LINE.search(mails[nth - 1].text)
        assert match, mails[nth - 1].text
        return match.group(1)

    async def otp_for(self, partner_email: str) -> str:
        mails = await self.mails_to(partner_email)
        match = OTP_LINE.search(mails[0].text)
        assert match, mails[0].text
        return match.group(1)


async def released_key(api: Api, admin: AdminUser, **fields: Any) -> tuple[dict, dict]:
    """createKey, verify with the mailed code, reveal: the key and its credentials."""
    fields.setdefault("name", f"Key {uuid.uuid4().hex[:8]}")
    key = await api.create_key(admin, **fields)
    assert key["__typename"] == "ApiKey", key
    code = await code_for_key(api, admin, fields["name"])
    verified = await api.verify(admin, key["id"], code)
    assert verified["__typename"] == "ApiKey" and verified["status"] == "ACTIVE", verified
    creds = await api.reveal(admin, key["id"])
    assert creds["__typename"] == "KeyCredentials", creds
    return key, creds


async def code_for_key(api: Api, admin: AdminUser, key_name: str) -> str:
    """The first code mailed to ``admin`` for the key named ``key_name``."""
    mails = await api.mailbox.wait_for(lambda m: m.to == admin.email and f"“{key_name}”" in m.subject)
    match = CODE_LINE.search(mails[0].text)
    assert match, mails[0].text
    return match.group(1)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, clock: Clock, application: Any = None) -> AsyncIterator[Api]:
    """The app with its lifespan and an :class:`Api` on it: a second (or third) app on the same
    database, e.g. after a configuration change; or ``application``, built by the caller and
    adjusted before it starts."""
    application = application or create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test") as http:
            yield Api(client=http, app=application)


# -- the GraphQL documents -------------------------------------------------------------

KEY_FIELDS = """
    id name kind status clientId createdAt expiresAt verificationDeadline codeExpiresAt
    resendsRemaining attemptsRemaining revealed partnerName partnerEmail legacy
    events { type at detail }
"""
CREATE_KEY = f"""
mutation($input: CreateKeyInput!) {{
  createKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
    ... on ValidationError {{ field }}
    ... on PendingKeyLimitError {{ limit }}
  }}
}}"""
VERIFY_KEY = f"""
mutation($input: VerifyKeyInput!) {{
  verifyKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
    ... on ValidationError {{ field }}
  }}
}}"""
RESEND_CODE = f"""
mutation($input: ResendCodeInput!) {{
  resendCode(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
  }}
}}"""
REVEAL_KEY = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) {
    __typename
    ... on KeyCredentials { clientId clientSecret }
    ... on Error { message }
  }
}"""
REVOKE_KEY = f"""
mutation($input: RevokeKeyInput!) {{
  revokeKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
  }}
}}"""
KEY_QUERY = f"query($id: ID!) {{ key(id: $id) {{ {KEY_FIELDS} }} }}"
