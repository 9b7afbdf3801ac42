"""Delivering the outbox: claim due messages, render, send, record the outcome.

A claim is a conditional update (``status = SENDING, lease_until = now + 60 s`` where
``id``, ``status`` and ``attempts`` are as read and the message is still due): of several
dispatchers that read the same row, the database lets exactly one win, on SQLite and on
PostgreSQL alike. The send itself is bounded by half the lease, so a live dispatcher always
finishes before its lease runs out; a dispatcher that dies mid-send leaves a lease that
expires, and the message is claimed again (same Message-ID, so the retry is recognisable).
Every outcome is recorded only while the lease is still ours.

Failures are retried with exponential backoff and jitter (first retry after 1-2 s by default,
doubling, capped), or later when the provider says so (``Retry-After``), and dead-lettered
(FAILED, with the reason kept) after ``max_attempts`` or at once for a permanent error. A
message whose code or one-time password has expired is not sent (EXPIRED): it would only
confuse. Retries never touch the key, so they never count as one of the admin's resends.

Nothing here needs scrubbing afterwards: rows hold references only and the code is derived
at render time (see ``keyrelease.mail.outbox`` and ``keyrelease.mail.render``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from keyrelease import db, metrics
from keyrelease.clock import Clock
from keyrelease.config import setting
from keyrelease.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.render import MailRenderer
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport
from keyrelease.models import DELIVERY_ERROR_MAX, PROVIDER_MESSAGE_ID_MAX, DeliveryStatus, OutboxMessage

if TYPE_CHECKING:
    from keyrelease.config import Settings

log = logging.getLogger("keyrelease.mail")

#: A provider's Retry-After is honoured up to this; beyond it the message would expire anyway.
MAX_RETRY_AFTER_SECONDS = 24 * 3600
#: How long a stopping dispatcher waits for the database, beyond the send in hand.
STOP_GRACE_SECONDS = 5


class Dispatcher:
    def __init__(
        self,
        transport: Transport,
        renderer: MailRenderer,
        clock: Clock,
        *,
        lease_seconds: float = setting("MAIL_LEASE_SECONDS").default,
        poll_seconds: float = 1.0,
        max_attempts: int = setting("MAIL_MAX_ATTEMPTS").default,
        first_retry_seconds: float = setting("MAIL_RETRY_FIRST_SECONDS").default,
        max_retry_seconds: float = setting("MAIL_RETRY_MAX_SECONDS").default,
        batch: int = 20,
    ) -> None:
        self.transport = transport
        self.renderer = renderer
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._send_timeout = lease_seconds / 2
        #: How long an idle dispatcher waits for a wake-up (:meth:`wake`) before it looks anyway.
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._batch = batch
        self._wake = asyncio.Event()
        #: Whether the last claim found a full batch of due rows (whoever won them).
        self._more_due = False

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport, clock: Clock) -> Dispatcher:
        renderer = MailRenderer(
            server_secret=settings.secret_key,
            mail_from=settings.mail_from,
            public_url=settings.public_url,
            templates=settings.mail_templates,
        )
        return cls(
            transport,
            renderer,
            clock,
            max_attempts=settings.mail_max_attempts,
            first_retry_seconds=settings.mail_retry_first_seconds,
            max_retry_seconds=settings.mail_retry_max_seconds,
            lease_seconds=settings.mail_lease_seconds,
        )

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    def retry_delay(self, attempts: int) -> float:
        """Backoff after the ``attempts``-th failure: exponential, capped, with jitter.

        The ceiling doubles from ``first_retry_seconds``; the delay is drawn from its upper
        half, so dispatchers that failed together do not all come back together.
        """
        ceiling = min(self._max_retry, self._first_retry * 2 ** min(attempts - 1, 32))
        return random.uniform(ceiling / 2, ceiling)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if db.is_unavailable(err):  # transient: the next pass tries again, nothing is lost
                    log.warning("outbox pass: database unavailable (%s); retrying", type(err).__name__)
                else:
                    log.exception("outbox pass failed; retrying")
                self._more_due = False
            if self._more_due:
                continue  # the last look found a full batch: more may be due
            # Otherwise wait for the next poll, or for mail queued meanwhile (it set the event).
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """Deliver what is due now; return how many messages were handled."""
        claimed = await self._claim()
        for index, (message, lease) in enumerate(claimed):
            delivery = asyncio.ensure_future(self._deliver(message, lease))
            try:
                await asyncio.shield(delivery)
            except asyncio.CancelledError:
                await self._wind_down(delivery, claimed[index + 1 :])
                raise
        return len(claimed)

    async def _wind_down(self, delivery: asyncio.Future[None], rest: list[tuple[OutboxMessage, datetime]]) -> None:
        """Stopping: let the message in hand finish, since its send is bounded and cutting it
        short could send it twice; hand the rest of the batch back to the outbox at once
        rather than when their lease runs out. Both waits are bounded."""
        done, _ = await asyncio.wait([delivery], timeout=self._send_timeout + STOP_GRACE_SECONDS)
        if not done:
            delivery.cancel()
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                for message, lease in rest:
                    await OutboxMessage.filter(
                        id=message.id, status=DeliveryStatus.SENDING, lease_until=lease
                    ).update(status=DeliveryStatus.PENDING, lease_until=None)
        except TimeoutError:
            log.warning("stopping: %d claimed message(s) left to their lease", len(rest))

    async def _claim(self) -> list[tuple[OutboxMessage, datetime]]:
        now = self._clock.now()
        lease = now + self._lease
        due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(
            status=DeliveryStatus.SENDING, lease_until__lte=now
        )
        claimed = []
        # On PostgreSQL, select_for_update(skip_locked=True) hands each dispatcher rows no
        # other dispatcher is claiming at this moment, so they do not queue behind each other;
        # SQLite ignores it (one writer at a time). Either way the conditional update decides
        # who owns a row.
        async with in_transaction():
            candidates = (
                await OutboxMessage.filter(due)
                .select_for_update(skip_locked=True)
                .order_by("next_attempt_at")
                .limit(self._batch)
            )
            self._more_due = len(candidates) >= self._batch
            for message in candidates:
                won = await OutboxMessage.filter(
                    due, id=message.id, status=message.status, attempts=message.attempts
                ).update(status=DeliveryStatus.SENDING, lease_until=lease)
                if won:
                    if message.status is DeliveryStatus.SENDING:
                        log.warning("mail %s: reclaimed after an expired lease (a dispatcher stopped mid-send)", message.id)
                    claimed.append((message, lease))
        return claimed

    async def _deliver(self, message: OutboxMessage, lease: datetime) -> None:
        now = self._clock.now()
        if now >= datetime.fromisoformat(message.payload["expires_at"]):
            await self._record(message, lease, status=DeliveryStatus.EXPIRED, last_error="expired before it could be sent")
            metrics.delivery(message.kind.value, "expired")
            log.info("mail %s (%s) expired before delivery", message.id, message.kind.value)
            return
        attempts = message.attempts + 1
        try:
            mail = self.renderer.render(message)
        except Exception as err:  # templates are checked at start-up; this is a bug, not a retry
            log.exception("mail %s (%s) could not be rendered", message.id, message.kind.value)
            await self._failed(message, lease, attempts, PermanentDeliveryError(f"could not render: {type(err).__name__}"))
            return
        try:
            result = await self._send(mail)
        except DeliveryError as err:
            await self._failed(message, lease, attempts, err)
            return
        await self._record(
            message,
            lease,
            status=DeliveryStatus.SENT,
            attempts=attempts,
            sent_at=self._clock.now(),
            last_error=None,
            provider_message_id=(result.provider_message_id or "")[:PROVIDER_MESSAGE_ID_MAX] or None,
        )
        metrics.delivery(message.kind.value, "sent", (self._clock.now() - message.created_at).total_seconds())
        log.info("mail %s (%s) sent via %s, attempt %d", message.id, message.kind.value, result.transport, attempts)

    async def _send(self, mail: EmailMessage) -> DeliveryResult:
        try:
            async with asyncio.timeout(self._send_timeout):
                return await self.transport.deliver(mail)
        except DeliveryError:
            raise
        except TimeoutError as err:
            raise TransientDeliveryError(f"transport {self.transport.name} did not finish within {self._send_timeout:g}s") from err
        except Exception as err:  # a transport bug must not kill the dispatcher
            log.exception("transport %s raised unexpectedly", self.transport.name)
            raise TransientDeliveryError(f"transport {self.transport.name} raised {type(err).__name__}") from err

    async def _failed(self, message: OutboxMessage, lease: datetime, attempts: int, err: DeliveryError) -> None:
        reason = f"{'transient' if err.transient else 'permanent'}: {err.provider_message}"[:DELIVERY_ERROR_MAX]
        if not err.transient or attempts >= self.max_attempts:
            await self._record(message, lease, status=DeliveryStatus.FAILED, attempts=attempts, last_error=reason)
            metrics.delivery(message.kind.value, "failed")
            log.warning("mail %s (%s) failed for good after %d attempts: %s", message.id, message.kind.value, attempts, reason)
            return
        delay = self.retry_delay(attempts)
        if err.retry_after is not None:
            delay = max(delay, min(err.retry_after, MAX_RETRY_AFTER_SECONDS))
        await self._record(
            message,
            lease,
            status=DeliveryStatus.PENDING,
            attempts=attempts,
            next_attempt_at=self._clock.now() + timedelta(seconds=delay),
            last_error=reason,
        )
        metrics.delivery(message.kind.value, "retry")
        log.info("mail %s (%s) attempt %d failed (%s); retry in %.1fs", message.id, message.kind.value, attempts, reason, delay)

    async def _record(self, message: OutboxMessage, lease: datetime, **changes: object) -> None:
        """Write an outcome, if the claim is still ours (status SENDING under our lease)."""
        recorded = await OutboxMessage.filter(id=message.id, status=DeliveryStatus.SENDING, lease_until=lease).update(
            lease_until=None, **changes
        )
        if not recorded:
            log.warning("mail %s: lease lost before the outcome could be recorded", message.id)
