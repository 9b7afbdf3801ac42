"""The Starlette application: routes, start-up and shutdown. Thin: the work is in services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope
from tortoise.contrib.starlette import RegisterTortoise
from tortoise.functions import Count

from keyrelease import db, hot_paths, metrics, web
from keyrelease.body_limit import BodyLimit
from keyrelease.clock import Clock
from keyrelease.config import Settings
from keyrelease.cors import AllowlistCORS
from keyrelease.db import fastpath
from keyrelease.deadline import RequestContext
from keyrelease.graphql import errors as graphql_errors
from keyrelease.graphql.schema import build_schema
from keyrelease.graphql.view import GraphQLView
from keyrelease.models import DeliveryStatus, OutboxMessage
from keyrelease.oauth import endpoints as oauth_endpoints
from keyrelease.oauth.endpoints import OAuthEndpoints, TokenEndpoint
from keyrelease.secret_scanning.github import GitHubSecretScanning
from keyrelease.services import background, build_services
from keyrelease.web.sign_in import SessionCookies, SignInEndpoints

log = logging.getLogger("keyrelease")
#: The OAuth endpoints' prefix: a request under it that gets a 503 gets it in RFC 6749's shape.
OAUTH_PREFIX = "/ids/"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    migrate: bool = False,
) -> Starlette:
    """Build the service. Settings are validated and the services built here (the mail
    transport, the signing keys), so a bad configuration fails before anything listens.
    The services are ``app.state.services``."""
    settings = settings or Settings.from_env()
    services = build_services(settings, clock)
    oauth = OAuthEndpoints(
        services.clients,
        services.issuer,  # signing keys are read once, here
        limiter=services.limiter,
        trusted_proxies=settings.trusted_proxies,
    )
    cookies = SessionCookies(services.sessions, settings.public_url, sign_in_seconds=settings.sso_request_ttl_seconds)
    schema = build_schema(
        introspection=settings.graphql_introspection,
        max_depth=settings.graphql_max_depth,
        max_tokens=settings.graphql_max_tokens,
        max_cost=settings.graphql_max_cost,
    )
    graphql_app: ASGIApp = BodyLimit(
        GraphQLView(
            schema,
            keys=services.keys,
            clock=services.clock,
            limiter=services.limiter,
            trusted_proxies=settings.trusted_proxies,
            api_tokens=services.api_tokens,
            graphiql=settings.graphiql,
            max_unauthenticated_bytes=settings.graphql_max_unauthenticated_bytes,
            expiry_notices=services.notices.thresholds,
            session_cookies=cookies,
        ),
        settings.max_body_bytes,
    )
    secret_scanning = []
    if settings.secret_scanning_keys is not None:  # served only when GitHub's keys are configured
        scanning = GitHubSecretScanning(
            keys=settings.secret_scanning_keys,
            leaks=services.leaks,
            limiter=services.limiter,
            max_body_bytes=settings.secret_scanning_max_body_bytes,
            trusted_proxies=settings.trusted_proxies,
        )
        secret_scanning.append(Route("/secret-scanning/github", scanning.handle, methods=["POST"]))
    graphql_methods = ["GET", "POST"]
    if settings.cors_origins:
        graphql_app = AllowlistCORS(graphql_app, settings.cors_origins)
        graphql_methods.append("OPTIONS")  # the preflight

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await db.apply_migrations(settings.database_url)
        config = db.tortoise_config(settings.database_url, settings.database_pool)
        async with RegisterTortoise(app, config=config, _enable_global_fallback=True):
            await _open_connection()
            fastpath.open_reader()
            try:
                async with background(services, upkeep=True, delivery=settings.dispatcher_enabled):
                    yield
            finally:
                fastpath.close_reader()
                await services.transport.close()

    token_endpoint = TokenEndpoint(oauth)
    graphql_endpoint = web.no_store(graphql_app)
    app = hot_paths.App(
        hot={  # answered before the middleware stack and the router (keyrelease.hot_paths)
            ("POST", "/ids/auth/login"): RequestContext(token_endpoint, settings.request_timeout_seconds, _unavailable_body),
            ("GET", "/healthz"): RequestContext(hot_paths.healthz, None, _unavailable_body),
            # The GraphQL endpoint can raise (a request that fails unexpectedly): in the
            # outermost of Starlette's middlewares, which answers such a failure with its 500,
            # as it does on the usual way. What it skips is the exception middleware (nothing
            # here raises an HTTPException) and the router.
            ("POST", "/graphql"): ServerErrorMiddleware(
                RequestContext(graphql_endpoint, settings.request_timeout_seconds, _unavailable_body)
            ),
        },
        routes=[  # the busiest first: the router tries them in order
            Route("/ids/auth/login", token_endpoint, methods=["POST"]),
            Route("/graphql", graphql_endpoint, methods=graphql_methods),
            Route("/.well-known/jwks.json", oauth.jwks, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *secret_scanning,
            *SignInEndpoints(
                services.sign_in, cookies, limiter=services.limiter, trusted_proxies=settings.trusted_proxies
            ).routes(),  # the console's sign-in with an identity provider
            *web.routes(graphiql=settings.graphiql),  # the admin console at /, the partner page at /partner
        ],
        middleware=[
            Middleware(RequestContext, seconds=settings.request_timeout_seconds, unavailable=_unavailable_body),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    return app


def _unavailable_body(scope: Scope) -> object:
    """The body of a 503 past the request deadline: RFC 6749's error for the OAuth endpoints,
    a GraphQL error everywhere else."""
    if str(scope.get("path", "")).startswith(OAUTH_PREFIX):
        return oauth_endpoints.UNAVAILABLE_BODY
    return graphql_errors.UNAVAILABLE_BODY


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics, with the outbox depth read now
    (one indexed count). The metrics stay available when the database is not."""
    try:
        rows = await asyncio.wait_for(
            OutboxMessage.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING])
            .group_by("status")
            .annotate(n=Count("id"))
            .values_list("status", "n"),
            2,
        )
        metrics.set_outbox_depth({str(getattr(status, "value", status)): n for status, n in rows})
    except Exception as err:  # noqa: BLE001
        log.warning("metrics: outbox depth unavailable (%s)", type(err).__name__)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


async def _open_connection() -> None:
    """Open the database connection before any background task needs it, so a shutdown
    racing the first connection attempt cannot leave it half-open. A database that is down
    does not stop start-up: requests get 503 until it returns."""
    try:
        await asyncio.wait_for(fastpath.ping(), 5)
    except Exception as err:  # noqa: BLE001
        log.warning("database not reachable at start-up (%s); serving 503 until it is", type(err).__name__)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and every shipped migration has been applied."""
    try:
        pending = await asyncio.wait_for(db.pending_migrations(), 2)
    except Exception as err:  # noqa: BLE001 - any failure means not ready
        log.warning("readiness check failed: %s", type(err).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if pending:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migrations": f"{len(pending)} pending; run keyrelease migrate"},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migrations": "current"})
