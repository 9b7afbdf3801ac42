"""Admins and their API tokens: creation, listing and revocation (from the CLI) and
authentication (every request). The tokens an admin makes in the console (named, with an
expiry) are :mod:`keyrelease.service.api_tokens`; they are rows of the same table.

A token is stored only as its SHA-256; it expires ``ttl_days`` after issue and can be revoked
by its value or by its id (shown by ``keyrelease admin list``). Nothing is cached: every
request reads the token's row and its admin's, so a revoked or expired token, or any token of
a disabled admin (:mod:`keyrelease.service.offboarding`), stops with the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from keyrelease import credentials, validation
from keyrelease.clock import Clock
from keyrelease.db import fastpath
from keyrelease.models import NAME_MAX, Admin, AdminToken, Institution


class AdminInputError(ValueError):
    """Bad input to an admin command; the message is fit to show."""


def _refuse_control_characters(**fields: str | None) -> None:
    problem = validation.control_character_problem(fields)
    if problem is not None:
        raise AdminInputError(problem[1].rstrip("."))


@dataclass(frozen=True)
class NewAdmin:
    admin: Admin
    institution: Institution
    token: str

    def __repr__(self) -> str:
        return f"NewAdmin(admin={self.admin.email!r}, token=<hidden>)"


#: A new admin token's lifetime, and the longest one may have (KEYRELEASE_ADMIN_TOKEN_TTL_DAYS).
DEFAULT_TTL_DAYS = 90
MAX_TTL_DAYS = 3650


async def create_admin(
    clock: Clock, *, institution: str, email: str, name: str = "", ttl_days: int | None = DEFAULT_TTL_DAYS
) -> NewAdmin:
    """Create an admin (and the institution, if new) with a fresh token, shown only here."""
    _refuse_control_characters(institution=institution, email=email, name=name)
    institution = institution.strip()
    email = email.strip().lower()
    if not institution or len(institution) > NAME_MAX:
        raise AdminInputError(f"institution must be 1 to {NAME_MAX} characters")
    if not validation.is_email_address(email):
        raise AdminInputError(f"not an email address: {email!r}")
    now = clock.now()
    async with in_transaction():
        inst, _ = await Institution.get_or_create(name=institution, defaults={"created_at": now})
        if await Admin.filter(email=email).exists():
            raise AdminInputError(f"an admin with email {email} already exists")
        admin = await Admin.create(institution_id=inst.id, email=email, name=name.strip()[:NAME_MAX], created_at=now)
        token = await issue_token(clock, admin, ttl_days=ttl_days)
    return NewAdmin(admin=admin, institution=inst, token=token)


#: The name of the tokens ``keyrelease admin create`` and ``admin token`` issue.
CLI_TOKEN_NAME = "cli"


async def issue_token(clock: Clock, admin: Admin, *, ttl_days: int | None = DEFAULT_TTL_DAYS) -> str:
    """A new token for ``admin``, named ``cli``, valid ``ttl_days`` (None: until revoked);
    shown only here."""
    if ttl_days is not None and not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise AdminInputError(f"a token must expire within 1 to {MAX_TTL_DAYS} days")
    token = credentials.new_admin_token()
    now = clock.now()
    await AdminToken.create(
        admin_id=admin.id,
        name=CLI_TOKEN_NAME,
        token_hash=credentials.hash_secret(token),
        created_at=now,
        expires_at=now + timedelta(days=ttl_days) if ttl_days is not None else None,
    )
    return token


async def issue_token_for(clock: Clock, email: str, *, ttl_days: int | None = DEFAULT_TTL_DAYS) -> str:
    """An additional token for the admin with this email (e.g. before revoking the old one)."""
    _refuse_control_characters(email=email)
    admin = await Admin.get_or_none(email=email.strip().lower())
    if admin is None:
        raise AdminInputError(f"no admin with email {email.strip().lower()}")
    return await issue_token(clock, admin, ttl_days=ttl_days)


async def revoke_token(clock: Clock, token_or_id: str) -> AdminToken:
    """Revoke a token given by its value or its id. Revoking twice keeps the first time."""
    _refuse_control_characters(token=token_or_id)
    value = token_or_id.strip()
    if value.startswith(credentials.ADMIN_TOKEN_PREFIX):
        row = await AdminToken.get_or_none(token_hash=credentials.hash_secret(value))
    elif value.isdigit() and len(value) < 10:
        row = await AdminToken.get_or_none(id=int(value))
    else:
        raise AdminInputError("give a token (kra_...) or a token id from `keyrelease admin list`")
    if row is None:
        raise AdminInputError("no such token")
    await AdminToken.filter(id=row.id, revoked_at=None).update(revoked_at=clock.now())
    return await AdminToken.get(id=row.id).select_related("admin")


@dataclass(frozen=True)
class TokenSummary:
    id: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    name: str = CLI_TOKEN_NAME
    last_used_at: datetime | None = None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class AdminSummary:
    """What ``keyrelease admin list`` shows: never a token value or hash."""

    id: int
    email: str
    name: str
    institution: str
    created_at: datetime
    tokens: tuple[TokenSummary, ...]
    #: When the admin was disabled (``keyrelease admin disable``); None while they may sign in.
    disabled_at: datetime | None = None


async def list_admins() -> list[AdminSummary]:
    admins = await Admin.all().order_by("email").select_related("institution").prefetch_related("tokens")
    return [
        AdminSummary(
            id=admin.id,
            email=admin.email,
            name=admin.name,
            institution=admin.institution.name,
            created_at=admin.created_at,
            tokens=tuple(
                TokenSummary(
                    id=t.id,
                    created_at=t.created_at,
                    expires_at=t.expires_at,
                    revoked_at=t.revoked_at,
                    name=t.name,
                    last_used_at=t.last_used_at,
                )
                for t in sorted(admin.tokens, key=lambda t: t.id)
            ),
            disabled_at=admin.disabled_at,
        )
        for admin in admins
    ]


@dataclass(frozen=True)
class SignedIn:
    """An accepted admin token: the admin (with ``admin.institution`` attached) and the
    token's id (the one ``apiTokens`` marks as in use)."""

    admin: Admin
    token_id: int


async def sign_in(clock: Clock, token: str) -> SignedIn | None:
    """The admin a bearer token belongs to and the token's id, or None (unknown, revoked or
    expired token, or a disabled admin's: the caller cannot tell which).

    One point read (:func:`keyrelease.db.fastpath.admin_by_token_hash`), which also brings the
    admin's institution, attached as ``admin.institution``."""
    if not token.startswith(credentials.ADMIN_TOKEN_PREFIX) or len(token) > 200:
        return None
    found = await fastpath.admin_by_token_hash(credentials.hash_secret(token))
    if found is None or found.revoked_at is not None or found.admin.disabled_at is not None:
        return None
    if found.expires_at is not None and found.expires_at <= clock.now():
        return None
    return SignedIn(admin=found.admin, token_id=found.token_id)


async def authenticate(clock: Clock, token: str) -> Admin | None:
    """The admin a bearer token belongs to, or None (:func:`sign_in`)."""
    signed_in = await sign_in(clock, token)
    return signed_in.admin if signed_in is not None else None
