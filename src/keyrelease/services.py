"""The composition root: every service built once from the settings, and the background loops.

``create_app`` (``keyrelease serve``) and ``keyrelease worker`` both call :func:`build_services`
and run their loops with :func:`background`; nothing else constructs a transport, a dispatcher
or a service. What a route or the GraphQL view needs is handed to it explicitly from the one
:class:`Services` object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property

from keyrelease.clock import Clock, SystemClock
from keyrelease.config import Settings
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.mail.transport import Transport
from keyrelease.oauth.signing_keys import load_key_ring
from keyrelease.oauth.tokens import TokenIssuer
from keyrelease.oidc import OpenIDConnectClient
from keyrelease.service.api_tokens import ApiTokens
from keyrelease.service.clients import ClientAuthenticator, LastUseRecorder
from keyrelease.service.keys import KeyService
from keyrelease.service.leaks import LeakService
from keyrelease.service.notices import ExpiryNoticeService
from keyrelease.service.passkeys import RelyingParty
from keyrelease.service.ratelimit import DatabaseCounterStore, MemoryCounterStore, RateLimiter
from keyrelease.service.rotation import RotationPolicy
from keyrelease.service.sessions import SessionService
from keyrelease.service.sso import SignIn

log = logging.getLogger("keyrelease")
sweep_log = logging.getLogger("keyrelease.worker")  # the sweep's records keep the name they always had
#: How often counters of ended rate-limit windows, and budget entries no window counts, are deleted.
PRUNE_SECONDS = 60
#: How often keys whose window closed with nobody looking get their LOCKED event recorded.
SWEEP_SECONDS = 15
#: How often due expiry notices are sent: each goes out within a minute of its threshold.
NOTICE_SECONDS = 30
#: Where the identity provider sends the browser back (the redirect URI registered there: docs/sso.md).
SIGN_IN_CALLBACK = "/sso/callback"


@dataclass(frozen=True)
class Services:
    """Everything the routes, the GraphQL view and the worker use, built once."""

    settings: Settings
    clock: Clock
    transport: Transport
    dispatcher: Dispatcher
    keys: KeyService
    leaks: LeakService
    notices: ExpiryNoticeService
    limiter: RateLimiter
    last_use: LastUseRecorder
    clients: ClientAuthenticator
    #: Console sessions, and the sign-in with an institution's identity provider that opens them.
    sessions: SessionService
    sign_in: SignIn
    api_tokens: ApiTokens

    @cached_property
    def issuer(self) -> TokenIssuer:
        """The token issuer, its signing keys read on first use. ``create_app`` asks for it at
        once, so a bad key file stops start-up; ``keyrelease worker`` signs nothing and never
        reads (or, in development, creates) the key."""
        return TokenIssuer(
            load_key_ring(self.settings.jwt_private_key_file, self.settings.jwt_public_key_files, self.settings.var_dir),
            issuer=self.settings.token_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=self.settings.token_ttl_seconds,
            scope=self.settings.token_scope,
            clock=self.clock,
        )


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Build every service. The mail transport is built here, so a bad configuration fails
    before anything listens or runs."""
    clock = clock or SystemClock()
    transport = TransportRegistry(settings.plugins).create(settings.mail_transport, settings.environ)
    dispatcher = Dispatcher.from_settings(settings, transport, clock)
    last_use = LastUseRecorder(flush_seconds=settings.last_used_flush_seconds)
    store = MemoryCounterStore() if settings.rate_limits_in_memory else DatabaseCounterStore()
    keys = KeyService(
        server_secret=settings.secret_key,
        policy=settings.policy,
        clock=clock,
        region=settings.region,
        on_mail_queued=dispatcher.wake,
        rotation_policy=RotationPolicy(settings.rotation_grace_seconds, settings.rotation_max_overlap_seconds),
        relying_party=RelyingParty.of_url(settings.public_url),
    )
    sessions = SessionService(clock, settings.session_idle_seconds, settings.session_lifetime_seconds)
    sign_in = SignIn(
        clock=clock,
        server_secret=settings.secret_key,
        redirect_uri=settings.public_url + SIGN_IN_CALLBACK,
        client=OpenIDConnectClient(clock, timeout=settings.sso_timeout_seconds, discovery_ttl=settings.sso_discovery_ttl_seconds),
        sessions=sessions,
        request_ttl_seconds=settings.sso_request_ttl_seconds,
    )
    return Services(
        settings=settings,
        clock=clock,
        transport=transport,
        dispatcher=dispatcher,
        keys=keys,
        leaks=LeakService(clock=clock, on_mail_queued=dispatcher.wake),
        notices=ExpiryNoticeService(thresholds=settings.expiry_notices, clock=clock, on_mail_queued=dispatcher.wake),
        limiter=RateLimiter(settings.rate_limits, store, clock),
        last_use=last_use,
        clients=ClientAuthenticator(clock=clock, last_use=last_use, rotations=keys.rotations),
        sessions=sessions,
        sign_in=sign_in,
        api_tokens=ApiTokens(clock=clock, last_use=last_use, max_lifetime_days=settings.api_token_max_lifetime_days),
    )


@contextlib.asynccontextmanager
async def background(services: Services, *, upkeep: bool, delivery: bool) -> AsyncIterator[None]:
    """Run the background loops for the duration of the block, then stop them.

    ``upkeep``, what serving requests leaves behind: the last-use flush (and one more on the
    way out), the pruning of rate-limit counters and of budget entries. ``delivery``: the mail
    dispatcher, the window-lock sweep, the expiry notices and the pass that finishes rotations
    whose overlap ended (dropping the old secret's hash; it already stopped working by the
    timestamps), which ``serve`` runs unless
    ``KEYRELEASE_DISPATCHER=false`` and ``keyrelease worker`` always runs.
    """
    keys = services.keys
    tasks: list[asyncio.Task[None]] = []
    if upkeep:
        tasks += [
            asyncio.create_task(services.last_use.run_forever(), name="keyrelease-last-use"),
            asyncio.create_task(
                _every(PRUNE_SECONDS, "rate-limit", services.limiter.prune), name="keyrelease-rate-limit-prune"
            ),
            asyncio.create_task(
                _every(PRUNE_SECONDS, "budget", lambda: keys.budget.prune(keys.clock.now())),
                name="keyrelease-budget-prune",
            ),
        ]
    if delivery:
        tasks += [
            asyncio.create_task(services.dispatcher.run_forever(), name="keyrelease-dispatcher"),
            asyncio.create_task(sweep_window_locks(keys), name="keyrelease-sweeper"),
            asyncio.create_task(send_expiry_notices(services.notices), name="keyrelease-expiry-notices"),
            asyncio.create_task(_every(SWEEP_SECONDS, "rotation", keys.rotations.finish_due), name="keyrelease-rotations"),
        ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if upkeep:
            await _final_flush(services.last_use)


async def sweep_window_locks(keys: KeyService, every: float = SWEEP_SECONDS) -> None:
    """Record LOCKED for keys whose window closed with nobody looking. Status is derived from
    timestamps, so correctness never waits for this; it keeps the event history complete."""
    await _passes(every, keys.record_window_locks, "recorded %d window lock(s)", "window-lock sweep failed")


async def send_expiry_notices(notices: ExpiryNoticeService, every: float = NOTICE_SECONDS) -> None:
    """Send the expiry notices that are due, now and every ``every`` seconds. Every pass is safe
    in any number of processes at once: each notice is decided by the database, once."""
    await _passes(every, notices.send_due, "sent %d expiry notice(s)", "expiry-notice pass failed")


async def _passes(every: float, run: Callable[[], Awaitable[int]], done: str, failed: str) -> None:
    """``run`` now and every ``every`` seconds; its count logged as ``done``, a failure as
    ``failed`` (with the traceback), and the next pass tries again."""
    while True:
        try:
            count = await run()
            if count:
                sweep_log.info(done, count)
        except asyncio.CancelledError:
            raise
        except Exception:
            sweep_log.exception(failed)
        await asyncio.sleep(every)


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


async def _final_flush(last_use: LastUseRecorder) -> None:
    try:
        await last_use.flush()
    except Exception:
        log.exception("last-use flush on shutdown failed")
