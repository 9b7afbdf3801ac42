"""The token floor: the smallest ASGI app that does exactly the unavoidable work of a token
request, on the service's own database file and signing key, served by uvicorn as
``keyrelease serve`` is (same HTTP parser and loop, ``proxy_headers=False``, ``--log-level
warning``: no access log). No Starlette, no middleware, no rate limit, no metrics, no logging.

Per request: parse HTTP (uvicorn), find the Authorization header, decode Basic, read the body
and check ``grant_type=client_credentials``, one point read by the unique ``client_id`` index
(the key's secret hash and its institution's name, on a read-only SQLite connection, as
keyrelease's own point read does), one SHA-256 and constant-time compare, one Ed25519
signature over the same claims keyrelease issues, one JSON response. Anything else is 401.

``python bench/floor_app.py --port P --database FILE --key-file PEM [--issuer URL --audience AUD]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import sqlite3
import time
import uuid
from urllib.parse import quote

import uvicorn
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_LOOKUP = ("SELECT k.secret_hash, i.name FROM api_key k JOIN institution i ON i.id = k.institution_id "
           "WHERE k.client_id = ?")
_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_DENIED = {"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class TokenFloor:
    def __init__(self, database: str, key_file: str, issuer: str, audience: str) -> None:
        self.db = sqlite3.connect(f"file:{quote(os.path.abspath(database))}?mode=ro", uri=True,
                                  check_same_thread=False, isolation_level=None)
        with open(key_file, "rb") as pem:
            key = load_pem_private_key(pem.read(), password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey), "the floor signs with Ed25519 (EdDSA)"
        self.sign = key.sign
        self.header = _b64(b'{"alg":"EdDSA","typ":"JWT"}')
        self.issuer, self.audience = issuer, audience

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":  # lifespan
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            return
        if scope["path"] == "/healthz":
            await _json(send, b'{"status":"ok"}')
            return
        authorization = next((v for n, v in scope["headers"] if n == b"authorization"), b"")
        body = (await receive()).get("body", b"")
        token = self.token(authorization, body)
        if token is None:
            await send(_DENIED)
            await send({"type": "http.response.body", "body": b""})
            return
        await _json(send, token)

    def token(self, authorization: bytes, body: bytes) -> bytes | None:
        if body != b"grant_type=client_credentials" or not authorization.startswith(b"Basic "):
            return None
        client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        row = self.db.execute(_LOOKUP, (client_id,)).fetchone()
        if row is None or not hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), row[0] or ""):
            return None
        now = math.floor(time.time())
        claims = {"iss": self.issuer, "sub": client_id, "aud": self.audience, "iat": now, "exp": now + 3600,
                  "jti": uuid.uuid4().hex, "scope": "api", "institution": row[1]}
        signing_input = self.header + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
        jwt = signing_input + b"." + _b64(self.sign(signing_input))
        return b'{"access_token":"' + jwt + b'","expires_in":3600,"scope":"api","token_type":"Bearer"}'


async def _json(send, body: bytes) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--database", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--issuer", default="http://127.0.0.1")
    parser.add_argument("--audience", default="keyrelease")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args()
    app = TokenFloor(args.database, args.key_file, args.issuer, args.audience)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False, http=args.http,
                loop=args.loop)


if __name__ == "__main__":
    main()
