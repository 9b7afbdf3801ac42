"""Client credentials and admin tokens: minting, recognising and hashing.

Client secrets have a recognisable form, in the style of GitHub's tokens, so that secret
scanners find them and a mistyped one is refused before any database work::

    krs_ + 43 base62 characters (256 bits of randomness) + 6 base62 characters (CRC32)

The checksum is CRC32 of everything before it (prefix and body), written in base62 and
left-padded to six characters. It is not a secret: anyone can compute it. It only tells a
keyrelease secret from a look-alike (a random string of the same shape passes with
probability 1 in 62⁶, about 1 in 5.7×10¹⁰) and a mistyped secret from a real one, without a
database lookup. Secrets imported from before this form (and those minted before it, URL-safe
base64) carry no prefix and keep working as they are.

Secrets are stored only as SHA-256 hashes: for high-entropy random values a slow hash adds
nothing, and the token endpoint is the hot path. The hash of a guess reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
import zlib

SECRET_BYTES = 32
ADMIN_TOKEN_PREFIX = "kra_"
#: The prefix every newly minted client secret starts with ("keyrelease secret").
CLIENT_SECRET_PREFIX = "krs_"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
#: 43 base62 characters: 43 × log2(62) ≈ 256.03 bits of randomness.
SECRET_BODY_CHARS = 43
#: CRC32 < 2³² < 62⁶.
CHECKSUM_CHARS = 6
CLIENT_SECRET_LENGTH = len(CLIENT_SECRET_PREFIX) + SECRET_BODY_CHARS + CHECKSUM_CHARS
#: The shape of a client secret, checksum not checked (docs/tokens.md gives scanner rules).
CLIENT_SECRET_PATTERN = re.compile(rf"{CLIENT_SECRET_PREFIX}[0-9A-Za-z]{{{SECRET_BODY_CHARS + CHECKSUM_CHARS}}}")


def new_client_id(region: str) -> str:
    return f"{region}#{uuid.uuid4()}"


def new_client_secret() -> str:
    """``krs_`` + 43 random base62 characters + their CRC32 in base62."""
    body = CLIENT_SECRET_PREFIX + "".join(secrets.choice(BASE62) for _ in range(SECRET_BODY_CHARS))
    return body + secret_checksum(body)


def secret_checksum(text: str) -> str:
    """CRC32 of ``text`` in base62, six characters."""
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_CHARS):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def is_client_secret(text: str) -> bool:
    """Whether ``text`` is a well-formed keyrelease client secret: the shape and the checksum.
    Says nothing about whether any key has it."""
    if len(text) != CLIENT_SECRET_LENGTH or not CLIENT_SECRET_PATTERN.fullmatch(text):
        return False
    body, checksum = text[:-CHECKSUM_CHARS], text[-CHECKSUM_CHARS:]
    return hmac.compare_digest(secret_checksum(body), checksum)


def is_mistyped_secret(text: str) -> bool:
    """A ``krs_`` secret that fails its shape or checksum: no key can have it (every minted
    secret passes, and legacy secrets with this prefix are refused at import), so it can be
    refused without a lookup. The checksum is public, so refusing early reveals nothing about
    any client."""
    return text.startswith(CLIENT_SECRET_PREFIX) and not is_client_secret(text)


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``secret`` against a stored hash (always hashes)."""
    return hash_matches(hash_secret(secret), stored_hash)


def hash_matches(digest: str, stored_hash: str | None) -> bool:
    """Constant-time check of a secret's :func:`hash_secret` against a stored hash (None, no
    hash: compared with a stand-in all the same)."""
    return hmac.compare_digest(digest, stored_hash or _NO_HASH)


_NO_HASH = "0" * 64
