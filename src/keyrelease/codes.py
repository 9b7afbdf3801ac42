"""Verification codes and partner one-time passwords, derived from the server secret.

Neither is ever stored. A code is HOTP (RFC 4226, via pyotp) over a per-key secret that is
itself an HMAC of the key id under the server secret; its counter is the key's code
generation, so issuing a new code (generation + 1) invalidates the previous one. The partner
OTP is an HMAC of the key id under the server secret, shown as base32. A copy of the database
alone therefore lets nobody compute or check a code or an OTP: that needs the server secret,
which lives outside the database.

Comparison is constant-time (``hmac.compare_digest``): the time taken does not depend on how
many leading characters of a guess are right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid

import pyotp

CODE_DIGITS = 6
CODE_PATTERN = re.compile(r"^[0-9]{6}$")
OTP_BYTES = 10  # 80 bits
_OTP_ALPHABET = re.compile(r"^[A-Z2-7]{16}$")


def _derive(server_secret: bytes, purpose: bytes, key_id: uuid.UUID) -> bytes:
    return hmac.new(server_secret, purpose + b"\x00" + key_id.bytes, hashlib.sha256).digest()


def verification_code(server_secret: bytes, key_id: uuid.UUID, generation: int) -> str:
    """The six-digit code of ``key_id``'s code number ``generation``."""
    key_secret = base64.b32encode(_derive(server_secret, b"verification-code", key_id)).decode()
    return pyotp.HOTP(key_secret, digits=CODE_DIGITS).at(generation)


def code_matches(server_secret: bytes, key_id: uuid.UUID, generation: int, candidate: str) -> bool:
    """Whether ``candidate`` is that code, in constant time."""
    return hmac.compare_digest(verification_code(server_secret, key_id, generation), candidate)


def partner_otp(server_secret: bytes, key_id: uuid.UUID) -> str:
    """The partner's one-time password for ``key_id``: 80 bits, base32, grouped for copying."""
    raw = base64.b32encode(_derive(server_secret, b"partner-otp", key_id)[:OTP_BYTES]).decode()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalize_otp(candidate: str) -> str | None:
    """The canonical form of a typed OTP (case, spaces and dashes ignored), or None if it
    cannot be one."""
    cleaned = re.sub(r"[\s-]", "", candidate).upper()
    return cleaned if _OTP_ALPHABET.match(cleaned) else None


def otp_matches(server_secret: bytes, key_id: uuid.UUID, candidate: str) -> bool:
    expected = partner_otp(server_secret, key_id).replace("-", "")
    return hmac.compare_digest(expected, normalize_otp(candidate) or "")


def passkey_challenge(server_secret: bytes, bound_to: list[str]) -> bytes:
    """A WebAuthn challenge bound to ``bound_to`` (what the assertion may release, and a fresh
    random nonce): an HMAC under the server secret, so the server recomputes it from the row
    it is about to change instead of storing it, and an assertion signed over one release's
    challenge cannot match any other's."""
    return hmac.new(server_secret, b"passkey-challenge\x00" + json.dumps(bound_to).encode(), hashlib.sha256).digest()
