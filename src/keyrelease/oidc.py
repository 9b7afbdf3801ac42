"""The provider's side of sign-in (:class:`keyrelease.service.sso.ProviderClient`): OpenID
Connect discovery, the authorization URL, the code exchange and the ID token's checks.

Every piece of the protocol is Authlib's (and joserfc's, on which Authlib builds): the
authorization request with PKCE S256 (``prepare_grant_uri``, ``create_s256_code_challenge``),
the token request and the client's authentication (``prepare_token_request``,
``ClientAuth``), the ID token's signature (``joserfc.jwt.decode`` against the provider's JWKS)
and its claims (``CodeIDToken``: ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``, ``azp``,
``at_hash``). httpx only carries the requests, each bounded by ``timeout`` seconds.

Discovery (``/.well-known/openid-configuration``) and the JWKS are cached per issuer for
``discovery_ttl`` seconds of the injected clock; an ID token signed with a key the cached JWKS
does not have makes one fresh read of the JWKS (the provider rotated its keys).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from keyrelease.clock import Clock
from keyrelease.service.sso import AnswerRejected, ProviderAccess, ProviderRefused, ProviderUnavailable

#: KEYRELEASE_SSO_TIMEOUT_SECONDS and KEYRELEASE_SSO_DISCOVERY_TTL_SECONDS.
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_DISCOVERY_TTL_SECONDS = 3600
#: Clock skew allowed between the provider and keyrelease for exp and iat.
LEEWAY_SECONDS = 60
_MAX_ANSWER_BYTES = 512 * 1024
_CLAIM_CHECKS = {"iss": "issuer", "aud": "audience", "nonce": "nonce", "exp": "expiry", "iat": "issued-at", "azp": "audience",
                 "sub": "subject", "at_hash": "access token hash"}


@dataclass
class _Discovered:
    metadata: dict[str, Any]
    jwks: dict[str, Any] | None
    read_at: datetime


class OpenIDConnectClient:
    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        discovery_ttl: int = DEFAULT_DISCOVERY_TTL_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.discovery_ttl = timedelta(seconds=discovery_ttl)
        self.transport = transport
        self._cache: dict[str, _Discovered] = {}

    # -- HTTP ----------------------------------------------------------------------------------

    async def _request(self, issuer: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, bounded by ``timeout`` in all (connect, send, every read)."""
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout, follow_redirects=False) as http:
                return await asyncio.wait_for(http.request(method, url, **kwargs), self.timeout)
        except (httpx.TimeoutException, TimeoutError):
            raise ProviderUnavailable(
                f"Your institution's identity provider ({issuer}) did not answer within {self.timeout:g} seconds."
            ) from None
        except httpx.HTTPError:
            raise ProviderUnavailable(f"Your institution's identity provider ({issuer}) could not be reached.") from None

    async def _json(self, issuer: str, url: str) -> dict[str, Any]:
        response = await self._request(issuer, "GET", url, headers={"Accept": "application/json"})
        if response.status_code != 200 or len(response.content) > _MAX_ANSWER_BYTES:
            raise ProviderUnavailable(
                f"Your institution's identity provider ({issuer}) answered HTTP {response.status_code} at {url}."
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AnswerRejected("discovery", f"{url} did not answer with a JSON object.")
        return body

    # -- discovery -----------------------------------------------------------------------------

    async def _discovered(self, issuer: str) -> _Discovered:
        now = self.clock.now()
        cached = self._cache.get(issuer)
        if cached is not None and now - cached.read_at < self.discovery_ttl:
            return cached
        metadata = await self._json(issuer, issuer.rstrip("/") + "/.well-known/openid-configuration")
        if metadata.get("issuer") != issuer:
            raise AnswerRejected(
                "issuer", f"the provider at {issuer} calls itself {str(metadata.get('issuer'))[:200]!r}; the configured issuer must match."
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(name), str):
                raise AnswerRejected("discovery", f"the provider's discovery document has no {name}.")
        found = _Discovered(metadata=metadata, jwks=None, read_at=now)
        self._cache[issuer] = found
        return found

    async def _keys(self, issuer: str, found: _Discovered, *, fresh: bool = False) -> KeySet:
        if found.jwks is None or fresh:
            found.jwks = await self._json(issuer, found.metadata["jwks_uri"])
        try:
            return KeySet.import_key_set(found.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise AnswerRejected("signature", "the provider's JWKS holds no usable key.") from None

    # -- the flow ------------------------------------------------------------------------------

    async def authorization_url(
        self, provider: ProviderAccess, *, redirect_uri: str, scope: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        found = await self._discovered(provider.issuer)
        url: str = prepare_grant_uri(
            found.metadata["authorization_endpoint"],
            client_id=provider.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def verified_claims(
        self, provider: ProviderAccess, *, redirect_uri: str, code: str, code_verifier: str, nonce: str, now: datetime
    ) -> Mapping[str, object]:
        found = await self._discovered(provider.issuer)
        methods = found.metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        url, headers, body = ClientAuth(provider.client_id, provider.client_secret, method).prepare(
            "POST", found.metadata["token_endpoint"], headers, body
        )
        response = await self._request(provider.issuer, "POST", url, headers=headers, content=body)
        try:
            token = response.json()
        except ValueError:
            token = None
        if not isinstance(token, dict):
            raise ProviderRefused(f"The identity provider answered the code exchange with HTTP {response.status_code}.")
        if response.status_code != 200 or "error" in token:
            error = str(token.get("error", f"HTTP {response.status_code}"))[:100]
            raise ProviderRefused(f"The identity provider refused the sign-in code ({error}).")
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderRefused("The identity provider's answer has no ID token (is the openid scope allowed?).")
        return await self._check(provider, found, token, id_token, nonce, now)

    async def _check(
        self, provider: ProviderAccess, found: _Discovered, token: dict[str, Any], id_token: str, nonce: str, now: datetime
    ) -> Mapping[str, object]:
        algorithms = found.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[a for a in algorithms if a != "none"], strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(id_token, await self._keys(provider.issuer, found), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, await self._keys(provider.issuer, found, fresh=True), registry=registry)
        except (BadSignatureError, InvalidKeyIdError):
            raise AnswerRejected("signature", "the ID token's signature does not verify with the provider's keys.") from None
        except (JoseError, ValueError) as err:
            raise AnswerRejected("signature", f"the ID token could not be read ({type(err).__name__}).") from None
        options = {
            "iss": {"essential": True, "value": provider.issuer},
            "aud": {"essential": True, "value": provider.client_id},
        }
        params = {"nonce": nonce, "client_id": provider.client_id}
        if isinstance(token.get("access_token"), str):
            params["access_token"] = token["access_token"]
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)  # type: ignore[arg-type]
        try:
            claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise AnswerRejected("expiry", "the ID token has expired (or the clocks disagree).") from None
        except (InvalidClaimError, MissingClaimError) as err:
            check = _CLAIM_CHECKS.get(err.claim, err.claim)
            shown = json.dumps(decoded.claims.get(err.claim))[:100] if err.claim in ("iss", "aud") else "not the one expected"
            raise AnswerRejected(check, f"its {err.claim} is {shown}.") from None
        return dict(claims)
