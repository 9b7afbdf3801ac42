"""A software WebAuthn authenticator for tests: an EC P-256 key made with ``cryptography``, and
the JSON a browser would hand the page for ``navigator.credentials.create`` (attestation
``none``) and ``navigator.credentials.get``, built byte by byte as the WebAuthn spec lays them
out (authenticatorData, clientDataJSON, signature over both). It plays the browser and the
authenticator, so tests can also make what a browser never would: another origin, no user
verification, a counter that went backwards, an assertion kept for a replay."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def challenge_of(options_json: str) -> bytes:
    """The challenge of WebAuthn options as the server sent them (JSON)."""
    return unb64url(json.loads(options_json)["challenge"])


@dataclass
class SoftAuthenticator:
    """One credential on one authenticator, for ``rp_id`` at ``origin``."""

    rp_id: str
    origin: str
    counter: int = 0
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": b64url(challenge), "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def _auth_data(self, flags: int, counter: int, attested: bytes = b"") -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter) + attested

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def register(self, creation_options_json: str, *, origin: str | None = None, user_verified: bool = True) -> str:
        """The JSON of ``navigator.credentials.create``'s answer to these creation options."""
        challenge = challenge_of(creation_options_json)
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_public_key()
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if user_verified else 0)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": self._auth_data(flags, self.counter, attested)})
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(self._client_data("webauthn.create", challenge, origin)),
                    "attestationObject": b64url(attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )

    def assertion(
        self,
        request_options_json: str,
        *,
        origin: str | None = None,
        user_verified: bool = True,
        counter: int | None = None,
        challenge: bytes | None = None,
    ) -> str:
        """The JSON of ``navigator.credentials.get``'s answer: the counter moves up by one unless
        ``counter`` says what to sign; ``challenge`` replaces the options' (a forged binding)."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        client_data = self._client_data("webauthn.get", challenge or challenge_of(request_options_json), origin)
        auth_data = self._auth_data(FLAG_UP | (FLAG_UV if user_verified else 0), counter)
        signature = self.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": None,
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )
