"""ASGI middleware: every request gets an id, in its log records and its ``X-Request-Id``.

An incoming ``X-Request-Id`` (from a proxy or the caller) is kept when it is a plain token of
8 to 128 letters, digits, ``.``, ``_``, ``-`` or ``:``, so a caller cannot inject log syntax
or a huge header into every line; otherwise a new random id is made.
"""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyrelease.logs import request_id

HEADER = b"x-request-id"
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def accepted_id(value: bytes | None) -> str:
    """The incoming id when it is safe, else a new one."""
    if value is not None:
        text = value.decode("latin-1")
        if SAFE_ID.fullmatch(text):
            return text
    return os.urandom(16).hex()  # 128 random bits, 32 hex digits (a uuid4's hex, minus the UUID object)


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == HEADER), None)
        current = accepted_id(incoming)
        token = request_id.set(current)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, current.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
