"""The base class: whatever a transport's own ``send`` does, keyrelease hands it no message with
a CR, LF or NUL in a header. A third-party transport gets this without writing a line."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from keyrelease.exceptions import PermanentDeliveryError
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport


class RecordingTransport(Transport):
    """A transport as a third party might write it: no header checks of its own."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RecordingTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        self.sent.append(message)
        return DeliveryResult(transport=self.name)


@pytest.mark.parametrize("character", ["\x00", "\r", "\n"], ids=["NUL", "CR", "LF"])
@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"to": "a{}b@example.test"}, "To"),
        ({"sender": "k{}@example.test"}, "From"),
        ({"subject": "code{}Bcc: eve@example.test"}, "Subject"),
        ({"message_id": "1{}@example.test"}, "Message-ID"),
        ({"headers": {"X-Note": "a{}b"}}, "X-Note"),
        ({"headers": {"X-No{}te": "ab"}}, "X-No{}te"),
    ],
)
async def test_deliver_refuses_a_cr_lf_or_nul_in_any_header_before_send(message, changes, header, character):
    transport = RecordingTransport()
    field, template = next(iter(changes.items()))
    value = (
        {k.format(character): v.format(character) for k, v in template.items()}
        if isinstance(template, dict)
        else template.format(character)
    )

    with pytest.raises(PermanentDeliveryError, match="contains a line break or NUL; not sent$") as raised:
        await transport.deliver(dataclasses.replace(message, **{field: value}))

    assert transport.sent == []
    assert str(raised.value) == f"header {header.format(character)!r} contains a line break or NUL; not sent"


async def test_deliver_passes_a_clean_message_to_send(message):
    transport = RecordingTransport()

    await transport.deliver(message)

    assert transport.sent == [message]
