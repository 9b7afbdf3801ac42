"""GitHub's secret-scanning signing keys, and the check of a report's signature.

GitHub signs the raw body of each report with ECDSA P-256 / SHA-256 and sends::

    Github-Public-Key-Identifier: <key_identifier>
    Github-Public-Key-Signature: <base64 of the DER-encoded signature>

The public keys come from a JSON file of the shape GitHub publishes at
``https://api.github.com/meta/public_keys/secret_scanning``::

    {"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", "is_current": true}]}

Every listed key is accepted, current or not: GitHub may still deliver reports signed with a
key it has just stopped using. All cryptography is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

MAX_FILE_BYTES = 1024 * 1024
#: A DER ECDSA P-256 signature is at most 72 bytes; base64 of it at most 96 characters.
MAX_SIGNATURE_CHARS = 200
MAX_IDENTIFIER_CHARS = 200


class PublicKeysError(ValueError):
    """The key file is unusable; the message says why."""


@dataclass(frozen=True)
class ScanningKeys:
    """The keys by identifier, and where they were read from."""

    keys: Mapping[str, ec.EllipticCurvePublicKey]
    path: Path

    def __repr__(self) -> str:
        return f"ScanningKeys({self.path}, {len(self.keys)} key(s))"

    def verify(self, body: bytes, identifier: str | None, signature: str | None) -> bool:
        """Whether ``signature`` (base64 DER) is a valid ECDSA P-256/SHA-256 signature of
        ``body`` by the key named ``identifier``. False for anything missing or malformed."""
        if not identifier or not signature or len(signature) > MAX_SIGNATURE_CHARS:
            return False
        key = self.keys.get(identifier.strip())
        if key is None:
            return False
        try:
            der = base64.b64decode(signature.strip(), validate=True)
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            return False
        return True


def load_keys(path: Path) -> ScanningKeys:
    """Read and check the key file. Raises :class:`PublicKeysError` naming the problem."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PublicKeysError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PublicKeysError(f"{path}: cannot read: {err.strerror or type(err).__name__}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PublicKeysError(f"{path}: not JSON") from None
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PublicKeysError(f'{path}: expected {{"public_keys": [...]}} with at least one key')
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: public_keys[{index}]"
        if not isinstance(entry, dict):
            raise PublicKeysError(f"{where}: not an object")
        identifier, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(identifier, str) or not identifier.strip() or len(identifier) > MAX_IDENTIFIER_CHARS:
            raise PublicKeysError(f"{where}: key_identifier must be a non-empty string")
        if not isinstance(pem, str):
            raise PublicKeysError(f"{where}: key must be a PEM public key")
        try:
            key = load_pem_public_key(pem.encode())
        except (ValueError, TypeError):
            raise PublicKeysError(f"{where}: key is not a PEM public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise PublicKeysError(f"{where}: key is not an ECDSA P-256 key")
        keys[identifier.strip()] = key
    return ScanningKeys(keys=keys, path=path)
