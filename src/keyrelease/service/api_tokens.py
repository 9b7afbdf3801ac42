"""An admin's API tokens, from the console: create one (named, with an expiry; its value shown
once), list them with their last use, revoke one. And the sign-in of every bearer request,
which notes the token's use.

They are rows of the table ``keyrelease admin create`` and ``admin token`` write
(:mod:`keyrelease.service.admins`, whose tokens are named ``cli``): the same hash at rest
(SHA-256, :func:`keyrelease.credentials.hash_secret`), the same check on every request, so a
revoked or expired token stops with the next one.

* **Own tokens only.** Every read and write is filtered by the signed-in admin's id: another
  admin's token id gets the answer an unknown id gets (:class:`ApiTokenNotFound`).
* **Bounded.** An expiry is required, ahead of now and at most ``max_lifetime_days`` away
  (``KEYRELEASE_API_TOKEN_MAX_LIFETIME_DAYS``). An admin holds at most ``max_live`` live
  tokens (neither revoked nor expired; the CLI's count too, though the CLI is not refused):
  the count and the insert run under the admin's row lock (:func:`keyrelease.service.budget.hold`),
  so parallel requests cannot both take the last place. The mutations count against the
  per-admin mutation rate limit like every other (the GraphQL layer).
* **Last use without a write per request.** :meth:`ApiTokens.sign_in` records the use in the
  :class:`keyrelease.service.clients.LastUseRecorder` a key's use goes to; it reaches
  ``last_used_at`` at the next flush (``KEYRELEASE_LAST_USED_FLUSH_SECONDS``).
* **Never the value.** The value exists in :class:`NewApiToken` only, whose ``repr`` hides it;
  the log line of a creation or a revocation names the admin and the token's id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from keyrelease import credentials, validation
from keyrelease.clock import Clock
from keyrelease.models import TOKEN_NAME_MAX, Admin, AdminToken
from keyrelease.service import admins, budget
from keyrelease.service.clients import LastUseRecorder
from keyrelease.service.results import InvalidInput, SignInRefused

log = logging.getLogger("keyrelease.admins")

#: The longest lifetime of a token made in the console (KEYRELEASE_API_TOKEN_MAX_LIFETIME_DAYS).
DEFAULT_MAX_LIFETIME_DAYS = 90
#: The most live tokens (neither revoked nor expired) an admin may hold to create another.
MAX_LIVE_TOKENS = 20
#: The most tokens ``apiTokens`` lists: every live one, then the newest ended ones.
MAX_LISTED = 50

#: What the console's form calls each input.
FIELD_LABELS = {"name": "The name", "expiresAt": "The expiry date", "id": "The token id"}


@dataclass(frozen=True)
class NewApiToken:
    """A token just made: its row, and its value, which is never shown again."""

    token: AdminToken
    value: str

    def __repr__(self) -> str:
        return f"NewApiToken(id={self.token.id!r}, value=<hidden>)"


@dataclass(frozen=True)
class ApiTokenNotFound:
    """The one answer for an unknown id, a malformed one and another admin's token."""

    message: str = "No API token of yours has this id."


@dataclass(frozen=True)
class ApiTokenLimitReached:
    limit: int

    @property
    def message(self) -> str:
        return (
            f"You already hold {self.limit} API tokens that are neither revoked nor expired, the most allowed. "
            "Revoke one you no longer use before creating another."
        )


def is_live(token: AdminToken, now: datetime) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


class ApiTokens:
    """The use-cases behind ``createApiToken``, ``apiTokens`` and ``revokeApiToken``, and the
    sign-in of a bearer request."""

    def __init__(
        self,
        *,
        clock: Clock,
        last_use: LastUseRecorder,
        max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
        max_live: int = MAX_LIVE_TOKENS,
    ) -> None:
        self.clock = clock
        self.last_use = last_use
        self.max_lifetime_days = max_lifetime_days
        self.max_live = max_live

    async def sign_in(self, token: str) -> admins.SignedIn | None:
        """:func:`keyrelease.service.admins.sign_in`, the token's use remembered for the next
        flush (no write here)."""
        signed_in = await admins.sign_in(self.clock, token)
        if signed_in is not None:
            self.last_use.record_token(signed_in.token_id, self.clock.now())
        return signed_in

    async def create(
        self, admin: Admin, *, name: str, expires_at: datetime
    ) -> NewApiToken | InvalidInput | ApiTokenLimitReached | SignInRefused:
        """A new token for ``admin``. Nothing is written when the input is refused."""
        now = self.clock.now()
        cleaned = name.strip()
        if (problem := self._check(now, name, cleaned, expires_at)) is not None:
            return problem
        value = credentials.new_admin_token()
        async with in_transaction():
            await budget.hold(admin.id)
            if await Admin.filter(id=admin.id, disabled_at__not_isnull=True).exists():
                return SignInRefused()
            live = await AdminToken.filter(_live(now), admin_id=admin.id).count()
            if live >= self.max_live:
                return ApiTokenLimitReached(limit=self.max_live)
            row = await AdminToken.create(
                admin_id=admin.id,
                name=cleaned,
                token_hash=credentials.hash_secret(value),
                created_at=now,
                expires_at=expires_at,
            )
        log.info("admin %d created API token %d", admin.id, row.id)
        return NewApiToken(token=row, value=value)

    def _check(self, now: datetime, name: str, cleaned: str, expires_at: datetime) -> InvalidInput | None:
        if (problem := validation.control_character_problem({"name": name}, FIELD_LABELS)) is not None:
            return InvalidInput(*problem)
        if not cleaned:
            return InvalidInput("name", "Name must not be empty.")
        if len(cleaned) > TOKEN_NAME_MAX:
            return InvalidInput("name", f"Name must be at most {TOKEN_NAME_MAX} characters.")
        if expires_at.tzinfo is None:
            return InvalidInput("expiresAt", "The expiry date must include a time zone, e.g. 2031-01-01T00:00:00Z.")
        if expires_at <= now:
            return InvalidInput("expiresAt", "The expiry date must be in the future.")
        if expires_at > now + timedelta(days=self.max_lifetime_days):
            return InvalidInput("expiresAt", f"The expiry date must be at most {self.max_lifetime_days} days from now.")
        return None

    async def list(self, admin: Admin) -> list[AdminToken]:
        """The admin's own tokens: every live one, newest first, then the newest that ended
        (revoked or expired), :data:`MAX_LISTED` in all."""
        now = self.clock.now()
        live = await AdminToken.filter(_live(now), admin_id=admin.id).order_by("-id").limit(MAX_LISTED)
        ended = await AdminToken.filter(~_live(now), admin_id=admin.id).order_by("-id").limit(MAX_LISTED - len(live))
        return [*live, *ended]

    async def revoke(self, admin: Admin, token_id: str) -> AdminToken | ApiTokenNotFound | InvalidInput:
        """Revoke one of the admin's own tokens, at once: the next request with it is refused.
        Revoking twice keeps the first time. Revoking the token in use is allowed."""
        if (problem := validation.control_character_problem({"id": token_id}, FIELD_LABELS)) is not None:
            return InvalidInput(*problem)
        raw = token_id.strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
            return ApiTokenNotFound()
        now = self.clock.now()
        changed = await AdminToken.filter(id=int(raw), admin_id=admin.id, revoked_at=None).update(revoked_at=now)
        row = await AdminToken.get_or_none(id=int(raw), admin_id=admin.id)
        if row is None:
            return ApiTokenNotFound()
        if changed:
            log.info("admin %d revoked API token %d", admin.id, row.id)
        return row


def _live(now: datetime) -> Q:
    return Q(revoked_at=None) & (Q(expires_at=None) | Q(expires_at__gt=now))
