"""``keyrelease worker``: the mail dispatcher and the window-lock sweep, without HTTP.

Run it beside ``keyrelease serve`` instances started with ``KEYRELEASE_DISPATCHER=false``, or
several of it: outbox claims and lock records are conditional updates, safe in parallel.
SIGTERM or SIGINT stops it after the message in hand.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from keyrelease import db
from keyrelease.clock import Clock, SystemClock
from keyrelease.config import Settings
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.service.keys import KeyService

log = logging.getLogger("keyrelease.worker")
SWEEP_SECONDS = 15


async def sweep_window_locks(keys: KeyService, every: float = SWEEP_SECONDS) -> None:
    """Record LOCKED for keys whose window closed with nobody looking. Status is derived from
    timestamps, so correctness never waits for this; it keeps the event history complete."""
    while True:
        try:
            recorded = await keys.record_window_locks()
            if recorded:
                log.info("recorded %d window lock(s)", recorded)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("window-lock sweep failed")
        await asyncio.sleep(every)


async def run_worker(settings: Settings, *, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    transport = TransportRegistry(settings.plugins).create(settings.mail_transport, settings.environ)
    dispatcher = Dispatcher.from_settings(settings, transport, clock)
    keys = KeyService(
        server_secret=settings.secret_key, policy=settings.policy, clock=clock, region=settings.region
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with db.connected(settings.database_url, settings.database_pool):
            log.info("worker started (transport %s)", transport.name)
            tasks = [
                asyncio.create_task(dispatcher.run_forever(), name="keyrelease-dispatcher"),
                asyncio.create_task(sweep_window_locks(keys), name="keyrelease-sweeper"),
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await transport.close()
    log.info("worker stopped")
