"""Admins and their API tokens: creation (from the CLI) and authentication (every request)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from keyrelease import credentials
from keyrelease.clock import Clock
from keyrelease.models import Admin, AdminToken, Institution

_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z]{2,63}$")


class AdminInputError(ValueError):
    """Bad input to an admin command; the message is fit to show."""


@dataclass(frozen=True)
class NewAdmin:
    admin: Admin
    institution: Institution
    token: str

    def __repr__(self) -> str:
        return f"NewAdmin(admin={self.admin.email!r}, token=<hidden>)"


async def create_admin(clock: Clock, *, institution: str, email: str, name: str = "") -> NewAdmin:
    """Create an admin (and the institution, if new) with a fresh token, shown only here."""
    institution = institution.strip()
    email = email.strip().lower()
    if not institution or len(institution) > 200:
        raise AdminInputError("institution must be 1 to 200 characters")
    if not _EMAIL.match(email) or len(email) > 254:
        raise AdminInputError(f"not an email address: {email!r}")
    now = clock.now()
    async with in_transaction():
        inst, _ = await Institution.get_or_create(name=institution, defaults={"created_at": now})
        if await Admin.filter(email=email).exists():
            raise AdminInputError(f"an admin with email {email} already exists")
        admin = await Admin.create(institution_id=inst.id, email=email, name=name.strip()[:200], created_at=now)
        token = await issue_token(clock, admin)
    return NewAdmin(admin=admin, institution=inst, token=token)


async def issue_token(clock: Clock, admin: Admin) -> str:
    token = credentials.new_admin_token()
    await AdminToken.create(admin_id=admin.id, token_hash=credentials.hash_secret(token), created_at=clock.now())
    return token


async def authenticate(clock: Clock, token: str) -> Admin | None:
    """The admin a bearer token belongs to, or None (unknown, revoked or expired token)."""
    if not token.startswith(credentials.ADMIN_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = await AdminToken.get_or_none(token_hash=credentials.hash_secret(token)).select_related(
        "admin", "admin__institution"
    )
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= clock.now():
        return None
    return row.admin
