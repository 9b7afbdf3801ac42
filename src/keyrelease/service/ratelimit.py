"""Rate limits: fixed-window counters per rule and subject.

Framework-free: callers pass the client address and the target (a client ID, a key ID, an
admin id) and get back ``None`` (go ahead) or :class:`Limited` (refuse, with Retry-After).

A counter is one row per *bucket* (``rule:subject``) holding the end of its current window
and the count in it. Every check is **one** atomic upsert over all the buckets it touches
(:func:`keyrelease.db.fastpath.hit_counters`: insert each counter at 1, or on conflict add one
to it if its window is still the current one, else start it again at 1; return the counts),
so limits hold across processes and instances on one PostgreSQL (and on SQLite ≥ 3.35),
without a read-then-write race. A window that ended is reset by the same statement; a
request from a clock slightly behind counts in the newer window. Rows whose window ended
are deleted by :meth:`RateLimiter.prune` (the app runs it every minute).

:class:`MemoryCounterStore` keeps the counters in process memory instead: for one instance on
SQLite, or tests. It must not be used behind a load balancer.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keyrelease import metrics
from keyrelease.clock import Clock
from keyrelease.db import fastpath
from keyrelease.db.fastpath import NOT_READ, PointRead

__all__ = ["NOT_READ", "CounterStore", "DatabaseCounterStore", "Limited", "MemoryCounterStore", "PointRead", "Rate", "RateLimiter", "RateLimits"]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SUBJECT_MAX = 100


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` requests per ``period`` seconds."""

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"10/minute"`` → Rate(10, 60); ``"off"`` → None. Raises ValueError otherwise."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        match = _RATE.match(text.lower())
        if not match or int(match.group(1)) < 1:
            raise ValueError("must be N/second, N/minute, N/hour or N/day (N ≥ 1), or off")
        return cls(int(match.group(1)), _PERIODS[match.group(2)])

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIODS.items()}[self.period]
        return f"{self.limit}/{unit}"


@dataclass(frozen=True)
class RateLimits:
    """The configured rules (None: the rule is off). Defaults never trouble a real integration."""

    token_ip: Rate | None = Rate(3000, 60)
    token_client: Rate | None = Rate(600, 60)
    partner_ip: Rate | None = Rate(20, 60)
    partner_key: Rate | None = Rate(10, 60)
    admin: Rate | None = Rate(120, 60)
    #: Authenticated GraphQL queries per admin: one count per request, whatever it asks for
    #: (its size is bounded by the query cost limit).
    admin_query: Rate | None = Rate(600, 60)
    #: Secret-scanning reports per client address, counted before the signature is checked.
    secret_scanning_ip: Rate | None = Rate(60, 60)
    #: Sign-ins started and provider answers received (/sso/start, /sso/callback) per client address.
    sign_in_ip: Rate | None = Rate(30, 60)


@dataclass(frozen=True)
class Limited:
    """Refused by ``rule``; the client may try again after ``retry_after`` seconds."""

    rule: str
    retry_after: int
    message: str = "Too many requests; try again later."


class CounterStore(Protocol):
    async def hit(self, buckets: Sequence[tuple[str, int]]) -> dict[str, int]:
        """Count one request in each ``(bucket, window_end)``; the counts in the current windows."""

    async def hit_and_read(self, buckets: Sequence[tuple[str, int]], read: PointRead) -> tuple[dict[str, int], Any]:
        """:meth:`hit`, and ``read``'s row when the store can read it on the same trip
        (:func:`keyrelease.db.fastpath.hit_counters_and_read`), else :data:`NOT_READ`."""

    async def prune(self, now: int) -> int:
        """Forget counters whose window ended before ``now``; how many were removed."""


class DatabaseCounterStore:
    """Counters in the ``rate_limit_counter`` table, shared by every instance."""

    async def hit(self, buckets: Sequence[tuple[str, int]]) -> dict[str, int]:
        return await fastpath.hit_counters(buckets)

    async def hit_and_read(self, buckets: Sequence[tuple[str, int]], read: PointRead) -> tuple[dict[str, int], Any]:
        return await fastpath.hit_counters_and_read(buckets, read)

    async def prune(self, now: int) -> int:
        return await fastpath.prune_counters(now)


class MemoryCounterStore:
    """Counters in this process only (one instance on SQLite, or tests)."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, int]] = {}

    async def hit(self, buckets: Sequence[tuple[str, int]]) -> dict[str, int]:
        counts = {}
        for bucket, window_end in buckets:  # no await inside: atomic on the event loop
            current_end, count = self._counters.get(bucket, (window_end, 0))
            if current_end < window_end:
                current_end, count = window_end, 0
            self._counters[bucket] = (current_end, count + 1)
            counts[bucket] = count + 1
        return counts

    async def hit_and_read(self, buckets: Sequence[tuple[str, int]], read: PointRead) -> tuple[dict[str, int], Any]:
        return await self.hit(buckets), NOT_READ

    async def prune(self, now: int) -> int:
        ended = [bucket for bucket, (end, _) in self._counters.items() if end < now]
        for bucket in ended:
            del self._counters[bucket]
        return len(ended)


class RateLimiter:
    def __init__(self, limits: RateLimits, store: CounterStore, clock: Clock) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock

    async def token_request(self, ip: str, client_id: str | None) -> Limited | None:
        """The token endpoint: per client address, and per address and client ID together.

        Not per client ID alone: client IDs are not secret, and such a counter would let anyone
        who knows one shut its integration out. Secrets are 256-bit random, so the limit is
        about load, not guessing.
        """
        limited, _ = await self.token_request_and_read(ip, client_id, None)
        return limited

    async def token_request_and_read(
        self, ip: str, client_id: str | None, read: PointRead | None
    ) -> tuple[Limited | None, Any]:
        """:meth:`token_request`, with ``read`` (the client's key: the ``read`` of
        :meth:`keyrelease.service.clients.ClientAuthenticator.attempt`) sent to the database
        with the counters where the store can carry it: one round trip instead of two on
        PostgreSQL. The refusal or None; and the read's row, None, or :data:`NOT_READ` (then
        the caller reads)."""
        rules = [("token_ip", self.limits.token_ip, ip)]
        if client_id is not None:
            rules.append(("token_client", self.limits.token_client, f"{ip} {client_id}"))
        return await self._check_and_read(rules, read)

    async def partner_reveal(self, ip: str, key_id: str) -> Limited | None:
        """The partner's revealKey: per client address and per key ID (an OTP guess budget
        on top of the key's own attempt limit)."""
        return await self._check([("partner_ip", self.limits.partner_ip, ip), ("partner_key", self.limits.partner_key, key_id)])

    async def secret_scanning_report(self, ip: str) -> Limited | None:
        """``POST /secret-scanning/github``: per client address, counted before the signature
        is checked, so unsigned floods are limited too."""
        return await self._check([("secret_scanning_ip", self.limits.secret_scanning_ip, ip)])

    async def sign_in(self, ip: str) -> Limited | None:
        """A sign-in started or finished with an identity provider, per client address: each
        writes a row and may call the provider."""
        return await self._check([("sign_in_ip", self.limits.sign_in_ip, ip)])

    async def admin_mutation(self, admin_id: int) -> Limited | None:
        return await self._check([("admin", self.limits.admin, str(admin_id))])

    async def admin_query(self, admin_id: int) -> Limited | None:
        """One authenticated query request; its own budget, apart from mutations'."""
        return await self._check([("admin_query", self.limits.admin_query, str(admin_id))])

    async def prune(self) -> int:
        return await self.store.prune(math.floor(self.clock.now().timestamp()))

    async def _check(self, rules: list[tuple[str, Rate | None, str]]) -> Limited | None:
        limited, _ = await self._check_and_read(rules, None)
        return limited

    async def _check_and_read(
        self, rules: list[tuple[str, Rate | None, str]], read: PointRead | None
    ) -> tuple[Limited | None, Any]:
        now = self.clock.now().timestamp()
        second = math.floor(now)
        # (rule, rate, bucket, the end of the bucket's current window) for each rule that is on
        active = [
            (name, rate, _bucket(name, subject), (second // rate.period + 1) * rate.period)
            for name, rate, subject in rules
            if rate is not None
        ]
        if not active:
            return None, NOT_READ
        buckets = [(bucket, window_end) for _, _, bucket, window_end in active]
        if read is None:
            counts, row = await self.store.hit(buckets), NOT_READ
        else:
            counts, row = await self.store.hit_and_read(buckets, read)
        refused = [(name, window_end) for name, rate, bucket, window_end in active if counts.get(bucket, 0) > rate.limit]
        if not refused:
            return None, row
        retry_after = max(max(1, math.ceil(window_end - now)) for _, window_end in refused)
        metrics.rate_limited(refused[0][0])
        return Limited(rule=refused[0][0], retry_after=retry_after), row


def _bucket(rule: str, subject: str) -> str:
    """``rule:subject``; a long or odd subject (attacker-chosen) is replaced by its hash."""
    if len(subject) > _SUBJECT_MAX or not subject.isprintable():
        subject = "sha256=" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{rule}:{subject}"
