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
from keyrelease.logs import request_id
from keyrelease.request_id import HEADER, accepted_id

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

        await self._run(scope, receive, tracking_send, lambda: started)

    async def _run(self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]) -> None:
        """The app within the deadline; ``send`` tells ``started()`` when the response began."""
        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, send)
        except TimeoutError:
            log.warning("request to %s passed its %.1fs deadline", scope.get("path"), self.seconds)
            if not started():
                await self._unavailable(scope, send)
        except Exception as err:
            if not is_unavailable(err) or started():
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


class RequestContext(RequestDeadline):
    """:class:`keyrelease.request_id.RequestId` and :class:`RequestDeadline` in one middleware:
    the request's id (its log records, its ``X-Request-Id``) and its deadline, with one ``send``
    wrapper per request instead of two. ``seconds=None``: no deadline (a static answer)."""

    def __init__(self, app: ASGIApp, seconds: float | None, unavailable: UnavailableBody) -> None:
        super().__init__(app, seconds or 0.0, unavailable)
        self.timed = seconds is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = accepted_id(next((value for name, value in scope["headers"] if name == HEADER), None))
        token = request_id.set(current)
        header = (HEADER, current.encode())
        started = False

        async def context_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            if self.timed:
                await self._run(scope, receive, context_send, lambda: started)
            else:
                await self.app(scope, receive, context_send)
        finally:
            request_id.reset(token)
