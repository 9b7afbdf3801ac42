"""The console's sign-in with an identity provider, over HTTP (thin: the rules are in
:mod:`keyrelease.service.sso` and :mod:`keyrelease.service.sessions`).

``POST /sso/start`` (JSON ``{"email": …}``) answers ``{"redirect": <provider URL>}`` and sets the
short-lived sign-in cookie that binds the provider's answer to this browser;
``GET /sso/callback`` (the redirect URI registered at the provider) finishes the sign-in, sets
the session cookie and sends the browser to the console, or shows the one message that says
why not; ``POST /sso/sign-out`` ends the session on the server.

Cookies: ``__Host-keyrelease-session`` (``__Host-keyrelease-sign-in``) when the public URL is
https: HttpOnly, ``Secure``, ``Path=/``, no ``Domain``, ``SameSite=Lax``. Over plain http (a
development server) browsers refuse the ``__Host-`` prefix and ``Secure``, so the names lose
the prefix and the cookies the flag.

CSRF: a request authenticated by the session cookie (GraphQL, sign-out) must carry the header
``X-Keyrelease-CSRF: 1``, which a cross-site form cannot send and a cross-site script cannot
send without a CORS preflight that keyrelease refuses for it, and an ``Origin`` equal to the
public URL's origin.
"""

from __future__ import annotations

import html
import json
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from keyrelease import client_address
from keyrelease.client_address import IPNetwork
from keyrelease.models import Admin
from keyrelease.service.ratelimit import RateLimiter
from keyrelease.service.sessions import SessionService
from keyrelease.service.sso import SignIn, SignInRefused
from keyrelease.web import PAGE_HEADERS

CSRF_HEADER = "x-keyrelease-csrf"
CSRF_REFUSED = (
    "This request carries the console's session cookie but not the console's request header and origin "
    "(X-Keyrelease-CSRF and Origin): refused, as a cross-site request would be."
)
SESSION_ENDED = "Your console session has ended (signed out, idle too long, or at its time limit). Sign in again."
_MAX_EMAIL_BODY = 2048
_FAILURE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>keyrelease · Sign-in failed</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main id="main"><section aria-labelledby="failed-heading">
<h1 id="failed-heading">Sign-in failed</h1>
<p id="sign-in-failure" class="notice danger" role="alert">{message}</p>
<p><a class="button" href="/">Back to sign-in</a></p>
</section></main></body></html>
"""


class SessionCookies:
    """Names, attributes and checks of the console's cookies, for one public URL."""

    def __init__(self, sessions: SessionService, public_url: str, *, sign_in_seconds: int) -> None:
        self.sessions = sessions
        parts = urlsplit(public_url)
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.secure = parts.scheme == "https"
        prefix = "__Host-" if self.secure else ""
        self.session_cookie = prefix + "keyrelease-session"
        self.sign_in_cookie = prefix + "keyrelease-sign-in"
        self.sign_in_seconds = sign_in_seconds

    def csrf_problem(self, request: Request) -> str | None:
        if request.headers.get(CSRF_HEADER) != "1" or (request.headers.get("origin") or "").lower() != self.origin:
            return CSRF_REFUSED
        return None

    async def admin_of(self, request: Request) -> tuple[Admin | None, str | None]:
        """The admin of the request's session cookie, or why not (None, None: no cookie)."""
        value = request.cookies.get(self.session_cookie)
        if not value:
            return None, None
        if (problem := self.csrf_problem(request)) is not None:
            return None, problem
        admin = await self.sessions.admin(value)
        return (admin, None) if admin is not None else (None, SESSION_ENDED)

    def set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="lax")

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")


class SignInEndpoints:
    def __init__(
        self, sign_in: SignIn, cookies: SessionCookies, *, limiter: RateLimiter, trusted_proxies: tuple[IPNetwork, ...]
    ) -> None:
        self.sign_in = sign_in
        self.cookies = cookies
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies

    async def _limited(self, request: Request) -> Response | None:
        limited = await self.limiter.sign_in(client_address.of_request(request, self.trusted_proxies))
        if limited is None:
            return None
        response = _error(limited.message, "rate_limited", 429)
        response.headers["Retry-After"] = str(limited.retry_after)
        return response

    def routes(self) -> list[Route]:
        return [
            Route("/sso/start", self.start, methods=["POST"]),
            Route("/sso/callback", self.callback, methods=["GET"]),
            Route("/sso/sign-out", self.sign_out, methods=["POST"]),
        ]

    async def start(self, request: Request) -> Response:
        if (limited := await self._limited(request)) is not None:
            return limited
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error("Send the email as JSON: {\"email\": \"you@university.edu\"}.", "bad_request", 415)
        body = b""
        async for chunk in request.stream():  # read no more than a sign-in can need
            body += chunk
            if len(body) > _MAX_EMAIL_BODY:
                return _error("The request is too large for a sign-in.", "too_large", 413)
        try:
            email = json.loads(body).get("email")
        except (ValueError, AttributeError):
            email = None
        if not isinstance(email, str):
            return _error("Send the email as JSON: {\"email\": \"you@university.edu\"}.", "bad_request", 400)
        started = await self.sign_in.start(email)
        if isinstance(started, SignInRefused):
            return _error(started.message, started.reason, started.status)
        response = JSONResponse({"redirect": started.url}, headers={"cache-control": "no-store"})
        self.cookies.set(response, self.cookies.sign_in_cookie, started.state, self.cookies.sign_in_seconds)
        return response

    async def callback(self, request: Request) -> Response:
        if (limited := await self._limited(request)) is not None:
            return limited
        query = request.query_params
        outcome = await self.sign_in.finish(
            state=query.get("state", ""),
            code=query.get("code", ""),
            error=query.get("error", ""),
            browser_state=request.cookies.get(self.cookies.sign_in_cookie, ""),
        )
        if isinstance(outcome, SignInRefused):
            response: Response = Response(
                _FAILURE_PAGE.format(message=html.escape(outcome.message)), status_code=outcome.status,
                media_type="text/html; charset=utf-8", headers=PAGE_HEADERS,
            )
        else:
            response = RedirectResponse("/#/keys", status_code=303, headers={"cache-control": "no-store"})
            self.cookies.set(response, self.cookies.session_cookie, outcome.session, self.cookies.sessions.lifetime_seconds)
        self.cookies.clear(response, self.cookies.sign_in_cookie)
        return response

    async def sign_out(self, request: Request) -> Response:
        if (problem := self.cookies.csrf_problem(request)) is not None:
            return _error(problem, "csrf", 403)
        ended = await self.cookies.sessions.end(request.cookies.get(self.cookies.session_cookie, ""))
        response = JSONResponse({"signedOut": ended}, headers={"cache-control": "no-store"})
        self.cookies.clear(response, self.cookies.session_cookie)
        return response


def _error(message: str, reason: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status, headers={"cache-control": "no-store"})
