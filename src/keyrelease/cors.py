"""CORS for /graphql: frontends on the origins an operator lists may call the API.

Starlette's :class:`~starlette.middleware.cors.CORSMiddleware` does the protocol, for listed
origins only. A request from any other origin passes through untouched, with no CORS header
at all (Starlette's middleware would still add ``Access-Control-Allow-Credentials`` and, to a
preflight, the allowed methods), so the browser refuses to let that page read the answer; a
preflight from it is refused outright. The token endpoint never gets CORS: it is for servers.

Credentials are allowed for listed origins (the session cookie, where one is used), which is
why a wildcard origin is refused when the setting is read.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
#: How long a browser may reuse a preflight answer (seconds).
PREFLIGHT_MAX_AGE = 600


class AllowlistCORS:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.cors = CORSMiddleware(
            app,
            allow_origins=sorted(self.origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and origin.lower() in self.origins:
            await self.cors(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await PlainTextResponse("This origin may not call the API.", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)
