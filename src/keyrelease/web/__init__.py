"""The browser pages: the admin console at ``/``, the partner's retrieval page at ``/partner``,
GraphiQL at ``GET /graphql`` (for a browser), and their static assets at ``/static/``. Plain
HTML, CSS and JavaScript modules shipped in the package (GraphiQL's bundle, built from npm by
``make graphiql``, in ``static/graphiql/``); every piece of data they show comes through
``/graphql``.

Every response here carries a strict Content-Security-Policy: scripts, styles and requests
only from this origin, no inline script or style (GraphiQL's page alone allows inline style:
see GRAPHIQL_CONTENT_SECURITY_POLICY), no framing. Pages, where secrets appear,
are never stored by a browser or a proxy (``Cache-Control: no-store``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).parent
PAGES = HERE / "pages"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)

#: On the pages, where a client secret may be on screen.
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
#: On scripts and styles: the same policy, but a browser may keep them if it revalidates.
ASSET_HEADERS = {**PAGE_HEADERS, "cache-control": "no-cache"}
#: GraphiQL's page: the console's policy, with one difference. Monaco (GraphiQL's editor) and
#: Radix (its dialogs) insert <style> elements while they run, and Monaco sets no nonce on
#: them, so styles may be inline here; scripts still come only from this origin (no inline
#: script, no eval), as do fonts, workers and requests, and no page may frame it.
GRAPHIQL_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
GRAPHIQL_HEADERS = {**PAGE_HEADERS, "content-security-policy": GRAPHIQL_CONTENT_SECURITY_POLICY}
#: Where GraphiQL's bundle is served from (``static/graphiql/``).
GRAPHIQL_ASSETS = "/static/graphiql"
GRAPHIQL_OFF = "GraphiQL is switched off on this server (KEYRELEASE_GRAPHIQL=off). The GraphQL API answers POST requests here.\n"

#: On /graphql, whose answers carry secrets. No policy here: the API's answers are JSON, and
#: GraphiQL's page, also served at GET /graphql, brings its own (GRAPHIQL_HEADERS).
API_HEADERS = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware setting ``headers`` on every HTTP response of ``app`` (replacing any
    the app set itself)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(name.encode(), value.encode()) for name, value in headers.items()]
        self._names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def no_store(app: ASGIApp) -> ASGIApp:
    """Wrap the GraphQL endpoint: its answers are never cached, never sniffed."""
    return SecurityHeaders(app, API_HEADERS)


def _page(filename: str):  # type: ignore[no-untyped-def]
    body = (PAGES / filename).read_bytes()

    async def page(request: Request) -> Response:
        return Response(body, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return page


_GRAPHIQL_PAGE = (PAGES / "graphiql.html").read_bytes()


def graphiql_page(enabled: bool = True) -> Response:
    """GraphiQL's page, for a browser's GET /graphql; when switched off, a plain 404 saying so."""
    if not enabled:
        return Response(GRAPHIQL_OFF, status_code=404, media_type="text/plain; charset=utf-8", headers=PAGE_HEADERS)
    return Response(_GRAPHIQL_PAGE, media_type="text/html; charset=utf-8", headers=GRAPHIQL_HEADERS)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await Response("Not Found", status_code=404, media_type="text/plain", headers=ASSET_HEADERS)(scope, receive, send)


def routes(*, graphiql: bool = True) -> list[BaseRoute]:
    """The console's routes, to mount beside /graphql. ``graphiql=False``: GraphiQL's assets
    are not served either."""
    return [
        Route("/", _page("console.html"), name="console"),
        Route("/partner", _page("partner.html"), name="partner"),
        *([] if graphiql else [Mount(GRAPHIQL_ASSETS, _not_found)]),
        Mount("/static", SecurityHeaders(StaticFiles(directory=STATIC), ASSET_HEADERS), name="static"),
    ]
