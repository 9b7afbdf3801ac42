"""The keys that sign access tokens and the public keys published in the JWKS.

Loaded once, when the app is built (a bad key file fails start-up naming its variable):

- ``KEYRELEASE_JWT_PRIVATE_KEY_FILE``: the PEM private key that signs new tokens (Ed25519,
  signing with EdDSA, or RSA of at least 2048 bits, signing with RS256). Required in
  production; in development a fresh Ed25519 key is generated into ``var/jwt_signing_key.pem``
  on first run (mode 0600).
- ``KEYRELEASE_JWT_PUBLIC_KEY_FILES``: comma-separated PEM files (public or private; only the
  public part is used) that are published in the JWKS too, but never sign: the previous key
  until its last tokens have expired, the next key before it starts signing.

A ``kid`` is the RFC 7638 thumbprint of the public key, so every instance given the same key
file names it the same way without coordination.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from keyrelease import files
from keyrelease.exceptions import ConfigError

#: The settings a bad key file is reported under (keyrelease.config declares them).
PRIVATE_KEY_VARIABLE = "KEYRELEASE_JWT_PRIVATE_KEY_FILE"
PUBLIC_KEYS_VARIABLE = "KEYRELEASE_JWT_PUBLIC_KEY_FILES"
DEVELOPMENT_KEY_NAME = "jwt_signing_key.pem"
MIN_RSA_BITS = 2048

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class PublishedKey:
    """A public key as it appears in the JWKS."""

    kid: str
    algorithm: str
    public_key: PublicKey = field(repr=False)

    def jwk(self) -> dict[str, str]:
        return {**_public_members(self.public_key), "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    """The private key that signs new tokens, with its published half."""

    published: PublishedKey
    private_key: PrivateKey = field(repr=False)

    @property
    def kid(self) -> str:
        return self.published.kid

    @property
    def algorithm(self) -> str:
        return self.published.algorithm


@dataclass(frozen=True)
class KeyRing:
    """One signing key and every key a resource server may meet in a token still valid."""

    signing: SigningKey
    published: tuple[PublishedKey, ...]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.jwk() for key in self.published]}


def load_key_ring(private_key_file: Path | None, public_key_files: Sequence[Path], var_dir: Path) -> KeyRing:
    """The key ring of the JWT settings: the private key file (None: the development key kept in
    ``var_dir``) and the public keys also published. Raises :class:`ConfigError` for a bad file."""
    if private_key_file is not None:
        private_key = _load_private(private_key_file, PRIVATE_KEY_VARIABLE)
    else:
        private_key = development_key(var_dir)
    signing = SigningKey(published=_published(private_key.public_key()), private_key=private_key)
    published = [signing.published]
    for path in public_key_files:
        extra = _published(_load_public(path, PUBLIC_KEYS_VARIABLE))
        if extra.kid not in {key.kid for key in published}:
            published.append(extra)
    return KeyRing(signing=signing, published=tuple(published))


def generate_private_key_pem() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(private_pem: bytes) -> bytes:
    """The public half of a PEM private key, as PEM: what goes into the JWKS list."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def development_key(var_dir: Path) -> PrivateKey:
    """The development signing key in ``var/``, generated on first run (mode 0600).

    Race-safe: the key is written to a temporary file and hard-linked into place, which fails
    if another process got there first; then everyone reads the one complete file.
    """
    path = var_dir / DEVELOPMENT_KEY_NAME
    if not path.exists():
        files.private_directory(var_dir)
        fd, temporary = tempfile.mkstemp(dir=var_dir, prefix=".jwt-key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(generate_private_key_pem())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process started at the same moment and won
        finally:
            os.unlink(temporary)
    return _load_private(path, PRIVATE_KEY_VARIABLE)


def _load_private(path: Path, variable: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(variable, f"{path} is not an unencrypted PEM private key ({type(err).__name__})") from None
    return _checked(key, path, variable)  # type: ignore[return-value]


def _load_public(path: Path, variable: str) -> PublicKey:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(variable, f"cannot read {path} ({type(err).__name__})") from None
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise ConfigError(variable, f"{path} is not a PEM public or private key") from None
    return _checked(key, path, variable)  # type: ignore[return-value]


def _checked(key: Any, path: Path, variable: str) -> Any:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(variable, f"{path}: RSA keys must have at least {MIN_RSA_BITS} bits")
        return key
    raise ConfigError(variable, f"{path}: only Ed25519 and RSA keys can sign tokens")


def _published(public_key: PublicKey) -> PublishedKey:
    algorithm = "EdDSA" if isinstance(public_key, ed25519.Ed25519PublicKey) else "RS256"
    return PublishedKey(kid=thumbprint(public_key), algorithm=algorithm, public_key=public_key)


def thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's ``kid``."""
    members = json.dumps(_public_members(public_key), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(members.encode()).digest())


def _public_members(public_key: PublicKey) -> dict[str, str]:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64(_unsigned(numbers.n)), "e": _b64(_unsigned(numbers.e))}


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
