"""The ``memory`` transport: keeps every message in a list, for tests.

A test double, not a transport to deliver with: ``KEYRELEASE_ENV=production`` refuses it (see
``config.DEVELOPMENT_TRANSPORTS``). keyrelease does not register it. The development virtualenv
has a one-module distribution, ``tests/keyrelease-memory``, that registers this class under its
``keyrelease.transports`` entry point, so the tests load it through the same path as any
third-party transport, and a production install does not know the name at all.

Tests reach the instance the service built (``app.state.services.transport``) and wait on it with
:meth:`MemoryTransport.wait_for` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport


class MemoryTransport(Transport):
    name = "memory"

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._changed = asyncio.Condition()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MemoryTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return DeliveryResult(transport=self.name, provider_message_id=message.message_id)

    async def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool] = lambda m: True,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[EmailMessage]:
        """Wait until ``count`` messages match ``predicate``; return all that match."""

        def matching() -> list[EmailMessage]:
            return [m for m in self.messages if predicate(m)]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
            return matching()
