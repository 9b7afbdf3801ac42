"""Client authentication for the token endpoint, and the record of when each key was last used.

This is the hot path, so it does one indexed lookup by ``client_id`` per request and no write:
nothing is cached, so a key that is revoked, locked or expired stops authenticating with the
very next request. Last use is remembered in memory and written in batches by
:class:`LastUseRecorder`, at most once per key per flush interval.

The lookup is a point read (:func:`keyrelease.db.fastpath.key_by_client_id`): one parametrised
SQL statement rather than an ORM query, whose building and hydration cost many times what the
database spends answering it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from keyrelease import credentials
from keyrelease.clock import Clock
from keyrelease.db import fastpath
from keyrelease.models import CLIENT_ID_MAX, AdminToken, ApiKey
from keyrelease.service.rotation import Rotations
from keyrelease.status import may_authenticate

log = logging.getLogger("keyrelease.clients")


class AuthenticatedClient(NamedTuple):
    """A key whose credentials were accepted; what an access token says about it."""

    key_id: uuid.UUID
    client_id: str
    institution: str
    expires_at: datetime | None


class KeyRecord(NamedTuple):
    """What the token endpoint reads of a key (satisfies :class:`keyrelease.status.KeyTimes`),
    in the order :func:`keyrelease.db.fastpath.key_by_client_id` returns it: the key's fields
    (:data:`_KEY_FIELDS`), its institution's name, its open rotation's. A named tuple: the
    token endpoint builds one per request, and a tuple is built in one step."""

    id: uuid.UUID
    secret_hash: str | None
    verified_at: datetime | None
    locked_at: datetime | None
    revoked_at: datetime | None
    compromised_at: datetime | None
    revealed_at: datetime | None
    expires_at: datetime | None
    verification_deadline: datetime | None
    institution: str
    #: The key's open rotation, if any (:data:`keyrelease.db.fastpath.ROTATION_FIELDS`).
    rotation_id: uuid.UUID | None = None
    new_secret_hash: str | None = None
    rotation_released_at: datetime | None = None
    new_secret_first_used_at: datetime | None = None

    def __repr__(self) -> str:
        return f"KeyRecord(id={self.id!r}, secret_hash=<hidden>)"


#: The key's fields the lookup reads: every field of :class:`KeyRecord` before the institution's
#: name (the rotation's follow it).
_KEY_FIELDS = KeyRecord._fields[: KeyRecord._fields.index("institution")]
assert KeyRecord._fields[len(_KEY_FIELDS) + 1 :] == tuple(fastpath.ROTATION_FIELDS)


async def find_key(client_id: str) -> KeyRecord | None:
    """The key with this client ID (unique index), or None: one point read."""
    row = await fastpath.key_by_client_id(client_id, _KEY_FIELDS)
    return KeyRecord._make(row) if row is not None else None


class LastUseRecorder:
    """Remembers the latest use of each key, and of each admin token
    (:mod:`keyrelease.service.api_tokens`), in memory; :meth:`flush` writes them in one
    transaction. The app flushes every ``flush_seconds`` and once more on shutdown, so
    ``lastUsedAt`` lags by at most that long, and a busy key or token costs one write per
    interval rather than one per request. Each write only moves ``last_used_at`` forward, so
    several instances flushing their own batches agree."""

    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        #: Key uses by the key's id as an integer (``UUID.int``): hashed and compared in C, where a
        #: ``UUID`` key costs two Python calls per token request.
        self._pending: dict[int, datetime] = {}
        self._pending_tokens: dict[int, datetime] = {}

    @property
    def pending(self) -> Mapping[uuid.UUID, datetime]:
        """Key uses recorded since the last flush (a read-only copy)."""
        return MappingProxyType({uuid.UUID(int=key): at for key, at in self._pending.items()})

    @property
    def pending_tokens(self) -> Mapping[int, datetime]:
        """Admin-token uses recorded since the last flush (read-only view)."""
        return MappingProxyType(self._pending_tokens)

    def record(self, key_id: uuid.UUID, at: datetime) -> None:
        _keep_latest(self._pending, key_id.int, at)

    def record_token(self, token_id: int, at: datetime) -> None:
        _keep_latest(self._pending_tokens, token_id, at)

    async def flush(self) -> int:
        """Write the remembered uses; returns how many keys and tokens were written. On failure
        the batch is kept for the next flush."""
        if not self._pending and not self._pending_tokens:
            return 0
        batch, self._pending = self._pending, {}
        tokens, self._pending_tokens = self._pending_tokens, {}
        try:
            async with in_transaction():
                uses: tuple[tuple[type[ApiKey | AdminToken], Mapping[Any, datetime]], ...] = (
                    (ApiKey, {uuid.UUID(int=key): at for key, at in batch.items()}),
                    (AdminToken, tokens),
                )
                for model, used in uses:
                    for id, at in used.items():
                        await model.filter(Q(last_used_at=None) | Q(last_used_at__lt=at), id=id).update(last_used_at=at)
        except BaseException:
            for key, at in batch.items():
                _keep_latest(self._pending, key, at)
            for token_id, at in tokens.items():
                self.record_token(token_id, at)
            raise
        return len(batch) + len(tokens)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("last-use flush failed; will retry")


def _keep_latest(pending: dict[Any, datetime], id: Any, at: datetime) -> None:
    current = pending.get(id)
    if current is None or at > current:
        pending[id] = at


class Attempt(NamedTuple):
    """Credentials as :meth:`ClientAuthenticator.authenticate` works with them."""

    client_id: str
    #: The readings of the password that are not mistyped ``krs_`` secrets (none: refused
    #: without a lookup).
    readings: tuple[str, ...]
    #: The key's point read, None when no lookup is due.
    read: fastpath.PointRead | None

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"Attempt(client_id={self.client_id!r}, readings=<hidden>)"


class ClientAuthenticator:
    """The use-case behind ``POST /ids/auth/login``: may these credentials have a token?"""

    def __init__(self, *, clock: Clock, last_use: LastUseRecorder, rotations: Rotations) -> None:
        self.clock = clock
        self.last_use = last_use
        self.rotations = rotations

    def attempt(self, client_id: str, secrets: Sequence[str]) -> Attempt:
        """What :meth:`authenticate` needs of these credentials, worked out once: the
        readings of the password that are not mistyped ``krs_`` secrets, and the read of the key
        (None when no lookup is due), for the rate limiter to carry to the database with its
        counters (one round trip instead of two on PostgreSQL)."""
        readings = tuple(secret for secret in secrets if not credentials.is_mistyped_secret(secret))
        due = readings and 0 < len(client_id) <= CLIENT_ID_MAX
        return Attempt(client_id, readings, fastpath.key_read(client_id, _KEY_FIELDS) if due else None)

    async def authenticate(
        self,
        client_id: str,
        secrets: Sequence[str],
        prefetched: Any = fastpath.NOT_READ,
        attempt: Attempt | None = None,
    ) -> AuthenticatedClient | None:
        """The client, if ``client_id`` names a revealed key that may authenticate
        (:func:`keyrelease.status.may_authenticate`) and one of ``secrets`` (forms of the one
        password the client sent) is its secret; otherwise None, whatever the reason.

        Every secret is hashed and compared in constant time even when the key does not
        exist, so an unknown client costs the same as a known one. The exception: when every
        reading of the password is a mistyped ``krs_`` secret (its checksum fails,
        :func:`keyrelease.credentials.is_mistyped_secret`), no key can have it, and it is
        refused before any lookup. That reveals nothing about any client: the checksum is
        public, so the caller knew the answer before asking.

        During a released rotation both secrets authenticate until the old one's time is up
        (:meth:`RotationPolicy.old_secret_retires_at`, from timestamps). Every secret is
        compared with both hashes whatever the key, so old, new and unknown cost the same.
        The new secret's first success is recorded once (a conditional update).

        ``attempt``: :meth:`attempt` of these credentials, when the caller has it already;
        ``prefetched``: the row of its ``read`` when the rate limiter's trip to the database
        brought it (or None: no such key); by default the key is read here.
        """
        attempt = attempt or self.attempt(client_id, secrets)
        if not attempt.readings:
            return None
        digests = [credentials.hash_secret(secret) for secret in attempt.readings]
        now = self.clock.now()
        if attempt.read is None:  # a client ID no key can have: hashed and compared all the same
            key = None
        else:
            row = await fastpath.point_read(attempt.read) if prefetched is fastpath.NOT_READ else prefetched
            key = KeyRecord._make(row) if row is not None else None
        # Each reading's hash against both of the key's hashes (or stand-ins): the same work for
        # old, new and unknown secrets, and for a key with or without a rotation.
        old = key.secret_hash if key is not None else None
        new = key.new_secret_hash if key is not None else None
        old_matches = [credentials.hash_matches(digest, old) for digest in digests]
        new_matches = [credentials.hash_matches(digest, new) for digest in digests]
        if key is None or key.revealed_at is None or not may_authenticate(key, now):
            return None
        by_new = any(new_matches) and key.rotation_released_at is not None
        if not (by_new or (any(old_matches) and self._old_secret_live(key, now))):
            return None
        if by_new and key.new_secret_first_used_at is None:
            assert key.rotation_id is not None
            await self.rotations.record_first_use(key.rotation_id, key.id, now)
        self.last_use.record(key.id, now)
        return AuthenticatedClient(
            key_id=key.id, client_id=client_id, institution=key.institution, expires_at=key.expires_at
        )

    def _old_secret_live(self, key: KeyRecord, now: datetime) -> bool:
        retires = self.rotations.policy.old_secret_retires_at(key.rotation_released_at, key.new_secret_first_used_at)
        return retires is None or now < retires
