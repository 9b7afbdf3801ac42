"""``keyrelease worker``: the mail dispatcher and the window-lock sweep, without HTTP.

Run it beside ``keyrelease serve`` instances started with ``KEYRELEASE_DISPATCHER=false``, or
several of it: outbox claims and lock records are conditional updates, safe in parallel.
SIGTERM or SIGINT stops it after the message in hand. The services and the loops are the
ones ``serve`` runs (:mod:`keyrelease.services`).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from keyrelease import db
from keyrelease.clock import Clock
from keyrelease.config import Settings
from keyrelease.services import background, build_services

log = logging.getLogger("keyrelease.worker")


async def run_worker(settings: Settings, *, clock: Clock | None = None) -> None:
    services = build_services(settings, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with db.connected(settings.database_url, settings.database_pool):
            log.info("worker started (transport %s)", services.transport.name)
            async with background(services, upkeep=False, delivery=True):
                await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await services.transport.close()
    log.info("worker stopped")
