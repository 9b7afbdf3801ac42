"""Client credentials and admin tokens: minting and hashing.

Secrets are 256-bit random values (URL-safe base64). They are stored only as SHA-256 hashes:
for high-entropy random values a slow hash adds nothing, and the token endpoint is the hot
path. Lookups by hash go through a unique index; the hash of a guess reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

SECRET_BYTES = 32
ADMIN_TOKEN_PREFIX = "kra_"


def new_client_id(region: str) -> str:
    return f"{region}#{uuid.uuid4()}"


def new_client_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``secret`` against a stored hash (always hashes)."""
    return hmac.compare_digest(hash_secret(secret), stored_hash or "0" * 64)
