"""Per-request context: who is asking, and the services resolvers call."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response

from keyrelease.clock import Clock
from keyrelease.models import Admin
from keyrelease.service import admins
from keyrelease.service.keys import KeyService, parse_key_id
from keyrelease.service.ratelimit import Limited, RateLimiter, client_address


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


@dataclass
class Context:
    request: Request
    keys: KeyService
    clock: Clock
    response: Response | None = None
    _admin: Admin | None = field(default=None, init=False)
    _checked: bool = field(default=False, init=False)

    async def admin_or_none(self) -> Admin | None:
        if not self._checked:
            self._checked = True
            header = self.request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                self._admin = await admins.authenticate(self.clock, token.strip())
        return self._admin

    async def admin(self) -> Admin:
        """The authenticated admin, or a clean UNAUTHENTICATED error."""
        admin = await self.admin_or_none()
        if admin is None:
            raise ClientError(UNAUTHENTICATED, "UNAUTHENTICATED")
        return admin

    async def mutating_admin(self) -> Admin:
        """The authenticated admin, counted against the per-admin mutation limit."""
        admin = await self.admin()
        limiter = self._limiter()
        if limiter is not None:
            self._refuse_if(await limiter.admin_mutation(admin.id))
        return admin

    async def check_partner_reveal(self, key_id: str) -> None:
        """Count a partner's revealKey per client address and per key; raise when over."""
        limiter = self._limiter()
        if limiter is None:
            return
        parsed = parse_key_id(key_id)
        self._refuse_if(await limiter.partner_reveal(self.client_address(), str(parsed) if parsed else key_id))

    def client_address(self) -> str:
        return client_address(
            self.request.client.host if self.request.client else None,
            self.request.headers.getlist("x-forwarded-for"),
            self.request.app.state.settings.trusted_proxies,
        )

    def _limiter(self) -> RateLimiter | None:
        return getattr(self.request.app.state, "rate_limiter", None)

    def _refuse_if(self, limited: Limited | None) -> None:
        if limited is None:
            return
        if self.response is not None:
            self.response.headers["Retry-After"] = str(limited.retry_after)
        raise RateLimitedError(limited)
