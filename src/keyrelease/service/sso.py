"""Sign-in with the institution's OpenID Connect provider: who may become a console admin.

**Configuration** (``keyrelease institution set-idp``, ``show-idp``, ``remove-idp``): one
provider per institution (issuer, client ID, client secret sealed under the server secret by
:mod:`keyrelease.sealing`, an optional admin claim ``CLAIM=VALUE``) and the email domains whose
admins sign in with it; a domain belongs to one institution.

**Sign-in** (the console): the admin types a work email; its domain names the institution
(:meth:`SignIn.start`). A :class:`~keyrelease.models.SignInRequest` row is written under the
SHA-256 of a random ``state``; the PKCE verifier and the ``nonce`` are derived from the state
and the server secret, so neither rests anywhere. The browser is sent to the provider (the
Authorization Code flow with PKCE S256, ``state`` and ``nonce``: the protocol is Authlib's,
behind :class:`ProviderClient`, implemented in :mod:`keyrelease.oidc`) and the state is also
kept in a short-lived cookie, so an answer is accepted only in the browser that started it.

The answer (:meth:`SignIn.finish`) is checked in this order, and the first failure is the one
message the admin sees; nothing is written before the last check passes except the request's
``used_at`` (a replay must stay refused, whatever came after):

1. the state is this browser's (the cookie), known, unused and not expired: one conditional
   update (``… WHERE used_at IS NULL AND expires_at > now``) accepts it, so two uses of one
   answer sign in at most once;
2. the provider's own error (the user cancelled) is reported as such;
3. the code is exchanged and the ID token checked in full by the provider client (signature
   against the provider's JWKS, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``); a provider that
   does not answer within the bounded wait is reported as unavailable;
4. ``email_verified`` is true (or Entra ID's ``xms_edov``), the email is in the institution's domains, the admin claim
   (when configured) matches; a known admin the provider no longer marks as admin is
   disabled at once (:func:`keyrelease.service.offboarding.disable_admin`) and refused;
5. a disabled admin is refused;
6. in one transaction the admin is created (first sign-in) or their email and name updated
   from the provider, and a session opened (:mod:`keyrelease.service.sessions`).

An admin is recognised by the ID token's ``sub`` at the institution
(:class:`~keyrelease.models.AdminIdentity`); an admin created by ``keyrelease admin create``
is linked at their first sign-in by their email. Keys keep the address snapshotted when they
were created.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from keyrelease import sealing, validation
from keyrelease.clock import Clock
from keyrelease.models import (
    NAME_MAX,
    URL_MAX,
    Admin,
    AdminIdentity,
    IdentityProvider,
    IdentityProviderDomain,
    Institution,
    SignInRequest,
)
from keyrelease.service import offboarding
from keyrelease.service.admins import AdminInputError
from keyrelease.service.sessions import SessionService

log = logging.getLogger("keyrelease.sso")

#: KEYRELEASE_SSO_REQUEST_TTL_SECONDS: how long an authorization request waits for its answer.
DEFAULT_REQUEST_TTL_SECONDS = 600
#: The scopes asked for: the ID token's email, email_verified and name (and the admin claim,
#: which providers add to the ID token by their own configuration: docs/sso.md).
SCOPES = "openid email profile"
_SEAL_PURPOSE = "identity-provider-client-secret"
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,200}")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- the provider's side, implemented by keyrelease.oidc ---------------------------------------


@dataclass(frozen=True)
class ProviderAccess:
    """What the provider client needs to talk to one institution's provider."""

    issuer: str
    client_id: str
    client_secret: str = ""

    def __repr__(self) -> str:
        return f"ProviderAccess(issuer={self.issuer!r}, client_id={self.client_id!r}, client_secret=<hidden>)"


class ProviderError(Exception):
    """The provider could not complete the sign-in; ``str()`` is fit to show."""


class ProviderUnavailable(ProviderError):
    """The provider was not reached, or did not answer within the bounded wait."""


class ProviderRefused(ProviderError):
    """The provider answered, but with an error (e.g. it refused the code)."""


class AnswerRejected(ProviderError):
    """The provider's answer failed a check (``check``: signature, issuer, audience, nonce,
    expiry, issued-at, discovery)."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check


class ProviderClient(Protocol):
    async def authorization_url(
        self, provider: ProviderAccess, *, redirect_uri: str, scope: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """The provider's authorization endpoint URL for this request (discovery may be read)."""

    async def verified_claims(
        self, provider: ProviderAccess, *, redirect_uri: str, code: str, code_verifier: str, nonce: str, now: datetime
    ) -> Mapping[str, object]:
        """Exchange ``code`` and return the ID token's claims, checked in full; raises a
        :class:`ProviderError`."""


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSummary:
    """What ``show-idp`` shows: never the client secret."""

    institution: str
    issuer: str
    client_id: str
    admin_claim: str | None
    domains: tuple[str, ...]
    updated_at: datetime


def _check_issuer(issuer: str) -> str:
    issuer = issuer.strip().rstrip("/")
    parts = urlsplit(issuer)
    if len(issuer) > URL_MAX or not _PRINTABLE.fullmatch(issuer[:200]) or not parts.hostname:
        raise AdminInputError(f"--issuer must be the provider's issuer URL, not {issuer!r}")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise AdminInputError("--issuer must be an https:// URL (http:// only for a provider on this machine)")
    if parts.query or parts.fragment:
        raise AdminInputError("--issuer must have no query or fragment")
    return issuer


def _check_claim(admin_claim: str | None) -> tuple[str, str] | tuple[None, None]:
    if admin_claim is None:
        return None, None
    name, sep, value = admin_claim.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value or len(name) > NAME_MAX or len(value) > NAME_MAX:
        raise AdminInputError("--admin-claim must be CLAIM=VALUE, e.g. groups=keyrelease-admins")
    return name, value


def _check_domains(domains: Sequence[str]) -> list[str]:
    found: list[str] = []
    for raw in domains:
        domain = raw.strip().lower().lstrip("@")
        if not _DOMAIN.fullmatch(domain):
            raise AdminInputError(f"--email-domain: not a domain name: {raw!r}")
        if domain not in found:
            found.append(domain)
    if not found:
        raise AdminInputError("give at least one --email-domain: sign-in finds the institution by the email's domain")
    return found


async def set_provider(
    clock: Clock,
    server_secret: bytes,
    *,
    institution: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    admin_claim: str | None = None,
    email_domains: Sequence[str] = (),
) -> ProviderSummary:
    """Set (or replace) the institution's provider; the institution is created if new."""
    problem = validation.control_character_problem(
        {"--institution": institution, "--issuer": issuer, "--client-id": client_id, "--admin-claim": admin_claim,
         "--email-domain": " ".join(email_domains)}
    )
    if problem is not None:
        raise AdminInputError(problem[1].rstrip("."))
    name = institution.strip()
    if not name or len(name) > NAME_MAX:
        raise AdminInputError(f"--institution must be 1 to {NAME_MAX} characters")
    issuer = _check_issuer(issuer)
    client_id = client_id.strip()
    if not _PRINTABLE.fullmatch(client_id):
        raise AdminInputError("--client-id must be 1 to 200 printable characters without spaces")
    client_secret = client_secret.strip()
    if not client_secret or "\n" in client_secret or len(client_secret) > 1000:
        raise AdminInputError("the client secret file must hold the secret on one line")
    claim, claim_value = _check_claim(admin_claim)
    domains = _check_domains(email_domains)
    now = clock.now()
    async with in_transaction():
        inst, _ = await Institution.get_or_create(name=name, defaults={"created_at": now})
        taken = await IdentityProviderDomain.filter(domain__in=domains).exclude(provider__institution_id=inst.id).first()
        if taken is not None:
            raise AdminInputError(f"the domain {taken.domain} already belongs to another institution's provider")
        sealed = sealing.seal(server_secret, _SEAL_PURPOSE, str(inst.id), client_secret)
        values: dict[str, Any] = {"issuer": issuer, "client_id": client_id, "client_secret_sealed": sealed, "admin_claim": claim,
                  "admin_claim_value": claim_value, "updated_at": now}
        provider = await IdentityProvider.get_or_none(institution_id=inst.id)
        if provider is None:
            provider = await IdentityProvider.create(institution_id=inst.id, created_at=now, **values)
        else:
            await IdentityProvider.filter(id=provider.id).update(**values)
            await IdentityProviderDomain.filter(provider_id=provider.id).delete()
        await IdentityProviderDomain.bulk_create([IdentityProviderDomain(provider_id=provider.id, domain=d) for d in domains])
    return await show_provider(name)


async def show_provider(institution: str) -> ProviderSummary:
    provider = await IdentityProvider.get_or_none(institution__name=institution.strip()).select_related("institution")
    if provider is None:
        raise AdminInputError(f"no identity provider is set for the institution {institution.strip()!r}")
    domains = await IdentityProviderDomain.filter(provider_id=provider.id).order_by("domain").values_list("domain", flat=True)
    claim = f"{provider.admin_claim}={provider.admin_claim_value}" if provider.admin_claim else None
    return ProviderSummary(
        institution=provider.institution.name, issuer=provider.issuer, client_id=provider.client_id,
        admin_claim=claim, domains=tuple(str(d) for d in domains), updated_at=provider.updated_at,
    )


async def remove_provider(institution: str) -> bool:
    """Remove the institution's provider (its admins then sign in with tokens only). False
    when it had none."""
    removed = await IdentityProvider.filter(institution__name=institution.strip()).delete()
    return bool(removed)


# --- sign-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """Send the browser to ``url``; keep ``state`` in the browser (the HTTP layer's cookie)."""

    url: str
    state: str

    def __repr__(self) -> str:
        return "Started(url=<provider>, state=<hidden>)"


@dataclass(frozen=True)
class SignedIn:
    admin: Admin
    #: The session's value, for the cookie; shown only here.
    session: str

    def __repr__(self) -> str:
        return f"SignedIn(admin={self.admin.email!r}, session=<hidden>)"


@dataclass(frozen=True)
class SignInRefused:
    """A sign-in that did not happen; ``message`` is the one line the admin sees, ``reason`` a
    stable word for tests and logs, ``status`` the HTTP status it is answered with."""

    reason: str
    message: str
    status: int = 400


START_AGAIN = "Start again from the sign-in page."


def _refused(reason: str, message: str, status: int = 400) -> SignInRefused:
    return SignInRefused(reason=reason, message=message, status=status)


def _derive(server_secret: bytes, purpose: bytes, state: str) -> str:
    digest = hmac.new(server_secret, purpose + b"\x00" + state.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _claim_matches(claims: Mapping[str, object], name: str, value: str) -> bool:
    found = claims.get(name)
    if isinstance(found, str):
        return found == value
    if isinstance(found, list | tuple):
        return value in found
    if isinstance(found, bool):
        return str(found).lower() == value.lower()
    return False


def _name_of(claims: Mapping[str, object]) -> str:
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get("given_name"), claims.get("family_name")]
        name = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    name = name.strip()
    return "" if validation.control_character(name) else name[:NAME_MAX]


class SignIn:
    """The console's sign-in with an identity provider (see the module's docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        server_secret: bytes,
        redirect_uri: str,
        client: ProviderClient,
        sessions: SessionService,
        request_ttl_seconds: int = DEFAULT_REQUEST_TTL_SECONDS,
    ) -> None:
        self.clock = clock
        self._secret = server_secret
        self.redirect_uri = redirect_uri
        self.client = client
        self.sessions = sessions
        self.request_ttl = timedelta(seconds=request_ttl_seconds)

    def _access(self, provider: IdentityProvider) -> ProviderAccess:
        secret = sealing.unseal(self._secret, _SEAL_PURPOSE, str(provider.institution_id), provider.client_secret_sealed)
        return ProviderAccess(issuer=provider.issuer, client_id=provider.client_id, client_secret=secret)

    async def start(self, email: str) -> Started | SignInRefused:
        """Find the institution by the email's domain and build the provider's URL."""
        address = email.strip().lower()
        if not validation.is_email_address(address):
            return _refused("not_an_email", "Enter your work email address, e.g. you@university.edu.")
        domain = address.rpartition("@")[2]
        found = await IdentityProviderDomain.get_or_none(domain=domain).select_related("provider")
        if found is None:
            return _refused(
                "unknown_domain",
                f"No institution signs in with email addresses at {domain}. Sign in with an admin token instead, "
                "or ask whoever runs keyrelease to set up your institution's identity provider.",
                404,
            )
        provider = found.provider
        try:
            access = self._access(provider)
        except sealing.SealBroken:
            log.error("identity provider %d: the client secret does not open with the server secret; run set-idp again", provider.id)
            return _refused("misconfigured", "Your institution's sign-in is not configured correctly. Tell whoever runs keyrelease.", 500)
        state = secrets.token_urlsafe(32)
        try:
            url = await self.client.authorization_url(
                access, redirect_uri=self.redirect_uri, scope=SCOPES, state=state,
                nonce=_derive(self._secret, b"oidc-nonce", state), code_verifier=_derive(self._secret, b"oidc-pkce", state),
            )
        except ProviderError as err:
            return self._provider_failed(err)
        now = self.clock.now()
        await SignInRequest.filter(expires_at__lt=now - timedelta(days=1)).delete()
        await SignInRequest.create(state_hash=_state_hash(state), provider_id=provider.id, created_at=now,
                                   expires_at=now + self.request_ttl)
        return Started(url=url, state=state)

    def _provider_failed(self, err: ProviderError) -> SignInRefused:
        if isinstance(err, ProviderUnavailable):
            return _refused("provider_unavailable", f"{err} Nothing changed; try again in a moment.", 502)
        if isinstance(err, AnswerRejected):
            log.warning("sign-in refused: the provider's answer failed the %s check (%s)", err.check, err)
            return _refused(f"bad_{err.check}", f"The identity provider's answer failed the {err.check} check: {err} "
                            f"Nothing changed. {START_AGAIN}", 502)
        return _refused("provider_refused", f"{err} {START_AGAIN}", 502)

    async def finish(
        self, *, state: str, code: str, error: str, browser_state: str
    ) -> SignedIn | SignInRefused:
        """Check the provider's answer and sign in (see the module's docstring)."""
        if not state or not browser_state or len(state) > 200 or not hmac.compare_digest(state, browser_state):
            return _refused("not_this_browser", f"This sign-in answer does not belong to a sign-in started in this browser. {START_AGAIN}")
        now = self.clock.now()
        digest = _state_hash(state)
        accepted = await SignInRequest.filter(state_hash=digest, used_at=None, expires_at__gt=now).update(used_at=now)
        if not accepted:
            row = await SignInRequest.get_or_none(state_hash=digest)
            if row is None:
                return _refused("unknown_request", f"This sign-in answer is not one keyrelease is waiting for. {START_AGAIN}")
            if row.used_at is not None:
                return _refused("replayed", f"This sign-in answer was already used. {START_AGAIN}")
            minutes = int(self.request_ttl.total_seconds() // 60)
            return _refused("expired", f"This sign-in took longer than {minutes} minutes and has expired. {START_AGAIN}")
        request = await SignInRequest.get(state_hash=digest).select_related("provider", "provider__institution")
        provider = request.provider
        if error:
            shown = error if _PRINTABLE.fullmatch(error) else "error"
            return _refused("provider_error", f"Your identity provider did not sign you in ({shown}). {START_AGAIN}")
        if not code or len(code) > 2000:
            return _refused("no_code", f"The identity provider's answer has no authorization code. {START_AGAIN}")
        try:
            claims = await self.client.verified_claims(
                self._access(provider), redirect_uri=self.redirect_uri, code=code,
                code_verifier=_derive(self._secret, b"oidc-pkce", state), nonce=_derive(self._secret, b"oidc-nonce", state),
                now=now,
            )
        except ProviderError as err:
            return self._provider_failed(err)
        except sealing.SealBroken:
            return _refused("misconfigured", "Your institution's sign-in is not configured correctly. Tell whoever runs keyrelease.", 500)
        return await self._admit(provider, claims)

    async def _admit(self, provider: IdentityProvider, claims: Mapping[str, object]) -> SignedIn | SignInRefused:
        institution = provider.institution
        subject, email = claims.get("sub"), claims.get("email")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            return _refused("no_subject", "The identity provider's answer names no user (no sub claim). Tell whoever runs keyrelease.", 502)
        if not isinstance(email, str) or not validation.is_email_address(email.strip().lower()):
            return _refused("no_email", "Your identity provider gave no email address for you (the email scope and claim). "
                            "Ask your institution's identity team.", 403)
        email = email.strip().lower()
        # Entra ID sends no email_verified; its xms_edov says the tenant verified the domain.
        if claims.get("email_verified") is not True and claims.get("xms_edov") is not True:
            return _refused("email_unverified", f"Your identity provider has not verified your email address {email}. "
                            "Verify it there, then sign in again.", 403)
        domains = await IdentityProviderDomain.filter(provider_id=provider.id).values_list("domain", flat=True)
        if email.rpartition("@")[2] not in domains:
            return _refused("outside_domains", f"Your identity provider signed you in as {email}, which is not an address of "
                            f"{institution.name} ({', '.join(sorted(str(d) for d in domains))}).", 403)
        identity = await AdminIdentity.get_or_none(institution_id=institution.id, subject=subject).select_related("admin")
        known = identity.admin if identity is not None else await Admin.get_or_none(email=email, institution_id=institution.id)
        if provider.admin_claim and provider.admin_claim_value and not _claim_matches(claims, provider.admin_claim, provider.admin_claim_value):
            withdrawn = ""
            if known is not None and known.disabled_at is None:
                await offboarding.disable_admin(self.clock, known.email)
                withdrawn = " Your admin access has been withdrawn: you are signed out everywhere and your pending keys are locked."
            return _refused("not_an_admin", f"Your identity provider does not mark you as an admin of {institution.name} "
                            f"({provider.admin_claim} must include {provider.admin_claim_value}).{withdrawn}", 403)
        if known is not None and known.disabled_at is not None:
            return _refused("admin_disabled", "Your admin account is disabled. Ask whoever runs keyrelease to enable it.", 403)
        name = _name_of(claims)
        try:
            async with in_transaction():
                admin = await self._upsert(institution, known, subject, email, name)
                if admin is None:
                    return _refused("email_taken", f"The email {email} belongs to another keyrelease admin. "
                                    "Ask whoever runs keyrelease.", 409)
                session = await self.sessions.open(admin.id)
        except IntegrityError:  # a parallel first sign-in of the same person won
            return _refused("parallel_sign_in", f"Another sign-in for you finished at the same moment. {START_AGAIN}", 409)
        admin.institution = institution
        log.info("admin %d signed in with the identity provider of institution %d", admin.id, institution.id)
        return SignedIn(admin=admin, session=session)

    async def _upsert(self, institution: Institution, known: Admin | None, subject: str, email: str, name: str) -> Admin | None:
        """The admin, created or updated from the provider; None if the email is another admin's."""
        now = self.clock.now()
        other = await Admin.filter(email=email).exclude(id=known.id if known else 0).first()
        if other is not None:
            return None
        if known is None:
            admin = await Admin.create(institution_id=institution.id, email=email, name=name, created_at=now)
        else:
            admin = known
            await Admin.filter(id=admin.id).update(email=email, name=name or admin.name)
            admin.email, admin.name = email, name or admin.name
        if not await AdminIdentity.filter(admin_id=admin.id).exists():
            await AdminIdentity.create(admin_id=admin.id, institution_id=institution.id, subject=subject, created_at=now)
        return admin
