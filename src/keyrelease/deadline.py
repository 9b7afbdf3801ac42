"""ASGI middleware: every request gets an answer within a deadline.

When the database is down or the pool is exhausted, a request must not hang: past the
deadline it is cancelled (its transaction rolls back) and answered 503 with Retry-After.
The same 503 answers a request that failed because the database is unreachable. Its JSON
body is the caller's to choose (``unavailable``): each API answers errors in its own shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyrelease.db import is_unavailable

log = logging.getLogger("keyrelease")
UNAVAILABLE = "The service is temporarily unavailable; try again shortly."
#: The JSON body of the 503 for a request, given its scope.
UnavailableBody = Callable[[Scope], object]


class RequestDeadline:
    def __init__(self, app: ASGIApp, seconds: float, unavailable: UnavailableBody) -> None:
        self.app = app
        self.seconds = seconds
        self.unavailable = unavailable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            log.warning("request to %s passed its %.1fs deadline", scope.get("path"), self.seconds)
            if not started:
                await self._unavailable(scope, send)
        except Exception as err:
            if not is_unavailable(err) or started:
                raise
            log.warning("request to %s failed: database unavailable (%s)", scope.get("path"), type(err).__name__)
            await self._unavailable(scope, send)

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        body = json.dumps(self.unavailable(scope)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
