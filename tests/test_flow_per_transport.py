"""The whole core flow, unchanged, with each built-in transport: create → verify → reveal for an
institutional key, and the partner's retrieval with the emailed one-time password.

Each run reads the mail where that transport really puts it: the memory list, the console
output, a local SMTP server (aiosmtpd), a local SendGrid API.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from mailservers import sendgrid_server, sendgrid_text, smtp_server, wait_until

CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)
OTP_LINE = re.compile(r"^One-time password: ([A-Z2-7-]+)$", re.MULTILINE)
SEPARATOR = "-" * 72
PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}
LAST_DELIVERY = "query($id: ID!) { key(id: $id) { lastDelivery { status attempts } } }"


@dataclass
class Inbox:
    """Where one transport's mail arrives: settings for the service, and the text bodies
    received for an address."""

    transport: str
    env: dict[str, str]
    read: Callable[[Any, str], list[str]]
    api: Any = field(default=None, repr=False)

    async def texts_to(self, address: str, count: int = 1) -> list[str]:
        await wait_until(lambda: len(self.read(self.api, address)) >= count, timeout=10)
        return self.read(self.api, address)

    async def code_for(self, address: str, nth: int = 1) -> str:
        match = CODE_LINE.search((await self.texts_to(address, nth))[nth - 1])
        assert match
        return match.group(1)

    async def otp_for(self, address: str) -> str:
        match = OTP_LINE.search((await self.texts_to(address))[0])
        assert match
        return match.group(1)


def console_reader(capsys: pytest.CaptureFixture[str]) -> Callable[[Any, str], list[str]]:
    """Messages printed by the console transport: headers, a blank line, the body, a rule."""
    printed: list[str] = []

    def read(api: Any, address: str) -> list[str]:
        printed.append(capsys.readouterr().out)
        texts = []
        for block in "".join(printed).split(SEPARATOR + "\n"):
            headers, _, body = block.strip("\n").partition("\n\n")
            if f"To: {address}" in headers.splitlines():
                texts.append(body)
        return texts

    return read


@pytest.fixture(params=["memory", "console", "smtp", "sendgrid"])
async def inbox(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Inbox]:
    name = request.param
    if name == "memory":
        yield Inbox(name, {"KEYRELEASE_MAIL_TRANSPORT": "memory"},
                    lambda api, address: [m.text for m in api.mailbox.messages if m.to == address])
    elif name == "console":
        yield Inbox(name, {"KEYRELEASE_MAIL_TRANSPORT": "console"}, console_reader(capsys))
    elif name == "smtp":
        with smtp_server() as server:
            yield Inbox(name, server.env(), lambda api, address: [d.text() for d in server.handler.to(address)])
    else:
        async with sendgrid_server() as sendgrid:
            yield Inbox(name, sendgrid.env(), lambda api, address: [sendgrid_text(r) for r in sendgrid.to(address)])


@pytest.fixture
def env_overrides(inbox: Inbox) -> dict[str, str]:
    return inbox.env


@pytest.fixture
def mail(inbox: Inbox, api: Any) -> Inbox:
    inbox.api = api
    return inbox


async def settled_delivery(api: Any, admin: Any, key_id: str) -> dict:
    """``lastDelivery`` once the dispatcher has recorded the outcome (the mail can arrive a
    moment before the dispatcher hears back from the transport)."""
    async with asyncio.timeout(5):
        while True:
            delivery = (await api.data(LAST_DELIVERY, {"id": key_id}, admin.token))["key"]["lastDelivery"]
            if delivery["status"] not in ("PENDING", "SENDING"):
                return delivery
            await asyncio.sleep(0.01)


async def test_institutional_key_create_verify_reveal(api, mail):
    ada = await api.admin()

    key = await api.create_key(ada, name="Nightly export")
    assert key["status"] == "PENDING_VERIFICATION"
    code = await mail.code_for(ada.email)
    verified = await api.verify(ada, key["id"], code)
    assert verified["status"] == "ACTIVE", verified
    creds = await api.reveal(ada, key["id"])
    assert creds["__typename"] == "KeyCredentials"
    assert creds["clientId"] == key["clientId"]
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"

    [text] = await mail.texts_to(ada.email)
    assert "The code expires at 2030-01-01 12:05:00 (UTC)." in text
    assert creds["clientId"] not in text and creds["clientSecret"] not in text
    assert await settled_delivery(api, ada, key["id"]) == {"status": "SENT", "attempts": 1}


async def test_resent_code_replaces_the_first(api, mail):
    ada = await api.admin()
    key = await api.create_key(ada)
    first = await mail.code_for(ada.email)

    await api.resend(ada, key["id"])
    second = await mail.code_for(ada.email, nth=2)

    assert (await api.verify(ada, key["id"], first))["__typename"] == "VerificationError"
    assert (await api.verify(ada, key["id"], second))["status"] == "ACTIVE"


async def test_partner_key_verify_then_partner_reveals_with_the_emailed_password(api, mail):
    ada = await api.admin()

    key = await api.create_key(ada, name="Partner feed", **PARTNER)
    verified = await api.verify(ada, key["id"], await mail.code_for(ada.email))
    assert verified["status"] == "ACTIVE", verified
    otp = await mail.otp_for(PARTNER["partnerEmail"])
    [text] = await mail.texts_to(PARTNER["partnerEmail"])
    assert f"Key ID: {key['id']}" in text
    assert "http://127.0.0.1:8000/partner" in text
    creds = await api.reveal(None, key["id"], otp)
    assert creds["__typename"] == "KeyCredentials"
    assert creds["clientId"] == key["clientId"]
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "VerificationError"

    events = [e["type"] for e in (await api.key(ada, key["id"]))["events"]]
    assert events == ["CREATED", "CODE_SENT", "VERIFIED", "PARTNER_OTP_SENT", "PARTNER_REVEALED"]
