"""What a transport receives and returns, and the base class every transport extends.

A transport only translates: an :class:`EmailMessage` into the provider's call, and the
provider's answer into a :class:`DeliveryResult` or a :class:`~keyrelease.exceptions.DeliveryError`.
Retries, backoff, dead-lettering and scrubbing belong to the dispatcher, not to transports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


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


@dataclass(frozen=True)
class DeliveryResult:
    """What a transport reports after the provider accepted a message."""

    transport: str
    provider_message_id: str | None = None
    detail: str = ""


class Transport(ABC):
    """Base class of a mail transport.

    Subclasses set ``name`` (what ``KEYRELEASE_MAIL_TRANSPORT`` selects), implement
    :meth:`from_env` to read and validate their settings, and :meth:`send`.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_env(cls, env: Mapping[str, str]) -> Transport:
        """Build the transport from the environment.

        Raise :class:`~keyrelease.exceptions.ConfigError` naming the variable when a setting
        is missing or invalid; this runs at start-up, so a bad value never waits for a send.
        """

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
