"""The Starlette application: routes, start-up and shutdown. Thin: the work is in services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tortoise import connections
from tortoise.contrib.starlette import RegisterTortoise

from keyrelease import db
from keyrelease.body_limit import BodyLimit
from keyrelease.clock import Clock, SystemClock
from keyrelease.config import Settings
from keyrelease.graphql.schema import build_schema
from keyrelease.graphql.view import GraphQLView
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.mail.render import MailRenderer
from keyrelease.mail.transport import Transport
from keyrelease.service.keys import KeyService

log = logging.getLogger("keyrelease")
SWEEP_SECONDS = 15


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
    renderer = MailRenderer(
        server_secret=settings.secret_key, mail_from=settings.mail_from, public_url=settings.public_url
    )
    dispatcher = Dispatcher(transport, renderer, clock)
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
    )
    graphql_app = BodyLimit(GraphQLView(schema, keys=keys, clock=clock), settings.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await db.apply_migrations(settings.database_url)
        async with RegisterTortoise(app, config=db.tortoise_config(settings.database_url), _enable_global_fallback=True):
            tasks = []
            if settings.dispatcher_enabled:
                tasks.append(asyncio.create_task(dispatcher.run_forever(), name="keyrelease-dispatcher"))
                tasks.append(asyncio.create_task(_sweep(keys), name="keyrelease-sweeper"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await transport.close()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.keys = keys
    app.state.mail = Mail(transport=transport, dispatcher=dispatcher)
    return app


async def _sweep(keys: KeyService) -> None:
    """Record LOCKED for keys whose window closed with nobody looking. Status is derived from
    timestamps, so correctness never waits for this; it keeps the event history complete."""
    while True:
        try:
            await keys.record_window_locks()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("window-lock sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), 2)
    except Exception as err:  # noqa: BLE001 - any failure means not ready
        log.warning("readiness check failed: %s", type(err).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
