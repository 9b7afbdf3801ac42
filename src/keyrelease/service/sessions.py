"""Console sessions after a sign-in with the institution's identity provider.

A session is a row (:class:`~keyrelease.models.AdminSession`) keyed by the SHA-256 of a random
256-bit value that only the browser holds (in an HttpOnly cookie, set by the HTTP layer): a
database dump alone opens no session. A session ends at the first of: sign-out (``ended_at``,
set on the server, so a copied cookie stops working too), ``idle`` after its last use, and
``lifetime`` after sign-in. The admin's row is read with it at every request, so a disabled
admin's sessions are refused from the next request, as their tokens are.

The last use is written at most once a minute (a conditional update), not at every request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from keyrelease import credentials
from keyrelease.clock import Clock
from keyrelease.models import Admin, AdminSession

#: KEYRELEASE_SESSION_IDLE_SECONDS and KEYRELEASE_SESSION_LIFETIME_SECONDS.
DEFAULT_IDLE_SECONDS = 30 * 60
DEFAULT_LIFETIME_SECONDS = 12 * 60 * 60
#: How stale the recorded last use may get before a request writes it again.
_TOUCH_AFTER = timedelta(seconds=60)
_SESSION_BYTES = 32
_MAX_LENGTH = 100


@dataclass(frozen=True)
class SessionService:
    clock: Clock
    idle_seconds: int = DEFAULT_IDLE_SECONDS
    lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS

    async def open(self, admin_id: int) -> str:
        """A new session for the admin; its value (for the cookie) is returned only here."""
        value = secrets.token_urlsafe(_SESSION_BYTES)
        now = self.clock.now()
        await AdminSession.filter(expires_at__lt=now - timedelta(days=1)).delete()  # long over: nothing to keep
        await AdminSession.create(
            id_hash=credentials.hash_secret(value),
            admin_id=admin_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=self.lifetime_seconds),
        )
        return value

    async def admin(self, value: str) -> Admin | None:
        """The admin whose live session ``value`` is, with ``admin.institution`` attached; None
        for an unknown, ended, idle, expired session or a disabled admin's (not said which)."""
        if not value or len(value) > _MAX_LENGTH:
            return None
        digest = credentials.hash_secret(value)
        row = await AdminSession.get_or_none(id_hash=digest).select_related("admin", "admin__institution")
        now = self.clock.now()
        if row is None or row.ended_at is not None or row.expires_at <= now or row.admin.disabled_at is not None:
            return None
        if row.last_seen_at + timedelta(seconds=self.idle_seconds) <= now:
            return None
        if now - row.last_seen_at >= _TOUCH_AFTER:
            await AdminSession.filter(id_hash=digest, ended_at=None, last_seen_at__lt=now).update(last_seen_at=now)
        return row.admin

    async def end(self, value: str) -> bool:
        """Sign out: the session is refused from now on, wherever its cookie is. False when
        there was no live session with that value (nothing changed)."""
        if not value or len(value) > _MAX_LENGTH:
            return False
        ended = await AdminSession.filter(id_hash=credentials.hash_secret(value), ended_at=None).update(ended_at=self.clock.now())
        return bool(ended)
