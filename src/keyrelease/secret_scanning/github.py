"""``POST /secret-scanning/github``: GitHub's secret-scanning partner program.

Thin: limit, read the capped body, check its signature, parse it, call
:meth:`keyrelease.service.leaks.LeakService.report_many`, answer. The request GitHub sends::

    POST /secret-scanning/github
    Github-Public-Key-Identifier: <key id>
    Github-Public-Key-Signature: <base64 DER ECDSA P-256/SHA-256 signature of the raw body>

    [{"token": "krs_…", "type": "keyrelease_client_secret", "url": "https://github.com/…", "source": "content"}]

and the answer, one entry per reported token::

    [{"token_raw": "krs_…", "token_type": "keyrelease_client_secret", "label": "true_positive"}]

A report whose signature cannot be verified gets 401 and is not read further; a body that is
not such a list gets 400; neither changes anything.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from tortoise.exceptions import DBConnectionError, OperationalError

from keyrelease import client_address
from keyrelease.client_address import IPNetwork
from keyrelease.secret_scanning.public_keys import ScanningKeys
from keyrelease.service.leaks import InvalidLeakReport, LeakReport, LeakService
from keyrelease.service.ratelimit import RateLimiter

log = logging.getLogger("keyrelease.secret_scanning")

#: The most tokens one report may name.
MAX_TOKENS = 1000
_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers={**_NO_STORE, **(headers or {})})


class _TooLarge(Exception):
    pass


class GitHubSecretScanning:
    def __init__(
        self,
        *,
        keys: ScanningKeys,
        leaks: LeakService,
        limiter: RateLimiter,
        max_body_bytes: int,
        trusted_proxies: tuple[IPNetwork, ...],
    ) -> None:
        self.keys = keys
        self.leaks = leaks
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = trusted_proxies

    async def handle(self, request: Request) -> Response:
        """The request/response function behind the route."""
        try:
            return await self._answer(request)
        except ClientDisconnect:
            return _error(400, "invalid_request", "The request body was not received.")
        except (DBConnectionError, OperationalError, OSError, TimeoutError) as err:
            log.error("secret-scanning report: database unavailable (%s)", type(err).__name__)
            return _error(503, "temporarily_unavailable", "Try again shortly.", {"Retry-After": "1"})
        except Exception:
            log.exception("secret-scanning report failed")
            return _error(500, "server_error", "The report could not be processed.")

    async def _answer(self, request: Request) -> Response:
        limited = await self.limiter.secret_scanning_report(client_address.of_request(request, self.trusted_proxies))
        if limited is not None:
            return _error(429, "rate_limited", limited.message, {"Retry-After": str(limited.retry_after)})
        try:
            body = await self._body(request)
        except _TooLarge:
            return _error(413, "too_large", f"The report is larger than {self.max_body_bytes} bytes.")
        identifier = request.headers.get("github-public-key-identifier")
        signature = request.headers.get("github-public-key-signature")
        if not self.keys.verify(body, identifier, signature):
            return _error(401, "invalid_signature", "The report's signature could not be verified.")
        parsed = _parse(body)
        if isinstance(parsed, str):
            return _error(400, "invalid_request", parsed)
        try:
            outcomes = await self.leaks.report_many([report for report, _ in parsed])
        except InvalidLeakReport as err:
            return _error(400, "invalid_request", str(err))
        answer = [
            {
                "token_raw": report.secret,
                "token_type": token_type,
                "label": "true_positive" if outcome.true_positive else "false_positive",
            }
            for (report, token_type), outcome in zip(parsed, outcomes, strict=True)
        ]
        return JSONResponse(answer, headers=_NO_STORE)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)


def _parse(body: bytes) -> list[tuple[LeakReport, str]] | str:
    """The reports with their ``type`` (echoed as ``token_type``), or a message saying why the body is not GitHub's list of matches."""
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return "The body is not JSON."
    if not isinstance(document, list):
        return "The body must be a JSON array of {token, type, url, source} objects."
    if len(document) > MAX_TOKENS:
        return f"A report may name at most {MAX_TOKENS} tokens."
    reports = []
    for index, item in enumerate(document):
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            return f"Item {index} must be an object with a string token."
        for name in ("type", "url", "source"):
            if item.get(name) is not None and not isinstance(item[name], str):
                return f"Item {index}: {name} must be a string."
        source = f"GitHub secret scanning ({item.get('source') or 'report'})"
        reports.append((LeakReport(secret=item["token"], url=item.get("url"), source=source), item.get("type") or ""))
    return reports
