"""Per-request context: who is asking, and the services resolvers call."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import GraphQLError
from starlette.requests import Request

from keyrelease.clock import Clock
from keyrelease.models import Admin
from keyrelease.service import admins
from keyrelease.service.keys import KeyService


class ClientError(GraphQLError):
    """A GraphQL error meant for the client (never masked). ``code`` goes in extensions."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


UNAUTHENTICATED = "Authentication required: send the header Authorization: Bearer <admin token>."


@dataclass
class Context:
    request: Request
    keys: KeyService
    clock: Clock
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
