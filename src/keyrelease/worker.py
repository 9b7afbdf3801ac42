"""``keyrelease worker``: the mail dispatcher and the window-lock sweep, without HTTP."""

from __future__ import annotations

import asyncio
import logging
import signal

from keyrelease import db
from keyrelease.clock import SystemClock
from keyrelease.config import Settings
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.mail.render import MailRenderer

log = logging.getLogger("keyrelease.worker")


async def run_worker(settings: Settings) -> None:
    clock = SystemClock()
    transport = TransportRegistry(settings.plugins).create(settings.mail_transport, settings.environ)
    renderer = MailRenderer(server_secret=settings.secret_key, mail_from=settings.mail_from, public_url=settings.public_url)
    dispatcher = Dispatcher(transport, renderer, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with db.connected(settings.database_url):
        log.info("worker started (transport %s)", transport.name)
        task = asyncio.create_task(dispatcher.run_forever())
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.close()
    log.info("worker stopped")
