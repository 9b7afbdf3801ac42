"""Leaked secrets: a report that a client secret was found in public retires it at once.

One use-case, :meth:`LeakService.report`, behind both ``POST /secret-scanning/github`` (GitHub's
secret-scanning partner program) and ``keyrelease keys report-leak``. A report naming the secret
of a key that may authenticate (:func:`keyrelease.status.may_authenticate`) sets the key's
``compromised_at`` and ``compromise_url`` by one conditional update::

    ApiKey.filter(id=…, secret_hash=…, compromised_at=None, revoked_at=None, …)
          .update(compromised_at=now, compromise_url=…)

and the transaction that wins it, and only that one, records LEAK_REPORTED and queues a notice
to every admin of the key's institution (and, for a partner key, the partner). Parallel or
repeated reports of one secret therefore retire it and mail about it exactly once. Nothing is
cached on the token path, so the secret is refused from the next token request.

Recovery is a new key (a new verified release): secret rotation does not exist yet.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from keyrelease import credentials, validation
from keyrelease.clock import Clock
from keyrelease.mail import outbox
from keyrelease.models import EVENT_DETAIL_MAX, URL_MAX, Admin, ApiKey, EventType, Institution, KeyEvent, KeyKind, KeyRotation
from keyrelease.service import rotation

log = logging.getLogger("keyrelease.leaks")

#: Longer values cannot be a secret of ours (legacy secrets are at most this long too).
SECRET_MAX = 1024
SOURCE_MAX = 100
#: A leak notice that could not be delivered for this long is no longer worth sending.
NOTICE_TTL = timedelta(days=7)


class LeakVerdict(StrEnum):
    RETIRED = "RETIRED"
    """The secret was live and this report retired it."""
    ALREADY_RETIRED = "ALREADY_RETIRED"
    """An earlier report retired it; nothing changed."""
    NOT_LIVE = "NOT_LIVE"
    """No key may authenticate with this secret (unknown, revoked, expired, …); nothing changed."""


@dataclass(frozen=True)
class LeakOutcome:
    verdict: LeakVerdict
    #: The retired key(s): none for NOT_LIVE.
    key_ids: tuple[uuid.UUID, ...] = ()
    #: Notices queued by this report (admins and partner).
    notices: int = 0

    @property
    def true_positive(self) -> bool:
        """A keyrelease secret that was live when first reported: GitHub's ``true_positive``."""
        return self.verdict is not LeakVerdict.NOT_LIVE


class InvalidLeakReport(ValueError):
    """The report's URL or source is unusable; the message says which and why (never the secret)."""


def clean_url(url: str | None, secret: str) -> str:
    """The report's URL as it is recorded: at most :data:`URL_MAX` characters, no control
    characters, and never the secret itself (replaced by ``[secret]``)."""
    url = (url or "").strip()
    if (problem := validation.control_character_problem({"url": url}, {"url": "The URL"})) is not None:
        raise InvalidLeakReport(problem[1])
    if len(url) > URL_MAX:
        raise InvalidLeakReport(f"The URL must be at most {URL_MAX} characters.")
    return url.replace(secret, "[secret]") if secret else url


def _clean_source(source: str | None) -> str:
    source = (source or "").strip()
    if validation.control_character(source) is not None or len(source) > SOURCE_MAX:
        return "unknown"
    return source


@dataclass(frozen=True)
class LeakReport:
    """One reported secret: where it was found (``url``) and who found it (``source``)."""

    secret: str
    url: str | None
    source: str

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"LeakReport(secret=<hidden>, url={self.url!r}, source={self.source!r})"


class LeakService:
    """Retires leaked secrets. Framework-free: callers pass plain values and get values back."""

    def __init__(self, *, clock: Clock, on_mail_queued: Callable[[], None] = lambda: None) -> None:
        self.clock = clock
        self._on_mail_queued = on_mail_queued

    async def report_many(self, reports: list[LeakReport]) -> list[LeakOutcome]:
        """Each report in turn. Every URL is checked first, so an unusable one raises
        :class:`InvalidLeakReport` before any report changes anything."""
        for item in reports:
            clean_url(item.url, item.secret)
        return [await self.report(item.secret, url=item.url, source=item.source) for item in reports]

    async def report(self, secret: str, *, url: str | None, source: str) -> LeakOutcome:
        """Retire ``secret`` if a key may authenticate with it. ``url`` says where it was found,
        ``source`` who found it (``github: commit``, ``operator``). Raises
        :class:`InvalidLeakReport` for an unusable URL, before anything is read."""
        url = clean_url(url, secret)
        source = _clean_source(source)
        if (
            not secret
            or len(secret) > SECRET_MAX
            or validation.control_character(secret) is not None
            or credentials.is_mistyped_secret(secret)  # no key can have it: no lookup
        ):
            return LeakOutcome(LeakVerdict.NOT_LIVE)
        secret_hash = credentials.hash_secret(secret)
        found = [key.id for key in await ApiKey.filter(secret_hash=secret_hash).only("id")]
        # A rotation's new secret during the overlap lives on the rotation until the old one retires.
        rotated = await KeyRotation.filter(new_secret_hash=secret_hash, open_key_id__not_isnull=True).values_list(
            "key_id", flat=True
        )
        if not found and not rotated:
            return LeakOutcome(LeakVerdict.NOT_LIVE)
        now = self.clock.now()
        retired: list[uuid.UUID] = []
        notices = 0
        candidates = [(key_id, Q(secret_hash=secret_hash)) for key_id in found]
        candidates += [(_as_uuid(key_id), Q()) for key_id in rotated if _as_uuid(key_id) not in found]
        for key_id, holds in candidates:
            queued = await self._retire(key_id, holds, now, url, source)
            if queued is not None:
                retired.append(key_id)
                notices += queued
        if retired:
            self._on_mail_queued()
            return LeakOutcome(LeakVerdict.RETIRED, tuple(retired), notices)
        # Nothing retired now: did an earlier report retire it? (Read after the attempt, so a
        # parallel report that won is seen.)
        earlier = await ApiKey.filter(secret_hash=secret_hash, compromised_at__not_isnull=True).values_list(
            "id", flat=True
        )
        if earlier:
            return LeakOutcome(LeakVerdict.ALREADY_RETIRED, tuple(earlier))  # type: ignore[arg-type]  # flat values_list
        return LeakOutcome(LeakVerdict.NOT_LIVE)

    async def _retire(self, key_id: uuid.UUID, holds: Q, now: datetime, url: str, source: str) -> int | None:
        """The conditional update; when it wins, the event and the notices. How many notices
        were queued, or None when this report did not retire the key. ``holds``: the key's own
        secret is the leaked one (empty for a rotation's new secret, found on the rotation)."""
        async with in_transaction():
            won = await ApiKey.filter(
                Q(expires_at=None) | Q(expires_at__gt=now),
                holds,
                id=key_id,
                compromised_at=None,
                revoked_at=None,
                verified_at__not_isnull=True,
                revealed_at__not_isnull=True,
            ).update(compromised_at=now, compromise_url=url or None)
            if not won:
                return None
            key = await ApiKey.get(id=key_id)
            detail = f"{source}: {url}" if url else source
            await KeyEvent.create(key_id=key_id, type=EventType.LEAK_REPORTED, at=now, detail=_fit(detail, EVENT_DETAIL_MAX))
            await rotation.end_open(key_id, now, "leak reported")
            institution = await Institution.get(id=key.institution_id)
            admins = await Admin.filter(institution_id=key.institution_id).order_by("id").values_list("email", flat=True)
            recipients: list[tuple[str, str]] = [("admin", str(email)) for email in admins]
            if key.kind is KeyKind.PARTNER and key.partner_email:
                recipients.append(("partner", key.partner_email))
            for role, recipient in recipients:
                await outbox.queue_secret_leaked(
                    recipient,
                    role=role,
                    key=key,
                    institution_name=institution.name,
                    leak_url=url,
                    source=source,
                    reported_at=now,
                    expires_at=now + NOTICE_TTL,
                )
        log.warning(
            "key %s: secret reported leaked (%s) and retired; %d notice(s) queued", key_id, source, len(recipients)
        )
        return len(recipients)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
