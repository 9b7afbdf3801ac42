"""Delivering the outbox: claim due messages, render, send, record the outcome.

Claims are conditional updates with a lease (``status = SENDING, lease_until = now + 60 s``),
so several dispatchers never hold the same message at once; a dispatcher that dies mid-send
leaves a lease that expires, and the message is claimed again. Failures are retried with
exponential backoff and jitter, the first retry within a few seconds, and dead-lettered
(FAILED, with the reason) after ``max_attempts``. A code whose validity has passed is not
sent (EXPIRED): it would only confuse. Retries never count as one of the admin's resends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from tortoise.expressions import Q

from keyrelease.clock import Clock
from keyrelease.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.render import MailRenderer
from keyrelease.mail.transport import Transport
from keyrelease.models import DeliveryStatus, OutboxMessage

log = logging.getLogger("keyrelease.mail")


class Dispatcher:
    def __init__(
        self,
        transport: Transport,
        renderer: MailRenderer,
        clock: Clock,
        *,
        lease_seconds: float = 60,
        poll_seconds: float = 1.0,
        max_attempts: int = 8,
        first_retry_seconds: float = 2.0,
        max_retry_seconds: float = 300.0,
        batch: int = 20,
    ) -> None:
        self.transport = transport
        self._renderer = renderer
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self.max_attempts = max_attempts
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    def retry_delay(self, attempts: int) -> float:
        """Backoff after the ``attempts``-th failure: exponential, capped, with jitter."""
        ceiling = min(self._max_retry, self._first_retry * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying")
                sent = 0
            if sent:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """Deliver what is due now; return how many messages were handled."""
        handled = 0
        for message in await self._claim():
            await self._deliver(message)
            handled += 1
        return handled

    async def _claim(self) -> list[OutboxMessage]:
        now = self._clock.now()
        due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(
            status=DeliveryStatus.SENDING, lease_until__lte=now
        )
        candidates = await OutboxMessage.filter(due).order_by("next_attempt_at").limit(self._batch)
        claimed = []
        for message in candidates:
            won = await OutboxMessage.filter(
                due, id=message.id, status=message.status, attempts=message.attempts
            ).update(status=DeliveryStatus.SENDING, lease_until=now + self._lease)
            if won:
                claimed.append(message)
        return claimed

    async def _deliver(self, message: OutboxMessage) -> None:
        now = self._clock.now()
        expires_at = datetime.fromisoformat(message.payload["expires_at"])
        if now >= expires_at:
            await self._finish(message, DeliveryStatus.EXPIRED, error="expired before it could be sent")
            log.info("mail %s (%s) expired before delivery", message.id, message.kind.value)
            return
        attempts = message.attempts + 1
        try:
            result = await self.transport.send(self._renderer.render(message))
        except DeliveryError as err:
            await self._failed(message, attempts, err)
            return
        except Exception as err:  # a transport bug must not kill the dispatcher
            log.exception("transport %s raised unexpectedly", self.transport.name)
            await self._failed(message, attempts, TransientDeliveryError(f"{type(err).__name__}"))
            return
        await OutboxMessage.filter(id=message.id, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.SENT,
            attempts=attempts,
            sent_at=self._clock.now(),
            lease_until=None,
            last_error=None,
            provider_message_id=(result.provider_message_id or "")[:200] or None,
        )
        log.info("mail %s (%s) sent via %s, attempt %d", message.id, message.kind.value, result.transport, attempts)

    async def _failed(self, message: OutboxMessage, attempts: int, err: DeliveryError) -> None:
        reason = f"{'transient' if err.transient else 'permanent'}: {err.provider_message}"[:500]
        if isinstance(err, PermanentDeliveryError) or attempts >= self.max_attempts:
            await self._finish(message, DeliveryStatus.FAILED, error=reason, attempts=attempts)
            log.warning("mail %s (%s) failed for good after %d attempts: %s", message.id, message.kind.value, attempts, reason)
            return
        delay = max(self.retry_delay(attempts), err.retry_after or 0)
        await OutboxMessage.filter(id=message.id, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING,
            attempts=attempts,
            next_attempt_at=self._clock.now() + timedelta(seconds=delay),
            lease_until=None,
            last_error=reason,
        )
        log.info("mail %s (%s) attempt %d failed (%s); retry in %.1fs", message.id, message.kind.value, attempts, reason, delay)

    async def _finish(
        self, message: OutboxMessage, status: DeliveryStatus, *, error: str, attempts: int | None = None
    ) -> None:
        await OutboxMessage.filter(id=message.id, status=DeliveryStatus.SENDING).update(
            status=status,
            attempts=message.attempts if attempts is None else attempts,
            lease_until=None,
            last_error=error,
        )
