"""The ``console`` transport: prints each message to standard output.

The format is header lines (``From:``, ``To:``, ``Subject:``, ``Message-ID:``), a blank line,
the plain-text body and a separator line. It is the embedded default, for development: the
verification code appears in the terminal that runs ``keyrelease serve``. It prints codes to
standard output, which a server's log collector keeps, so ``KEYRELEASE_ENV=production`` refuses it.

Like every transport it refuses a CR, LF or NUL in a header (a permanent delivery error). Any
other control character, in a header or the body, is printed as its escape (``\\x1b``), never
raw: a key or partner name must not be able to drive the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from keyrelease.mail.hookspecs import hookimpl
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport, check_headers
from keyrelease.validation import visible


class ConsoleTransport(Transport):
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsoleTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        check_headers(message)
        stream = self._stream or sys.stdout
        stream.write(
            f"From: {visible(message.sender)}\n"
            f"To: {visible(message.to)}\n"
            f"Subject: {visible(message.subject)}\n"
            f"Message-ID: <{visible(message.message_id)}>\n"
            f"\n"
            f"{visible(message.text.rstrip(), keep=chr(10))}\n"
            f"{'-' * 72}\n"
        )
        stream.flush()
        return DeliveryResult(transport=self.name, provider_message_id=message.message_id)


@hookimpl
def register_transports(register):
    register(ConsoleTransport)
