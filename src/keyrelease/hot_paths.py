"""The busiest routes, answered before Starlette's middleware stack and router.

``POST /ids/auth/login`` and ``GET /healthz`` are plain ASGI apps that never raise (the token
endpoint answers every failure itself) and need nothing of what Starlette wraps around a
route: its exception middlewares (two ``send`` wrappers and two ``try`` blocks) and a router that
tries the routes in order. :class:`App` hands a request whose method and exact path name a hot
route straight to it, wrapped only in :class:`keyrelease.deadline.RequestContext` (the request id
and the deadline, as every other request has them); everything else, including the same paths
with another method (405) or a trailing slash, takes Starlette's usual way. The routes stay in
the router too, so the app describes itself as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_OK = b'{"status":"ok"}'
_HEALTHZ_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", str(len(_OK)).encode()), (b"content-type", b"application/json")],
}
_HEALTHZ_BODY: Message = {"type": "http.response.body", "body": _OK}


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /healthz``: the process answers. The bytes Starlette's ``JSONResponse({"status": "ok"})``
    sends, prepared once."""
    await send(_HEALTHZ_START)  # never changed: a middleware that adds a header sends a copy
    await send(_HEALTHZ_BODY)


class App(Starlette):
    """Starlette, with ``hot``: ``{(method, path): asgi_app}`` answered first (see above)."""

    def __init__(self, *, hot: Mapping[tuple[str, str], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self.hot = dict(hot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self.hot.get((scope["method"], scope["path"]))
            if route is not None:
                scope["app"] = self
                await route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
