"""``POST /ids/auth/login`` (OAuth 2.0 client credentials) and ``GET /.well-known/jwks.json``.

Thin: parse the request, call :class:`ClientAuthenticator`, sign with :class:`TokenIssuer`.
Errors follow RFC 6749 §5.2. Every unusable credential gets the one :data:`INVALID_CLIENT`
response, byte for byte; an unexpected failure is logged once and answered with a bare
``server_error`` (or ``temporarily_unavailable`` when the database cannot be reached).

The token endpoint is the busiest route, so it is a plain ASGI app (:meth:`OAuthEndpoints.token`):
it reads the few headers it needs in one pass over the scope, reads the small urlencoded body
itself (no ``request.form()`` and its multipart machinery) and sends prepared header lists,
instead of building Starlette's Request and Response objects for every call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from tortoise.exceptions import DBConnectionError, OperationalError

from keyrelease import metrics
from keyrelease.client_address import IPNetwork, client_address
from keyrelease.deadline import UNAVAILABLE
from keyrelease.oauth.basic import BasicCredentials, ParsedBasic, parse_basic
from keyrelease.oauth.tokens import AccessToken, TokenIssuer
from keyrelease.service.clients import ClientAuthenticator
from keyrelease.service.ratelimit import Limited, PointRead, RateLimiter

log = logging.getLogger("keyrelease.oauth")

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"
MAX_BODY_BYTES = 4096
MAX_FORM_FIELDS = 16
JWKS_CACHE = {"Cache-Control": "public, max-age=300"}
#: The one answer to every credential that cannot have a token, whatever the reason: unknown
#: client, wrong secret, a key that is pending, locked, revoked, expired or not yet revealed.
INVALID_CLIENT = ("invalid_client", "Client authentication failed.")
#: The body of the 503 :class:`keyrelease.deadline.RequestDeadline` sends for a token request.
UNAVAILABLE_BODY = {"error": "temporarily_unavailable", "error_description": UNAVAILABLE}
_JSON_NO_STORE = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class Answer(NamedTuple):
    """A response of the token endpoint: status, JSON body, extra headers (already encoded)."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: Send) -> None:
        headers = [*_JSON_NO_STORE, (b"content-length", b"%d" % len(self.body)), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Answer:
    encoded = tuple((name.lower().encode(), value.encode("latin-1")) for name, value in (headers or {}).items())
    return Answer(status, json.dumps({"error": error, "error_description": description}).encode(), encoded)


def invalid_request(description: str) -> Answer:
    return oauth_error(400, "invalid_request", description)


def invalid_client() -> Answer:
    return oauth_error(401, *INVALID_CLIENT, {"WWW-Authenticate": 'Basic realm="keyrelease"'})


def slow_down(limited: Limited) -> Answer:
    """429 with Retry-After. ``slow_down`` is the OAuth error code for "too many requests"
    (RFC 8628 §3.5); RFC 6749 defines none for the token endpoint."""
    description = f"Too many requests; retry after {limited.retry_after} seconds."
    return oauth_error(429, "slow_down", description, {"Retry-After": str(limited.retry_after)})


_OUTCOMES = {200: "granted", 401: "invalid_client", 429: "rate_limited"}
#: The body every client sends (RFC 6749 §4.4.2), read without parsing it as a form.
_CANONICAL_FORM = b"grant_type=" + GRANT_TYPE.encode()


def granted_json(token: AccessToken) -> str:
    """The 200 body, as ``json.dumps(..., separators=(",", ":"))`` writes it (a test compares).
    The token is a JWS in compact form: base64url and dots only, nothing JSON escapes, so it is
    written as it is (the longest value; scanning it for escapes cost more than the rest)."""
    return (
        f'{{"access_token":"{token.token}","expires_in":{token.expires_in:d},'
        f'"scope":{encode_basestring_ascii(token.scope)},"token_type":"Bearer"}}'
    )


def _outcome(status: int) -> str:
    return _OUTCOMES.get(status, "error" if status >= 500 else "invalid_request")


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class TokenRequest(NamedTuple):
    """What the token endpoint reads of a request: a few headers, the peer, the body."""

    peer: str | None
    content_type: str = ""
    content_length: str | None = None
    authorization: Sequence[str] = ()
    forwarded_for: Sequence[str] = ()

    @classmethod
    def of(cls, scope: Scope) -> TokenRequest:
        client = scope.get("client")
        content_type, content_length = "", None
        authorization: list[str] = []
        forwarded_for: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
        return cls(client[0] if client else None, content_type, content_length, authorization, forwarded_for)


class OAuthEndpoints:
    def __init__(
        self,
        clients: ClientAuthenticator,
        issuer: TokenIssuer,
        *,
        limiter: RateLimiter,
        trusted_proxies: tuple[IPNetwork, ...],
    ) -> None:
        self.clients = clients
        self.issuer = issuer
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies

    async def token(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app behind ``POST /ids/auth/login``."""
        answer = await self._answer(TokenRequest.of(scope), receive)
        metrics.token(_outcome(answer.status))
        await answer.send(send)

    async def _answer(self, request: TokenRequest, receive: Receive) -> Answer:
        """Everything the client sends is read and checked first, then the database is asked
        (the rate-limit counters, and the key where the store carries the read), then the
        answer, in the order the checks rank: the limit, the request, the credentials. The key
        is read only after the body has arrived: a client that holds its body back cannot
        bring a row read before a revocation (or a rotation's retirement) to a check after it."""
        try:
            credentials = parse_basic(request.authorization)  # read once, for the limit and the check
            refusal = await self._refusal(request, credentials, receive)
            basic = credentials if refusal is None and isinstance(credentials, BasicCredentials) else None
            attempt = self.clients.attempt(basic.client_id, basic.secrets) if basic is not None else None
            limited, key = await self._rate_limit(request, credentials, attempt.read if attempt else None)
            if limited is not None:
                return slow_down(limited)
            if basic is None or attempt is None:  # refused by the request itself (_refusal)
                assert refusal is not None
                return refusal
            client = await self.clients.authenticate(basic.client_id, basic.secrets, key, attempt)
            if client is None:
                return invalid_client()
            return Answer(200, granted_json(self.issuer.issue(client)).encode())
        except (DBConnectionError, OperationalError, OSError, TimeoutError) as err:
            log.error("token endpoint: database unavailable (%s)", type(err).__name__)
            return oauth_error(503, "temporarily_unavailable", "Try again shortly.", {"Retry-After": "1"})
        except Exception:
            log.exception("token endpoint failed")
            return oauth_error(500, "server_error", "The server could not issue a token.")

    async def _rate_limit(
        self, request: TokenRequest, credentials: ParsedBasic, read: PointRead | None
    ) -> tuple[Limited | None, Any]:
        """One upsert: per client address, and per address and client ID; ``read`` (the client's
        key) in the same round trip where the store can carry it (the key, None, or NOT_READ)."""
        ip = client_address(request.peer, request.forwarded_for, self.trusted_proxies)
        client_id = credentials.client_id if isinstance(credentials, BasicCredentials) else None
        return await self.limiter.token_request_and_read(ip, client_id, read)

    async def _refusal(self, request: TokenRequest, credentials: ParsedBasic, receive: Receive) -> Answer | None:
        """The answer to a request that cannot have a token whatever its credentials' key (its
        content type, body, form, grant type, or credentials missing or malformed); None for a
        request that only the key can decide. Reads the body."""
        content_type = request.content_type.split(";", 1)[0].strip().lower()
        if content_type != FORM_CONTENT_TYPE:
            return invalid_request(f"Content-Type must be {FORM_CONTENT_TYPE}.")
        try:
            body = await _read_limited(request, receive, MAX_BODY_BYTES)
        except _Disconnected:
            return invalid_request("The request body was not received.")
        if body is None:
            return oauth_error(413, "invalid_request", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        params = _parse_form(body)
        if params is None:
            return invalid_request("The body is not a valid form, or repeats a parameter.")
        grant_type = params.get("grant_type")
        if not grant_type:
            return invalid_request("grant_type is required.")
        if grant_type != GRANT_TYPE:
            return oauth_error(400, "unsupported_grant_type", f"Only grant_type={GRANT_TYPE} is supported.")
        if credentials is None:
            return invalid_client()
        if not isinstance(credentials, BasicCredentials):
            return invalid_request("The Authorization header is not valid Basic credentials.")
        return None

    async def jwks(self, request: Request) -> Response:
        """``GET /.well-known/jwks.json``: the published keys, serialised once."""
        return Response(self.issuer.jwks_json, media_type="application/json", headers=JWKS_CACHE)


class TokenEndpoint:
    """Mounts :meth:`OAuthEndpoints.token` as an ASGI app (Starlette wraps a bare method as a
    request/response function instead)."""

    def __init__(self, endpoints: OAuthEndpoints) -> None:
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoints.token(scope, receive, send)


async def _read_limited(request: TokenRequest, receive: Receive, limit: int) -> bytes | None:
    """The body, or None when it is (or says it is) over ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_form(body: bytes) -> dict[str, str] | None:
    """The form's parameters, or None when it is not a form or repeats one (RFC 6749 §3.2)."""
    if body == _CANONICAL_FORM:  # what parse_qsl makes of it
        return {"grant_type": GRANT_TYPE}
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except ValueError:  # non-ASCII body, bad percent-encoding, too many fields
        return None
    params = dict(pairs)
    return params if len(params) == len(pairs) else None
