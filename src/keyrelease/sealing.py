"""Secrets that keyrelease must read back (an identity provider's client secret), stored
encrypted under a key derived from the server secret.

Codes and OTPs are *derived* from the server secret (:mod:`keyrelease.codes`) and client
secrets stored only as hashes (:mod:`keyrelease.credentials`); a provider's client secret is
neither: keyrelease must send it to the provider. It is sealed with AES-256-GCM (the
``cryptography`` package) under ``HMAC-SHA256(server secret, "keyrelease-seal" + purpose)``,
the purpose and a context (the institution) bound in as associated data, so a sealed value
copied to another row or purpose does not open. A database dump alone therefore reveals no
client secret; a changed server secret makes every sealed value unreadable (the operator sets
the provider again), which :class:`SealBroken` reports.

Sealed form: ``v1.`` + base64url(12-byte nonce + ciphertext and tag), no padding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1."
_NONCE_BYTES = 12


class SealBroken(ValueError):
    """A sealed value that does not open: another server secret, another context, or damaged."""


def _key(server_secret: bytes, purpose: str) -> bytes:
    return hmac.new(server_secret, b"keyrelease-seal\x00" + purpose.encode(), hashlib.sha256).digest()


def seal(server_secret: bytes, purpose: str, context: str, plaintext: str) -> str:
    """``plaintext`` encrypted for ``purpose`` and ``context`` (both needed to open it)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(server_secret, purpose)).encrypt(nonce, plaintext.encode(), context.encode())
    return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(server_secret: bytes, purpose: str, context: str, sealed: str) -> str:
    """The plaintext :func:`seal` sealed; :class:`SealBroken` if it does not open."""
    if not sealed.startswith(_VERSION):
        raise SealBroken("not a sealed value")
    body = sealed[len(_VERSION):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        opened = AESGCM(_key(server_secret, purpose)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
    except (ValueError, InvalidTag):
        raise SealBroken("the sealed value does not open with this server secret") from None
    return opened.decode()
