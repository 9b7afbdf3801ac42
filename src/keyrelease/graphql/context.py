"""Per-request context: who is asking, and the services resolvers call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response

from keyrelease import client_address
from keyrelease.client_address import IPNetwork
from keyrelease.clock import Clock
from keyrelease.graphql.loaders import Loaders
from keyrelease.models import Admin
from keyrelease.service.api_tokens import ApiTokens
from keyrelease.service.keys import KeyService, parse_key_id
from keyrelease.service.ratelimit import Limited, RateLimiter
from keyrelease.web.sign_in import SessionCookies


class ClientError(GraphQLError):
    """A GraphQL error meant for the client (never masked). ``code`` and any ``extra`` values
    go in extensions."""

    def __init__(self, message: str, code: str, **extra: object) -> None:
        super().__init__(message, extensions={"code": code, **extra})


class RateLimitedError(ClientError):
    """Refused by a rate limit: code RATE_LIMITED, ``retryAfter`` seconds in extensions (and
    the response's Retry-After header). The HTTP status stays 200, as for every GraphQL error."""

    def __init__(self, limited: Limited) -> None:
        super().__init__(limited.message, "RATE_LIMITED", retryAfter=limited.retry_after)


UNAUTHENTICATED = "Authentication required: send the header Authorization: Bearer <admin token>."
#: One answer for a token that is wrong, expired or revoked: which of them is not said.
TOKEN_NOT_ACCEPTED = "The admin token was not accepted: it is wrong, expired or revoked."


@dataclass
class Context:
    request: Request
    keys: KeyService
    clock: Clock
    limiter: RateLimiter
    trusted_proxies: tuple[IPNetwork, ...]
    api_tokens: ApiTokens
    response: Response | None = None
    #: KEYRELEASE_EXPIRY_NOTICES, largest first (``policy { expiryNotices }``).
    expiry_notices: tuple[timedelta, ...] = ()
    #: The console's session cookie (sign-in with an identity provider), checked when no
    #: bearer token is sent; None: cookies are not read.
    session_cookies: SessionCookies | None = None
    loaders: Loaders = field(default_factory=Loaders, init=False)
    _admin: Admin | None = field(default=None, init=False)
    #: The id of the bearer token the request was accepted with (``apiTokens { inUse }``).
    token_id: int | None = field(default=None, init=False)
    _checked: bool = field(default=False, init=False)
    _session_problem: str | None = field(default=None, init=False)
    #: Fields of a query run concurrently (aliases, siblings): the first to ask authenticates
    #: and counts the request; the others wait for its answer.
    _once: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _query_counted: bool = field(default=False, init=False)
    _query_limited: Limited | None = field(default=None, init=False)

    async def admin_or_none(self) -> Admin | None:
        async with self._once:
            if not self._checked:
                header = self.request.headers.get("authorization", "")
                scheme, _, token = header.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    signed_in = await self.api_tokens.sign_in(token.strip())
                    if signed_in is not None:
                        self._admin, self.token_id = signed_in.admin, signed_in.token_id
                elif self.session_cookies is not None:
                    self._admin, self._session_problem = await self.session_cookies.admin_of(self.request)
                self._checked = True
        return self._admin

    async def admin(self) -> Admin:
        """The authenticated admin, or a clean UNAUTHENTICATED error."""
        admin = await self.admin_or_none()
        if admin is None and self._session_problem is not None:
            raise ClientError(self._session_problem, "UNAUTHENTICATED")
        if admin is None:
            sent = self.request.headers.get("authorization", "").strip()
            raise ClientError(TOKEN_NOT_ACCEPTED if sent else UNAUTHENTICATED, "UNAUTHENTICATED")
        return admin

    async def querying_admin(self) -> Admin:
        """The authenticated admin, the request counted once (however many fields and
        aliases it has) against the per-admin query limit."""
        admin = await self.admin()
        async with self._once:
            if not self._query_counted:
                self._query_limited = await self.limiter.admin_query(admin.id)
                self._query_counted = True
        self._refuse_if(self._query_limited)
        return admin

    async def mutating_admin(self) -> Admin:
        """The authenticated admin, counted against the per-admin mutation limit. What the
        request loaded before is forgotten: this mutation may change it."""
        admin = await self.admin()
        self._refuse_if(await self.limiter.admin_mutation(admin.id))
        self.loaders.forget()
        return admin

    async def check_partner_reveal(self, key_id: str) -> None:
        """Count a partner's revealKey per client address and per key; raise when over."""
        parsed = parse_key_id(key_id)
        address = client_address.of_request(self.request, self.trusted_proxies)
        self._refuse_if(await self.limiter.partner_reveal(address, str(parsed) if parsed else key_id))

    def _refuse_if(self, limited: Limited | None) -> None:
        if limited is None:
            return
        if self.response is not None:
            self.response.headers["Retry-After"] = str(limited.retry_after)
        raise RateLimitedError(limited)
