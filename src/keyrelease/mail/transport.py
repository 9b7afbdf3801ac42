"""What a transport receives and returns, and the base class every transport extends.

A transport only translates: an :class:`EmailMessage` into the provider's call, and the
provider's answer into a :class:`DeliveryResult` or a :class:`~keyrelease.exceptions.DeliveryError`.
Retries, backoff, dead-lettering and scrubbing belong to the dispatcher, not to transports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from keyrelease.exceptions import PermanentDeliveryError

#: What no header may hold, in its name or its value: a line break would start a header (or
#: the body) of the sender's choosing, and a NUL is cut or mangled differently by each server.
UNSAFE_IN_HEADERS = frozenset("\r\n\x00")


@dataclass(frozen=True)
class EmailMessage:
    """One message, ready to send.

    ``message_id`` is stable across retries: use it as the Message-ID header or the provider's
    custom argument, so a retry after an ambiguous failure can be recognised downstream.
    """

    message_id: str
    sender: str
    to: str
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def header_fields(self) -> Iterator[tuple[str, str]]:
        """Every header the message will carry, as ``(name, value)``: From, To, Subject,
        Message-ID, then the extra ``headers``."""
        yield "From", self.sender
        yield "To", self.to
        yield "Subject", self.subject
        yield "Message-ID", self.message_id
        yield from self.headers.items()


def check_headers(message: EmailMessage) -> None:
    """Raise :class:`PermanentDeliveryError` if any header name or value of ``message`` holds a
    CR, LF or NUL. The error names the header, never its value (it may be the subject line);
    the same message would fail the same way on every retry, so it is permanent."""
    for name, value in message.header_fields():
        if not UNSAFE_IN_HEADERS.isdisjoint(name) or not UNSAFE_IN_HEADERS.isdisjoint(value):
            raise PermanentDeliveryError(f"header {name!r} contains a line break or NUL; not sent")


@dataclass(frozen=True)
class DeliveryResult:
    """What a transport reports after the provider accepted a message."""

    transport: str
    provider_message_id: str | None = None
    detail: str = ""


class Transport(ABC):
    """Base class of a mail transport.

    Subclasses set ``name`` (what ``KEYRELEASE_MAIL_TRANSPORT`` selects), implement
    :meth:`from_env` to read and validate their settings, and :meth:`send`. keyrelease calls
    :meth:`deliver`, which refuses unsafe headers before ``send`` ever sees the message.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_env(cls, env: Mapping[str, str]) -> Transport:
        """Build the transport from the environment.

        Raise :class:`~keyrelease.exceptions.ConfigError` naming the variable when a setting
        is missing or invalid; this runs at start-up, so a bad value never waits for a send.
        """

    async def deliver(self, message: EmailMessage) -> DeliveryResult:
        """What the dispatcher calls: :func:`check_headers`, then :meth:`send`. Not meant to be
        overridden; a transport that may be called directly checks in ``send`` too."""
        check_headers(message)
        return await self.send(message)

    @abstractmethod
    async def send(self, message: EmailMessage) -> DeliveryResult:
        """Deliver one message.

        Return a :class:`DeliveryResult` once the provider has accepted it. Raise
        :class:`~keyrelease.exceptions.TransientDeliveryError` when a later retry may succeed
        and :class:`~keyrelease.exceptions.PermanentDeliveryError` when it cannot; wrap the
        provider's exception with ``raise ... from err``.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release connections; called once when the service stops."""
