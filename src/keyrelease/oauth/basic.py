"""HTTP Basic client credentials (RFC 7617, as used by RFC 6749 §2.3.1).

RFC 6749 says the client ID and secret are form-urlencoded before they go into the Basic
header, so ``%23`` and ``+`` are decoded. Many client libraries skip that step; a secret the
service minted is URL-safe base64 and reads the same either way, but an imported legacy
secret may contain ``+`` or ``%``. So when decoding changes the password, both forms are
offered to the authenticator: the client sent one password, and at most one of its readings
can be the key's secret. Client IDs (``<region>#<uuid>``) contain neither character.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

MAX_HEADER_CHARS = 1024


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    #: The password as form-decoded, then as sent if that differs.
    secrets: tuple[str, ...]

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"BasicCredentials(client_id={self.client_id!r}, secrets=<hidden>)"


class _Malformed:
    def __repr__(self) -> str:
        return "MALFORMED"


#: Returned for an Authorization header that claims to be Basic but cannot be read.
MALFORMED: Final = _Malformed()
#: What :func:`parse_basic` returns.
ParsedBasic = BasicCredentials | _Malformed | None


def parse_basic(headers: Sequence[str]) -> ParsedBasic:
    """Read the values of the request's Authorization headers.

    None: no client authentication (no header, or another scheme). :data:`MALFORMED`: more
    than one header, or Basic credentials that are not base64 of UTF-8 ``user:password``.
    """
    if not headers:
        return None
    if len(headers) > 1:
        return MALFORMED
    scheme, _, param = headers[0].strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    param = param.strip()
    if not param or len(param) > MAX_HEADER_CHARS:
        return MALFORMED
    try:
        user, colon, password = base64.b64decode(param, validate=True).decode("utf-8").partition(":")
        if not colon:
            return MALFORMED
        client_id = unquote_plus(user, errors="strict")
        secret = unquote_plus(password, errors="strict")
    except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
        return MALFORMED
    if not (client_id + password + secret).isprintable():  # NUL and other controls: never valid
        return MALFORMED
    secrets = (secret,) if secret == password else (secret, password)
    return BasicCredentials(client_id=client_id, secrets=secrets)
