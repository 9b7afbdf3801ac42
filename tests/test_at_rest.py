"""Rule 13: a copy of the database alone reveals no code, OTP, secret or admin token, and
none of them reaches a log, an event, or any HTTP response but the one meant to carry it."""

from __future__ import annotations

import logging
import re

import dbutil
import pytest

PARTNER = {"kind": "PARTNER", "partnerName": "Acme", "partnerEmail": "keys@acme.example"}


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_no_secret_rests_in_the_database_or_the_logs(api, settings, all_logs, capsys):
    responses: list[tuple[str, str]] = []  # (request body, response body) of every request

    async def record(response):  # type: ignore[no-untyped-def]
        await response.aread()
        responses.append((response.request.content.decode(errors="replace"), response.text))

    api.client.event_hooks["response"].append(record)
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

    secrets = {
        "code1": code1,
        "code2": code2,
        "code3": code3,
        "otp": otp,
        "otp (compact)": otp.replace("-", ""),
        "client secret": creds["clientSecret"],
        "partner client secret": partner_creds["clientSecret"],
        "admin token": ada.token,
    }
    dump = await dbutil.dump(settings.database_url)
    logs = "\n".join(record.getMessage() for record in all_logs.records)
    events = str((await api.key(ada, institutional["id"]))["events"]) + str((await api.key(ada, partner["id"]))["events"])
    out = capsys.readouterr()
    # Each client secret is in exactly one response: the revealKey that released it. No
    # response carries a code, an OTP or the admin token (they arrive by mail or the CLI).
    for name, value in secrets.items():
        carriers = [body for _, body in responses if value in body]
        expected = 1 if "client secret" in name else 0
        assert len(carriers) == expected, f"{name} in {len(carriers)} responses"
    assert len(responses) >= 10  # every request of the flow was seen
    for name, value in secrets.items():
        # Bounded by non-alphanumerics, so a code does not "appear" inside a random UUID.
        pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])")
        assert not pattern.search(dump), f"{name} found in the database"
        assert not pattern.search(logs), f"{name} found in the logs"
        assert not pattern.search(events), f"{name} found in events"
        assert not pattern.search(out.out + out.err), f"{name} printed"
    assert "mail" in logs  # the logs were really captured
