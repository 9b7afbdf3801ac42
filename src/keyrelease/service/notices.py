"""Expiry notices: a key about to expire is announced to its creating admin (and, for a partner
key, to the partner) at each threshold of ``KEYRELEASE_EXPIRY_NOTICES`` that was still ahead
when the key was verified, each **exactly once** however many instances and workers run the
pass (:meth:`ExpiryNoticeService.send_due`, every 30 seconds in ``services.background``).

Exactly once, by the database: for each key it handles, a pass

1. inserts one :class:`~keyrelease.models.ExpiryNotice` row per crossed threshold, unique per
   (key, expiry, threshold), insert-or-nothing and with no outcome;
2. sets the outcome of each by a conditional update ``… WHERE outcome IS NULL``: SENT for the
   nearest threshold, SKIPPED or NOT_AHEAD for the others; the row count of the SENT update
   says whether this pass won;
3. only if it won, in the same transaction, records EXPIRY_NOTICE and queues the mail.

A parallel pass blocks on the uncommitted rows, then finds the outcome set and does nothing.
Only keys that may still authenticate (``status.may_authenticate``) get notices. After a
late start (the service was down past several thresholds) only the nearest due threshold is
sent; the further ones are recorded SKIPPED and never go out later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from keyrelease import expiry
from keyrelease.clock import Clock
from keyrelease.mail import outbox
from keyrelease.models import Admin, ApiKey, EventType, ExpiryNotice, Institution, KeyEvent, KeyKind, NoticeOutcome
from keyrelease.service.queries import status_filter
from keyrelease.status import KeyStatus, may_authenticate

log = logging.getLogger("keyrelease.notices")
#: Keys handled per threshold in one pass; the next pass, 30 seconds on, takes the rest.
BATCH = 200


class ExpiryNoticeService:
    """Sends the expiry notices that are due. Framework-free; safe in any number of processes."""

    def __init__(
        self, *, thresholds: tuple[timedelta, ...], clock: Clock, on_mail_queued: Callable[[], None] = lambda: None
    ) -> None:
        self.thresholds = tuple(sorted(thresholds, reverse=True))
        self.clock = clock
        self._on_mail_queued = on_mail_queued

    async def send_due(self, batch: int = BATCH) -> int:
        """One pass: every key with a crossed, undecided threshold; how many notices were sent
        (a partner key's two mails count as one notice)."""
        now = self.clock.now()
        sent = 0
        for threshold in reversed(self.thresholds):  # the nearest first: it is the one sent
            for key_id in await self._undecided(threshold, now, batch):
                sent += await self._decide(key_id, now)
        if sent:
            self._on_mail_queued()
        return sent

    async def _undecided(self, threshold: timedelta, now: datetime, batch: int) -> list[uuid.UUID]:
        """Keys that may authenticate, expiring within ``threshold`` of ``now``, with no decided
        notice at this threshold or a nearer one: a bounded read of the ``expires_at`` index."""
        horizon = now + threshold
        decided = ExpiryNotice.filter(
            expires_at__gt=now, expires_at__lte=horizon, threshold_seconds__lte=int(threshold.total_seconds())
        ).values("key_id")
        ids = (
            await ApiKey.filter(status_filter(KeyStatus.ACTIVE, now), expires_at__lte=horizon)
            .filter(id__not_in=Subquery(decided))
            .order_by("expires_at")
            .limit(batch)
            .values_list("id", flat=True)
        )
        return list(ids)  # type: ignore[arg-type]  # flat values_list

    async def _decide(self, key_id: uuid.UUID, now: datetime) -> int:
        """Decide the key's crossed thresholds, in one transaction; 1 if this pass sent a notice."""
        async with in_transaction():
            key = await ApiKey.get_or_none(id=key_id)
            if key is None or key.expires_at is None or key.verified_at is None or not may_authenticate(key, now):
                return 0
            due = expiry.due_notices(self.thresholds, expires_at=key.expires_at, verified_at=key.verified_at, now=now)
            crossed = sorted([*due.skipped, *([due.send] if due.send else [])], reverse=True)
            if not crossed:
                return 0
            await ExpiryNotice.bulk_create(
                [ExpiryNotice(key_id=key.id, expires_at=key.expires_at, threshold_seconds=_seconds(t)) for t in crossed],
                ignore_conflicts=True,
            )
            for threshold in due.skipped:
                outcome = NoticeOutcome.NOT_AHEAD if key.expires_at - threshold <= key.verified_at else NoticeOutcome.SKIPPED
                await self._set(key, threshold, outcome, now)
            if due.send is None or not await self._set(key, due.send, NoticeOutcome.SENT, now):
                return 0
            recipients = await self._notify(key, expiry.format_duration(due.send), now)
        log.info("key %s: expiry notice %s sent to %d recipient(s)", key.id, expiry.format_duration(due.send), recipients)
        return 1

    async def _set(self, key: ApiKey, threshold: timedelta, outcome: NoticeOutcome, now: datetime) -> bool:
        """The conditional update that decides one threshold; whether this pass decided it."""
        return bool(
            await ExpiryNotice.filter(
                key_id=key.id, expires_at=key.expires_at, threshold_seconds=_seconds(threshold), outcome=None
            ).update(outcome=outcome, decided_at=now)
        )

    async def _notify(self, key: ApiKey, threshold: str, now: datetime) -> int:
        await KeyEvent.create(key_id=key.id, type=EventType.EXPIRY_NOTICE, at=now, detail=threshold)
        institution = await Institution.get(id=key.institution_id)
        recipients = [("admin", email) for email in await self._admins_to_tell(key)]
        if key.kind is KeyKind.PARTNER and key.partner_email:
            recipients.append(("partner", key.partner_email))
        for role, recipient in recipients:
            await outbox.queue_expiry_notice(
                recipient, role=role, key=key, threshold=threshold, institution_name=institution.name, now=now
            )
        return len(recipients)


    async def _admins_to_tell(self, key: ApiKey) -> list[str]:
        """The creating admin, at the address the key's codes went to; if that admin has been
        disabled (offboarded) or is gone, every enabled admin of the institution instead, so the
        notice reaches someone who can act on it."""
        creator = await Admin.get_or_none(id=key.created_by_id) if key.created_by_id is not None else None
        if creator is not None and creator.disabled_at is None and key.notify_email:
            return [key.notify_email]
        emails = await Admin.filter(institution_id=key.institution_id, disabled_at=None).order_by("id").values_list("email", flat=True)
        return [str(email) for email in emails]


def _seconds(threshold: timedelta) -> int:
    return int(threshold.total_seconds())
