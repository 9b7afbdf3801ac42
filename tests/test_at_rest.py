"""Rule 13: a copy of the database alone reveals no code, OTP, secret or admin token, and
none of them reaches a log, an event, or any HTTP response but the one meant to carry it —
over grants and refusals, internal errors (whose exceptions quote the secrets) and delivery
failures, with the whole written log scanned, tracebacks included."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import dbutil
import pytest

from keyrelease.exceptions import PermanentDeliveryError
from keyrelease.models import DeliveryStatus, OutboxMessage
from keyrelease.testing.api import VERIFY_KEY
from keyrelease.testing.tokens import basic_auth, request_token

PARTNER = {"kind": "PARTNER", "partnerName": "Acme", "partnerEmail": "keys@acme.example"}
DEAD_PARTNER = {"kind": "PARTNER", "partnerName": "Gone", "partnerEmail": "gone@acme.example"}


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


class FailingMail:
    """Wraps the memory transport's send: every mail to ``refused`` is rejected for good (a
    dead letter), and the first mail whose subject names ``crash_on`` makes the transport
    crash with the mail's whole text in its exception, as a buggy plugin might."""

    def __init__(self, send: Any, refused: str, crash_on: str) -> None:
        self.send, self.refused, self.crash_on, self.crashed = send, refused, crash_on, False

    async def __call__(self, message: Any) -> Any:
        if message.to == self.refused:
            raise PermanentDeliveryError("550 5.1.1 mailbox unavailable")
        if self.crash_on in message.subject and not self.crashed:
            self.crashed = True
            raise RuntimeError(f"cannot deliver {message.subject}: {message.text}")
        return await self.send(message)


async def test_no_secret_rests_in_the_database_or_the_logs(api, settings, clock, all_logs, written_log, capsys, monkeypatch):
    responses: list[tuple[str, str]] = []  # (request body, response body) of every request

    async def record(response):  # type: ignore[no-untyped-def]
        await response.aread()
        responses.append((response.request.content.decode(errors="replace"), response.text))

    api.client.event_hooks["response"].append(record)
    mail = FailingMail(api.mailbox.send, refused=DEAD_PARTNER["partnerEmail"], crash_on="Crashing transport")
    monkeypatch.setattr(api.mailbox, "send", mail)
    ada = await api.admin()
    institutional = await api.create_key(ada)
    code1 = await api.code_for(ada)
    await api.resend(ada, institutional["id"])
    code2 = await api.code_for(ada, nth=2)
    await api.verify(ada, institutional["id"], code1)  # superseded: a failure
    await api.verify(ada, institutional["id"], code2)
    creds = await api.reveal(ada, institutional["id"])
    partner = await api.create_key(ada, **PARTNER)
    code3 = await api.code_for(ada, nth=3)
    await api.verify(ada, partner["id"], code3)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    partner_creds = await api.reveal(None, partner["id"], otp)

    # A delivery failure: the transport crashes on a code mail, which is retried and arrives.
    crashing = await api.create_key(ada, name="Crashing transport")
    async with asyncio.timeout(10):  # the crash is recorded as a failed attempt, to retry later
        while not await OutboxMessage.filter(key_id=crashing["id"], attempts=1, status=DeliveryStatus.PENDING).exists():
            await asyncio.sleep(0.01)
    assert mail.crashed
    clock.advance(seconds=60)
    api.app.state.services.dispatcher.wake()
    code4 = await api.code_for(ada, nth=4)
    # A dead letter: the partner's mail is refused for good.
    dead = await api.create_key(ada, **DEAD_PARTNER)
    code5 = await api.code_for(ada, nth=5)
    await api.verify(ada, dead["id"], code5)

    # Grants and refusals at the token endpoint.
    assert (await request_token(api.client, creds["clientId"], creds["clientSecret"])).status_code == 200
    assert (await request_token(api.client, partner_creds["clientId"], partner_creds["clientSecret"])).status_code == 200
    assert (await request_token(api.client, creds["clientId"], otp)).status_code == 401
    assert (await request_token(api.client, creds["clientId"], creds["clientSecret"], body=f"grant_type={code4}")).status_code == 400
    # Refusals in GraphQL: a wrong admin token, a wrong OTP, a wrong code (as data).
    assert (await api.gql(VERIFY_KEY, {"input": {"keyId": crashing["id"], "code": code4}}, token=otp))["errors"]
    assert (await api.reveal(None, dead["id"], otp))["__typename"] == "VerificationError"
    assert (await api.verify(ada, crashing["id"], code5))["__typename"] == "VerificationError"

    # Internal errors whose exceptions quote every secret the request carried.
    def crash(*secrets: str):  # type: ignore[no-untyped-def]
        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("internal failure with " + " ".join(secrets))

        return broken

    with monkeypatch.context() as patch:
        patch.setattr(api.app.state.services.keys, "verify_key", crash(code4, otp, creds["clientSecret"], ada.token))
        body = await api.gql(VERIFY_KEY, {"input": {"keyId": crashing["id"], "code": code4}}, ada.token)
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        patch.setattr(api.app.state.services.clients, "authenticate", crash(creds["clientSecret"], basic_auth(creds["clientId"], creds["clientSecret"])))
        assert (await request_token(api.client, creds["clientId"], creds["clientSecret"])).status_code == 500
    # Revoked: its real secret is refused.
    await api.gql("mutation($i: RevokeKeyInput!) { revokeKey(input: $i) { __typename } }", {"i": {"keyId": institutional["id"]}}, ada.token)
    assert (await request_token(api.client, creds["clientId"], creds["clientSecret"])).status_code == 401
    assert (await api.verify(ada, crashing["id"], code4))["__typename"] == "ApiKey"

    secrets = {
        "code1": code1,
        "code2": code2,
        "code3": code3,
        "code4": code4,
        "code5": code5,
        "otp": otp,
        "otp (compact)": otp.replace("-", ""),
        "client secret": creds["clientSecret"],
        "partner client secret": partner_creds["clientSecret"],
        "basic credentials": basic_auth(creds["clientId"], creds["clientSecret"]).split()[1],
        "admin token": ada.token,
    }
    dump = await dbutil.dump(settings.database_url)
    messages = "\n".join(record.getMessage() for record in all_logs.records)
    written = written_log.both()  # every record as keyrelease's handlers write it, tracebacks included
    events = str((await api.key(ada, crashing["id"]))["events"]) + str((await api.key(ada, partner["id"]))["events"])
    out = capsys.readouterr()
    # Each client secret is in exactly one response: the revealKey that released it. No
    # response carries a code, an OTP or the admin token (they arrive by mail or the CLI).
    for name, value in secrets.items():
        carriers = [body for _, body in responses if value in body]
        expected = 1 if "client secret" in name else 0
        assert len(carriers) == expected, f"{name} in {len(carriers)} responses"
    assert len(responses) >= 25  # every request of the flow was seen
    for name, value in secrets.items():
        # Bounded by non-alphanumerics, so a code does not "appear" inside a random UUID.
        pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])")
        assert not pattern.search(dump), f"{name} found in the database"
        assert not pattern.search(messages), f"{name} found in a log message"
        assert not pattern.search(written), f"{name} found in the written log"
        assert not pattern.search(events), f"{name} found in events"
        assert not pattern.search(out.out + out.err), f"{name} printed"
    # The paths really ran, and their records were written with their tracebacks.
    [dead_letter] = await OutboxMessage.filter(key_id=dead["id"], kind="PARTNER_OTP")
    assert dead_letter.status == DeliveryStatus.FAILED
    assert "transport memory raised unexpectedly" in messages and "token endpoint failed" in messages
    assert "GraphQL field verifyKey raised RuntimeError" in messages
    assert written.count("Traceback (most recent call last):") == 2 * 3  # three failures, two formats
    assert "mail" in messages and "GraphQL errors: UNAUTHENTICATED" in messages
