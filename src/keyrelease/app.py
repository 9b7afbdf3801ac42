"""The Starlette application: routes, start-up and shutdown. Thin: the work is in services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tortoise.contrib.starlette import RegisterTortoise
from tortoise.functions import Count

from keyrelease import db, metrics, web
from keyrelease.body_limit import BodyLimit
from keyrelease.clock import Clock, SystemClock
from keyrelease.config import Settings
from keyrelease.cors import AllowlistCORS
from keyrelease.db import fastpath
from keyrelease.deadline import RequestDeadline
from keyrelease.graphql.schema import build_schema
from keyrelease.graphql.view import GraphQLView
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.mail.transport import Transport
from keyrelease.models import DeliveryStatus, OutboxMessage
from keyrelease.oauth.endpoints import OAuthEndpoints, TokenEndpoint
from keyrelease.oauth.signing_keys import load_key_ring
from keyrelease.oauth.tokens import TokenIssuer
from keyrelease.request_id import RequestId
from keyrelease.secret_scanning.github import GitHubSecretScanning
from keyrelease.service.clients import ClientAuthenticator, LastUseRecorder
from keyrelease.service.keys import KeyService
from keyrelease.service.leaks import LeakService
from keyrelease.service.ratelimit import DatabaseCounterStore, MemoryCounterStore, RateLimiter
from keyrelease.worker import sweep_window_locks

log = logging.getLogger("keyrelease")
#: How often counters of ended rate-limit windows are deleted.
PRUNE_SECONDS = 60


@dataclass
class Mail:
    transport: Transport
    dispatcher: Dispatcher


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    migrate: bool = False,
) -> Starlette:
    """Build the service. Settings are validated and the mail transport is built here, so a
    bad configuration fails before anything listens."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    transport = TransportRegistry(settings.plugins).create(settings.mail_transport, settings.environ)
    dispatcher = Dispatcher.from_settings(settings, transport, clock)
    keys = KeyService(
        server_secret=settings.secret_key,
        policy=settings.policy,
        clock=clock,
        region=settings.region,
        on_mail_queued=dispatcher.wake,
    )
    schema = build_schema(
        introspection=settings.graphql_introspection,
        max_depth=settings.graphql_max_depth,
        max_tokens=settings.graphql_max_tokens,
        max_cost=settings.graphql_max_cost,
    )
    last_use = LastUseRecorder(flush_seconds=settings.last_used_flush_seconds)
    store = MemoryCounterStore() if settings.rate_limits_in_memory else DatabaseCounterStore()
    limiter = RateLimiter(settings.rate_limits, store, clock)
    oauth = OAuthEndpoints(
        ClientAuthenticator(clock=clock, last_use=last_use),
        TokenIssuer(
            load_key_ring(settings),  # signing keys are read once, here
            issuer=settings.token_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.token_ttl_seconds,
            scope=settings.token_scope,
            clock=clock,
        ),
        limiter=limiter,
        trusted_proxies=settings.trusted_proxies,
    )
    graphql_app: ASGIApp = BodyLimit(
        GraphQLView(
            schema,
            keys=keys,
            clock=clock,
            graphiql=settings.graphiql,
            max_unauthenticated_bytes=settings.graphql_max_unauthenticated_bytes,
        ),
        settings.max_body_bytes,
    )
    leaks = LeakService(clock=clock, on_mail_queued=dispatcher.wake)
    secret_scanning = []
    if settings.secret_scanning_keys is not None:  # served only when GitHub's keys are configured
        scanning = GitHubSecretScanning(
            keys=settings.secret_scanning_keys,
            leaks=leaks,
            limiter=limiter,
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
            tasks = [
                asyncio.create_task(last_use.run_forever(), name="keyrelease-last-use"),
                asyncio.create_task(_every(PRUNE_SECONDS, "rate-limit", limiter.prune), name="keyrelease-rate-limit-prune"),
                # admin budget entries no window counts any more
                asyncio.create_task(
                    _every(PRUNE_SECONDS, "budget", lambda: keys.budget.prune(keys.clock.now())),
                    name="keyrelease-budget-prune",
                ),
            ]
            if settings.dispatcher_enabled:
                tasks.append(asyncio.create_task(dispatcher.run_forever(), name="keyrelease-dispatcher"))
                tasks.append(asyncio.create_task(sweep_window_locks(keys), name="keyrelease-sweeper"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                fastpath.close_reader()
                await _final_flush(last_use)
                await transport.close()

    app = Starlette(
        routes=[  # the busiest first: the router tries them in order
            Route("/ids/auth/login", TokenEndpoint(oauth), methods=["POST"]),
            Route("/graphql", web.no_store(graphql_app), methods=graphql_methods),
            Route("/.well-known/jwks.json", oauth.jwks, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *secret_scanning,
            *web.routes(graphiql=settings.graphiql),  # the admin console at /, the partner page at /partner
        ],
        middleware=[
            Middleware(RequestId),
            Middleware(RequestDeadline, seconds=settings.request_timeout_seconds),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.keys = keys
    app.state.leaks = leaks
    app.state.mail = Mail(transport=transport, dispatcher=dispatcher)
    app.state.oauth = oauth
    app.state.last_use = last_use
    app.state.rate_limiter = limiter
    return app


async def _final_flush(last_use: LastUseRecorder) -> None:
    try:
        await last_use.flush()
    except Exception:
        log.exception("last-use flush on shutdown failed")


async def _every(seconds: float, what: str, prune: Callable[[], Awaitable[object]]) -> None:
    """Run ``prune`` now and every ``seconds``; a failure is a warning, the next pass tries again."""
    while True:
        try:
            await prune()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the next pass tries again
            log.warning("%s prune failed (%s)", what, type(err).__name__)
        await asyncio.sleep(seconds)


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
