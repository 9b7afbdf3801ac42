"""The console transport: what it prints is safe for the terminal it prints to."""

from __future__ import annotations

import dataclasses
import io

import pytest

from keyrelease.exceptions import PermanentDeliveryError
from keyrelease_plugins.console import ConsoleTransport


async def test_control_characters_are_printed_as_escapes_never_raw(message):
    out = io.StringIO()
    hostile = dataclasses.replace(
        message,
        to="owned\x1b[2J@partner.example",
        subject="Your code for “Export\x07\x9b31m”",
        text="Key name: Export\x1b]0;pwned\x07\nPartner: Acme\u202eevil\x7f\nVerification code: 482913\n",
    )

    await ConsoleTransport(out).send(hostile)

    printed = out.getvalue()
    assert "To: owned\\x1b[2J@partner.example\n" in printed
    assert "Subject: Your code for “Export\\x07\\x9b31m”\n" in printed
    assert "Key name: Export\\x1b]0;pwned\\x07\nPartner: Acme\\u202eevil\\x7f\nVerification code: 482913\n" in printed
    assert not any(c in printed for c in "\x1b\x07\x9b\u202e\x7f")


async def test_an_ordinary_message_prints_as_it_is(message):
    out = io.StringIO()

    await ConsoleTransport(out).send(message)

    assert out.getvalue().startswith(
        "From: Keyrelease <keys@example.test>\nTo: Ada Admin <ada@example.test>\nSubject: Your verification code\n"
    )
    assert "\nYour verification code is 482913.\n" in out.getvalue()


@pytest.mark.parametrize("character", ["\x00", "\r", "\n"], ids=["NUL", "CR", "LF"])
@pytest.mark.parametrize(("field", "header"), [("to", "To"), ("sender", "From"), ("subject", "Subject")])
async def test_a_cr_lf_or_nul_in_a_header_is_permanent_and_prints_nothing(message, field, header, character):
    out = io.StringIO()

    with pytest.raises(PermanentDeliveryError, match=f"^header '{header}' contains a line break or NUL; not sent$"):
        await ConsoleTransport(out).send(dataclasses.replace(message, **{field: f"x{character}y@example.test"}))

    assert out.getvalue() == ""
