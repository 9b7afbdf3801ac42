"""Access tokens: JWTs signed with the key ring's signing key, verifiable with the JWKS.

Claims: ``iss``, ``sub`` (the client ID), ``aud``, ``iat``, ``exp``, ``jti``, ``scope`` and
``institution`` (the name of the key's institution). The header names the ``kid``. ``typ`` is
plain ``JWT`` rather than RFC 9068's ``at+jwt``, which some older verifiers refuse.

Tokens are serialised here (RFC 7515 compact form: three base64url parts) rather than with
``jwt.encode``: the header never changes, so it is encoded once, and the per-token work is one
``json.dumps`` and one signature. PyJWT's generic path cost a quarter of the token endpoint's
own time. Every test reads the tokens back with PyJWT and the published JWKS.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from keyrelease.clock import Clock
from keyrelease.oauth.signing_keys import KeyRing, PrivateKey
from keyrelease.service.clients import AuthenticatedClient

#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


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
        signing = key_ring.signing
        header = {"alg": signing.algorithm, "kid": signing.kid, "typ": "JWT"}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode())
        self._sign = _signer(signing.private_key)
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
            "jti": os.urandom(16).hex(),  # 128 random bits; no UUID object per token
            "scope": self.scope,
            "institution": client.institution,
        }
        signing_input = self._header + b"." + _b64(COMPACT_JSON.encode(claims).encode())
        token = signing_input + b"." + _b64(self._sign(signing_input))
        return AccessToken(token=token.decode("ascii"), expires_in=expires - issued_at, scope=self.scope)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signer(private_key: PrivateKey) -> Callable[[bytes], bytes]:
    """EdDSA (Ed25519) or RS256 (RSASSA-PKCS1-v1_5 with SHA-256), as the JWKS announces."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign
    if isinstance(private_key, rsa.RSAPrivateKey):
        return lambda data: private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise TypeError(f"cannot sign with a {type(private_key).__name__}")


def _seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())
