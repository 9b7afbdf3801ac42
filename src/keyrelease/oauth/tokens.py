"""Access tokens: JWTs signed with the key ring's signing key, verifiable with the JWKS.

Claims: ``iss``, ``sub`` (the client ID), ``aud``, ``iat``, ``exp``, ``jti``, ``scope`` and
``institution`` (the name of the key's institution). The header names the ``kid``. ``typ`` is
plain ``JWT`` rather than RFC 9068's ``at+jwt``, which some older verifiers refuse.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

from keyrelease.clock import Clock
from keyrelease.oauth.signing_keys import KeyRing
from keyrelease.service.clients import AuthenticatedClient


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:  # a bearer token is a credential: keep it out of logs
        return f"AccessToken(expires_in={self.expires_in}, scope={self.scope!r}, token=<hidden>)"


class TokenIssuer:
    """Mints access tokens. Never outlives the key: ``exp`` is capped at the key's expiry."""

    def __init__(
        self, key_ring: KeyRing, *, issuer: str, audience: str, ttl_seconds: int, scope: str, clock: Clock
    ) -> None:
        self.key_ring = key_ring
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.scope = scope
        self.clock = clock
        self._headers = {"kid": key_ring.signing.kid, "typ": "JWT"}
        #: The JWKS never changes while the process runs: serialise it once.
        self.jwks_json = json.dumps(key_ring.jwks(), separators=(",", ":")).encode()

    def issue(self, client: AuthenticatedClient) -> AccessToken:
        now = self.clock.now()
        issued_at = math.floor(now.timestamp())
        expires = issued_at + self.ttl_seconds
        if client.expires_at is not None:
            expires = min(expires, _seconds(client.expires_at))
        expires = max(expires, issued_at + 1)
        claims = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": self.audience,
            "iat": issued_at,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            "scope": self.scope,
            "institution": client.institution,
        }
        signing = self.key_ring.signing
        token = jwt.encode(claims, signing.private_key, algorithm=signing.algorithm, headers=self._headers)
        return AccessToken(token=token, expires_in=expires - issued_at, scope=self.scope)


def _seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())
