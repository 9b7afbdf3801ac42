"""The ``console`` transport: prints each message to standard output.

The format is header lines (``From:``, ``To:``, ``Subject:``, ``Message-ID:``), a blank line,
the plain-text body and a separator line. It is the embedded default, for development: the
verification code appears in the terminal that runs ``keyrelease serve``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from keyrelease.mail.hookspecs import hookimpl
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport


class ConsoleTransport(Transport):
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsoleTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        stream = self._stream or sys.stdout
        stream.write(
            f"From: {message.sender}\n"
            f"To: {message.to}\n"
            f"Subject: {message.subject}\n"
            f"Message-ID: <{message.message_id}>\n"
            f"\n"
            f"{message.text.rstrip()}\n"
            f"{'-' * 72}\n"
        )
        stream.flush()
        return DeliveryResult(transport=self.name, provider_message_id=message.message_id)


@hookimpl
def register_transports(register):
    register(ConsoleTransport)
