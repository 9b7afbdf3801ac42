"""The outbox dispatcher: prompt delivery, retries with backoff, dead letters, expiry, leases,
parallel dispatchers, and what rests in the table.

Mail is queued through the real service (GraphQL over HTTP, real database); the app's own
dispatcher is switched off so each test drives a :class:`Dispatcher` itself, calling
``run_once()`` and moving the frozen clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import dbutil
import pytest
from mailservers import sendgrid_server
from starlette.responses import Response
from tortoise.exceptions import OperationalError

from keyrelease.app import create_app
from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.dispatcher import Dispatcher
from keyrelease.mail.render import MailRenderer
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport
from keyrelease.models import Admin, DeliveryStatus, KeyKind, OutboxMessage
from keyrelease.service.keys import KeyService
from keyrelease.testing.api import running_app
from keyrelease.testing.mail import MemoryTransport
from keyrelease_plugins.sendgrid import MESSAGE_ID_ARG, SendgridTransport

CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)
OTP_LINE = re.compile(r"^One-time password: ([A-Z2-7-]+)$", re.MULTILINE)
PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}
LAST_DELIVERY = """
query($id: ID!) { key(id: $id) { lastDelivery { status attempts at sentAt nextAttemptAt lastError } } }"""


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_DISPATCHER": "false"}


class FlakyTransport(Transport):
    """A transport that fails its first ``failures`` sends with ``error``, then accepts.

    It records every attempt, failed or not, so tests can see what was tried and what went
    out. It yields to the event loop inside each send, as a network call would, so parallel
    dispatchers really interleave.
    """

    name = "flaky"

    def __init__(self, failures: int = 0, error: DeliveryError | None = None) -> None:
        self.failures = failures
        self.error = error or TransientDeliveryError("421 4.3.2 service not available, try later")
        self.attempts: list[EmailMessage] = []
        self.delivered: list[EmailMessage] = []

    @classmethod
    def from_env(cls, env: Any) -> FlakyTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        self.attempts.append(message)
        for _ in range(3):
            await asyncio.sleep(0)
        if len(self.attempts) <= self.failures:
            raise self.error
        self.delivered.append(message)
        return DeliveryResult(transport=self.name, provider_message_id=f"flaky-{len(self.delivered)}")


class GatedTransport(Transport):
    """Holds each send until the test opens the gate; says when a send has started."""

    name = "gated"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.delivered: list[EmailMessage] = []

    @classmethod
    def from_env(cls, env: Any) -> GatedTransport:
        return cls()

    async def send(self, message: EmailMessage) -> DeliveryResult:
        self.started.set()
        await self.gate.wait()
        self.delivered.append(message)
        return DeliveryResult(transport=self.name)


@pytest.fixture
def dispatcher_for(settings: Settings, clock: FrozenClock) -> Callable[..., Dispatcher]:
    """A Dispatcher over the test database with the given transport and options."""

    def make(transport: Transport, **options: Any) -> Dispatcher:
        renderer = MailRenderer(
            server_secret=settings.secret_key,
            mail_from=settings.mail_from,
            public_url=settings.public_url,
            templates=settings.mail_templates,
        )
        return Dispatcher(transport, renderer, clock, **options)

    return make


async def outbox_row(key_id: str, **filters: Any) -> OutboxMessage:
    [row] = await OutboxMessage.filter(key_id=key_id, **filters)
    return row


async def until_due(row: OutboxMessage, clock: FrozenClock) -> None:
    """Move the clock to the moment ``row`` is due again."""
    clock.advance((row.next_attempt_at - clock.now()).total_seconds())


def code_in(message: EmailMessage) -> str:
    match = CODE_LINE.search(message.text)
    assert match, message.text
    return match.group(1)


def otp_in(message: EmailMessage) -> str:
    match = OTP_LINE.search(message.text)
    assert match, message.text
    return match.group(1)


# --- going out promptly ----------------------------------------------------------------------


#: How long a test waits for what must happen long before any poll would: a guard against a
#: hang, not a speed requirement (the polls in these tests are an hour apart).
HANG_GUARD = 60.0


class TestInProcessDispatcher:
    @pytest.fixture
    def env_overrides(self) -> dict[str, str]:
        return {}  # the app's own dispatcher runs, as in `keyrelease serve`

    async def test_the_apps_dispatcher_is_woken_by_new_mail_rather_than_by_its_poll(self, settings, clock):
        application = create_app(settings, clock=clock)
        dispatcher = application.state.services.dispatcher
        dispatcher.poll_seconds = 3600  # once idle, only a wake-up makes it look again
        passes: list[int] = []
        pass_done = asyncio.Condition()
        run_once = dispatcher.run_once

        async def observed_run_once() -> int:
            handled = await run_once()
            async with pass_done:
                passes.append(handled)
                pass_done.notify_all()
            return handled

        dispatcher.run_once = observed_run_once
        async with running_app(settings, clock, application) as api:
            ada = await api.admin()
            async with pass_done:  # its first pass, at start-up, found nothing: idle now
                await asyncio.wait_for(pass_done.wait_for(lambda: passes == [0]), HANG_GUARD)
            await api.create_key(ada)
            [mail] = await api.mailbox.wait_for(lambda m: m.to == ada.email, timeout=HANG_GUARD)
            async with pass_done:  # the second pass, an hour before the poll, delivered it
                await asyncio.wait_for(pass_done.wait_for(lambda: len(passes) == 2), HANG_GUARD)
        assert passes == [0, 1]
        assert "Verification code" in mail.text


class ObservedDispatcher(Dispatcher):
    """Says when it has finished a pass over the outbox (and so is about to go idle)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed = asyncio.Event()

    async def run_once(self) -> int:
        handled = await super().run_once()
        self.passed.set()
        return handled


async def test_queueing_mail_wakes_the_dispatcher_rather_than_waiting_for_its_poll(api, settings, clock, dispatcher_for):
    transport = MemoryTransport()
    renderer = dispatcher_for(transport).renderer
    dispatcher = ObservedDispatcher(transport, renderer, clock, poll_seconds=3600)
    keys = KeyService(
        server_secret=settings.secret_key,
        policy=settings.policy,
        clock=clock,
        region=settings.region,
        on_mail_queued=dispatcher.wake,  # as app.py wires it
    )
    ada = await api.admin()
    running = asyncio.create_task(dispatcher.run_forever())
    try:
        await asyncio.wait_for(dispatcher.passed.wait(), 5)  # its first pass found nothing: idle now
        await keys.create_key(await Admin.get(email=ada.email), name="Woken", kind=KeyKind.INSTITUTIONAL)
        [mail] = await transport.wait_for(timeout=HANG_GUARD)  # an hour before its next poll
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert "“Woken”" in mail.subject


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_DISPATCHER": "false"}])  # ours is the only one
async def test_a_full_batch_is_followed_at_once_by_the_next_not_by_the_poll(api, clock, dispatcher_for, env_overrides):
    transport = MemoryTransport()
    dispatcher = ObservedDispatcher(transport, dispatcher_for(transport).renderer, clock, poll_seconds=3600, batch=2)
    ada = await api.admin()
    for n in range(5):
        await api.create_key(ada, name=f"Batch {n}")
    running = asyncio.create_task(dispatcher.run_forever())
    try:
        mails = await transport.wait_for(count=5, timeout=HANG_GUARD)  # 2 + 2 + 1, an hour before the next poll
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert sorted(m.subject for m in mails) == sorted({m.subject for m in mails})  # five distinct mails
    assert await OutboxMessage.filter(status=DeliveryStatus.SENT).count() == 5


# --- retries ---------------------------------------------------------------------------------


async def test_a_transient_failure_is_retried_first_within_five_seconds_then_backs_off(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=3)
    dispatcher = dispatcher_for(transport, first_retry_seconds=2, max_retry_seconds=300)

    delays = []
    for attempt in (1, 2, 3):
        assert await dispatcher.run_once() == 1
        row = await outbox_row(key["id"])
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, attempt)
        assert row.last_error == "transient: 421 4.3.2 service not available, try later"
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        assert await dispatcher.run_once() == 0  # not due yet: nothing is tried early
        await until_due(row, clock)
    assert await dispatcher.run_once() == 1

    assert 1 <= delays[0] <= 2 < 5  # the first retry comes within 5 seconds
    assert 2 <= delays[1] <= 4
    assert 4 <= delays[2] <= 8
    row = await outbox_row(key["id"])
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.SENT, 4, None)
    assert row.sent_at == clock.now()
    assert row.provider_message_id == "flaky-1"
    assert len(transport.attempts) == 4 and len(transport.delivered) == 1


def test_backoff_doubles_with_jitter_up_to_the_cap(dispatcher_for):
    dispatcher = dispatcher_for(FlakyTransport(), first_retry_seconds=2, max_retry_seconds=300)

    for attempts in range(1, 40):
        ceiling = min(300, 2 * 2 ** (attempts - 1))
        delays = {dispatcher.retry_delay(attempts) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered: dispatchers that failed together spread out
    assert max(dispatcher.retry_delay(30) for _ in range(50)) <= 300


async def test_retries_keep_the_message_id_and_never_use_up_the_admins_resends(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=2)
    dispatcher = dispatcher_for(transport)

    for _ in range(3):
        await dispatcher.run_once()
        await until_due(await outbox_row(key["id"]), clock)

    row = await outbox_row(key["id"])
    assert row.status is DeliveryStatus.SENT
    assert {m.message_id for m in transport.attempts} == {f"{row.id}@keyrelease.localhost"}
    assert {m.headers["X-Keyrelease-Message-Id"] for m in transport.attempts} == {f"{row.id}@keyrelease.localhost"}
    assert len({code_in(m) for m in transport.attempts}) == 1  # the same code every time
    seen = await api.key(ada, key["id"])
    assert seen["resendsRemaining"] == 3
    assert [e["type"] for e in seen["events"]] == ["CREATED", "CODE_SENT"]
    verified = await api.verify(ada, key["id"], code_in(transport.delivered[0]))
    assert verified["status"] == "ACTIVE"


async def test_retry_after_from_the_provider_is_honoured(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=1, error=TransientDeliveryError("429 slow down", retry_after=120))
    dispatcher = dispatcher_for(transport)

    await dispatcher.run_once()

    row = await outbox_row(key["id"])
    assert row.next_attempt_at == clock.now() + timedelta(seconds=120)
    clock.advance(119)
    assert await dispatcher.run_once() == 0
    clock.advance(1)
    assert await dispatcher.run_once() == 1
    assert (await outbox_row(key["id"])).status is DeliveryStatus.SENT


async def test_sendgrid_429_is_retried_after_retry_after_with_the_same_custom_arg(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    async with sendgrid_server() as sendgrid:
        sendgrid.script.append(Response(status_code=429, headers={"Retry-After": "30"}))
        transport = SendgridTransport.from_env(sendgrid.env())
        dispatcher = dispatcher_for(transport)
        try:
            await dispatcher.run_once()
            row = await outbox_row(key["id"])
            assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
            assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
            assert row.last_error.startswith("transient: SendGrid answered 429")
            clock.advance(30)
            await dispatcher.run_once()
        finally:
            await transport.close()

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.SENT, 2)
    assert row.provider_message_id == sendgrid.message_id
    first, second = sendgrid.requests
    expected = f"{row.id}@keyrelease.localhost"
    for request in (first, second):
        assert request.json["custom_args"] == {MESSAGE_ID_ARG: expected}
        assert request.json["personalizations"][0]["custom_args"] == {MESSAGE_ID_ARG: expected}
        assert request.json["headers"]["X-Keyrelease-Message-Id"] == expected


# --- giving up -------------------------------------------------------------------------------


async def test_after_the_last_attempt_the_message_fails_with_its_reason_kept(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=100)
    dispatcher = dispatcher_for(transport, max_attempts=3, first_retry_seconds=1, max_retry_seconds=2)

    for _ in range(3):
        await dispatcher.run_once()
        row = await outbox_row(key["id"])
        if row.status is DeliveryStatus.PENDING:
            await until_due(row, clock)

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 3)
    assert row.last_error == "transient: 421 4.3.2 service not available, try later"
    clock.advance(3600)
    assert await dispatcher.run_once() == 0
    assert len(transport.attempts) == 3
    delivery = (await api.data(LAST_DELIVERY, {"id": key["id"]}, ada.token))["key"]["lastDelivery"]
    assert delivery["status"] == "FAILED" and delivery["attempts"] == 3
    assert delivery["lastError"] == row.last_error


async def test_a_permanent_error_fails_at_once(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=1, error=PermanentDeliveryError("550 5.1.1 <ada@uni.example>: no such user"))
    dispatcher = dispatcher_for(transport)

    await dispatcher.run_once()
    clock.advance(3600)
    await dispatcher.run_once()

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 1)
    assert row.last_error == "permanent: 550 5.1.1 <ada@uni.example>: no such user"
    assert len(transport.attempts) == 1


async def test_a_recipient_with_a_nul_fails_for_good_without_reaching_the_transport(
    api, clock, dispatcher_for, settings
):
    """A row queued before inputs were checked (or by a bug) cannot smuggle a NUL into a header.
    (On PostgreSQL such a row cannot even be written: its text cannot hold a NUL.)"""
    ada = await api.admin()
    key = await api.create_key(ada)
    if not settings.database_url.startswith("sqlite://"):
        with pytest.raises(OperationalError, match="0x00"):
            await OutboxMessage.filter(key_id=key["id"]).update(recipient="a\x00b@uni.example")
        return
    await OutboxMessage.filter(key_id=key["id"]).update(recipient="a\x00b@uni.example")
    transport = FlakyTransport()

    await dispatcher_for(transport).run_once()

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 1)
    assert row.last_error == "permanent: header 'To' contains a line break or NUL; not sent"
    assert transport.attempts == []


async def test_a_code_that_expired_before_it_could_be_sent_is_not_sent(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport()
    clock.advance(300)  # the code's five minutes are over before any dispatcher ran

    assert await dispatcher_for(transport).run_once() == 1

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.EXPIRED, 0)
    assert transport.attempts == []
    delivery = (await api.data(LAST_DELIVERY, {"id": key["id"]}, ada.token))["key"]["lastDelivery"]
    assert delivery["status"] == "EXPIRED"


async def test_a_code_that_expires_while_waiting_to_be_retried_is_not_sent(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = FlakyTransport(failures=1, error=TransientDeliveryError("503", retry_after=600))
    dispatcher = dispatcher_for(transport)

    await dispatcher.run_once()
    await until_due(await outbox_row(key["id"]), clock)
    await dispatcher.run_once()

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.EXPIRED, 1)
    assert len(transport.attempts) == 1 and transport.delivered == []


async def test_a_transport_that_hangs_is_cut_off_and_retried(api, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    transport = GatedTransport()  # never opened
    dispatcher = dispatcher_for(transport, lease_seconds=0.2)  # sends are bounded by half the lease

    await dispatcher.run_once()

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert row.last_error == "transient: transport gated did not finish within 0.1s"


async def test_a_transport_bug_is_a_transient_failure_not_a_dead_dispatcher(api, dispatcher_for):
    class Broken(FlakyTransport):
        async def send(self, message: EmailMessage) -> DeliveryResult:
            raise KeyError("oops")

    ada = await api.admin()
    key = await api.create_key(ada)

    assert await dispatcher_for(Broken()).run_once() == 1

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.PENDING, 1, "transient: transport flaky raised KeyError")


# --- leases and parallel dispatchers ---------------------------------------------------------


async def test_a_lease_left_by_a_crashed_dispatcher_is_reclaimed_once_it_expires(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    # A dispatcher claimed the message and died mid-send: SENDING, with its lease running.
    await OutboxMessage.filter(key_id=key["id"]).update(
        status=DeliveryStatus.SENDING, lease_until=clock.now() + timedelta(seconds=60)
    )
    transport = FlakyTransport()
    dispatcher = dispatcher_for(transport)

    assert await dispatcher.run_once() == 0  # a live lease is not taken from its holder
    clock.advance(60)
    assert await dispatcher.run_once() == 1

    row = await outbox_row(key["id"])
    assert (row.status, row.attempts, row.lease_until) == (DeliveryStatus.SENT, 1, None)
    assert len(transport.delivered) == 1


async def test_parallel_dispatchers_never_send_a_message_twice(api, dispatcher_for):
    keys = []
    for n in range(2):
        admin = await api.admin(email=f"admin{n}@uni.example")
        for i in range(4):
            keys.append(await api.create_key(admin, name=f"Key {n}-{i}"))
    transport = FlakyTransport()
    dispatchers = [dispatcher_for(transport) for _ in range(4)]

    handled = await asyncio.gather(*(d.run_once() for d in dispatchers))
    handled += await asyncio.gather(*(d.run_once() for d in dispatchers))

    assert sum(handled) == 8
    ids = [m.message_id for m in transport.delivered]
    assert len(ids) == len(set(ids)) == 8
    rows = await OutboxMessage.all()
    assert {(r.status, r.attempts) for r in rows} == {(DeliveryStatus.SENT, 1)}


async def test_stopping_finishes_the_message_in_hand_and_hands_back_the_rest(api, dispatcher_for):
    ada = await api.admin()
    first = await api.create_key(ada, name="First")
    second = await api.create_key(ada, name="Second")
    transport = GatedTransport()
    dispatcher = dispatcher_for(transport)

    running = asyncio.create_task(dispatcher.run_forever())
    await asyncio.wait_for(transport.started.wait(), 5)
    running.cancel()  # the service stops while a send is in flight
    transport.gate.set()
    await asyncio.gather(running, return_exceptions=True)

    rows = {r.key_id: r for r in await OutboxMessage.all()}
    [sent] = [r for r in rows.values() if r.status is DeliveryStatus.SENT]
    [back] = [r for r in rows.values() if r is not sent]
    assert {str(sent.key_id), str(back.key_id)} == {first["id"], second["id"]}
    assert (back.status, back.attempts, back.lease_until) == (DeliveryStatus.PENDING, 0, None)
    assert len(transport.delivered) == 1


# --- what rests in the table -----------------------------------------------------------------


def absent(value: str, text: str) -> bool:
    """``value`` does not occur in ``text`` as a token of its own (a six-digit code may well
    occur inside a random UUID)."""
    return not re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text)


async def test_no_code_or_otp_rests_in_the_outbox_before_or_after_delivery_or_dead_lettering(
    api, settings, clock, dispatcher_for
):
    ada = await api.admin()
    institutional = await api.create_key(ada, name="Institutional")
    partner = await api.create_key(ada, name="Partner", **PARTNER)
    codes = FlakyTransport()
    await dispatcher_for(codes).run_once()
    by_key = {m.subject: code_in(m) for m in codes.delivered}
    await api.verify(ada, institutional["id"], by_key["Your keyrelease verification code for “Institutional”"])
    await api.verify(ada, partner["id"], by_key["Your keyrelease verification code for “Partner”"])
    pending = await dbutil.dump(settings.database_url)
    refused = FlakyTransport(failures=1, error=PermanentDeliveryError("550 5.7.1 refused"))
    await dispatcher_for(refused).run_once()  # the partner's OTP is dead-lettered

    otp = otp_in(refused.attempts[0])
    outbox = await dbutil.query(settings.database_url, "SELECT * FROM outbox_message")
    assert sorted(r["status"] for r in outbox) == ["FAILED", "SENT", "SENT"]
    table = "\n".join(str(row) for row in outbox)
    everything = await dbutil.dump(settings.database_url)
    for secret in [*by_key.values(), otp, otp.replace("-", "")]:
        for text in (pending, table, everything):
            assert absent(secret, text)
    # The payload is references only: what the code is derived from, not the code.
    payloads = [r["payload"] if isinstance(r["payload"], dict) else json.loads(r["payload"]) for r in outbox]
    assert {tuple(sorted(p)) for p in payloads} == {
        ("expires_at", "generation", "key_id", "key_kind", "key_name", "partner_email", "partner_name"),
        ("expires_at", "institution_name", "key_id", "key_name", "partner_name"),
    }


# --- lastDelivery ----------------------------------------------------------------------------


async def test_last_delivery_follows_the_latest_message_of_the_key(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada, **PARTNER)

    async def last() -> dict:
        return (await api.data(LAST_DELIVERY, {"id": key["id"]}, ada.token))["key"]["lastDelivery"]

    queued = await last()
    assert queued == {
        "status": "PENDING",
        "attempts": 0,
        "at": key["createdAt"],
        "sentAt": None,
        "nextAttemptAt": key["createdAt"],
        "lastError": None,
    }
    flaky = FlakyTransport(failures=1)
    dispatcher = dispatcher_for(flaky)
    await dispatcher.run_once()
    retrying = await last()
    assert (retrying["status"], retrying["attempts"]) == ("PENDING", 1)
    assert retrying["lastError"] == "transient: 421 4.3.2 service not available, try later"
    assert datetime.fromisoformat(retrying["nextAttemptAt"]) > datetime.fromisoformat(key["createdAt"])
    await until_due(await outbox_row(key["id"]), clock)
    await dispatcher.run_once()
    sent = await last()
    assert (sent["status"], sent["attempts"], sent["lastError"], sent["nextAttemptAt"]) == ("SENT", 2, None, None)
    assert sent["sentAt"] is not None

    clock.advance(1)
    await api.verify(ada, key["id"], code_in(flaky.delivered[0]))
    otp_mail = await last()  # the partner's one-time password is now the latest message
    assert (otp_mail["status"], otp_mail["attempts"]) == ("PENDING", 0)
    assert datetime.fromisoformat(otp_mail["at"]) > datetime.fromisoformat(key["createdAt"])


async def test_last_delivery_shows_the_providers_complaint_but_no_secret(api, clock, dispatcher_for):
    ada = await api.admin()
    key = await api.create_key(ada)
    async with sendgrid_server() as sendgrid:
        env = {**sendgrid.env(), "KEYRELEASE_SENDGRID_API_KEY": "SG.revoked-key-0123456789"}
        transport = SendgridTransport.from_env(env)
        try:
            await dispatcher_for(transport).run_once()
        finally:
            await transport.close()
    [request] = sendgrid.requests
    code = CODE_LINE.search(next(c["value"] for c in request.json["content"] if c["type"] == "text/plain")).group(1)

    body = await api.gql(LAST_DELIVERY, {"id": key["id"]}, ada.token)

    delivery = body["data"]["key"]["lastDelivery"]
    assert delivery["status"] == "FAILED"
    assert delivery["lastError"].startswith("permanent: SendGrid answered 401")
    assert "SG.revoked-key-0123456789" not in str(body)
    assert absent(code, str(body))


async def test_a_key_with_no_mail_has_no_last_delivery(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    await OutboxMessage.filter(key_id=key["id"]).delete()

    assert (await api.data(LAST_DELIVERY, {"id": key["id"]}, ada.token))["key"]["lastDelivery"] is None


# --- settings --------------------------------------------------------------------------------


def test_the_dispatcher_takes_its_retry_settings_from_the_environment(settings):
    changed = Settings.from_env(
        {
            **settings.environ,
            "KEYRELEASE_MAIL_RETRY_FIRST_SECONDS": "1",
            "KEYRELEASE_MAIL_RETRY_MAX_SECONDS": "4",
            "KEYRELEASE_MAIL_MAX_ATTEMPTS": "3",
        }
    )
    dispatcher = Dispatcher.from_settings(changed, FlakyTransport(), FrozenClock())

    assert dispatcher.max_attempts == 3
    assert all(0.5 <= dispatcher.retry_delay(1) <= 1 for _ in range(20))
    assert all(2 <= dispatcher.retry_delay(9) <= 4 for _ in range(20))


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"KEYRELEASE_MAIL_RETRY_FIRST_SECONDS": "0"}, "KEYRELEASE_MAIL_RETRY_FIRST_SECONDS"),
        ({"KEYRELEASE_MAIL_RETRY_FIRST_SECONDS": "soon"}, "KEYRELEASE_MAIL_RETRY_FIRST_SECONDS"),
        ({"KEYRELEASE_MAIL_RETRY_MAX_SECONDS": "0"}, "KEYRELEASE_MAIL_RETRY_MAX_SECONDS"),
        (
            {"KEYRELEASE_MAIL_RETRY_FIRST_SECONDS": "10", "KEYRELEASE_MAIL_RETRY_MAX_SECONDS": "5"},
            "KEYRELEASE_MAIL_RETRY_MAX_SECONDS",
        ),
        ({"KEYRELEASE_MAIL_MAX_ATTEMPTS": "0"}, "KEYRELEASE_MAIL_MAX_ATTEMPTS"),
        ({"KEYRELEASE_MAIL_MAX_ATTEMPTS": "1000"}, "KEYRELEASE_MAIL_MAX_ATTEMPTS"),
    ],
)
def test_a_bad_retry_setting_fails_at_start_up_naming_the_variable(settings, changes, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**settings.environ, **changes})

    assert caught.value.variable == variable


@pytest.mark.parametrize(
    ("failure", "level", "traceback"),
    [(TimeoutError(), "WARNING", False), (ConnectionRefusedError(), "WARNING", False), (KeyError("bug"), "ERROR", True)],
)
async def test_an_outbox_pass_that_cannot_reach_the_database_warns_and_only_a_bug_is_an_error(
    caplog, failure, level, traceback
):
    """A database that is briefly unreachable (a restart, a slow connect) is retried by the next
    pass: a WARNING naming the exception type, no traceback. Anything else is a bug: ERROR."""
    renderer = MailRenderer(server_secret=b"x" * 32, mail_from="k@keyrelease.example", public_url="http://k.example")
    dispatcher = Dispatcher(FlakyTransport(), renderer, FrozenClock(), poll_seconds=3600)
    passes = 0

    async def failing_pass() -> None:
        nonlocal passes
        passes += 1
        raise failure

    dispatcher.run_once = failing_pass  # type: ignore[method-assign]
    with caplog.at_level("INFO", logger="keyrelease.mail"):
        task = asyncio.create_task(dispatcher.run_forever())
        while passes == 0:
            await asyncio.sleep(0)
        dispatcher.wake()
        while passes < 2:  # it goes on after the failure
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [record, *_] = [r for r in caplog.records if r.name == "keyrelease.mail"]
    assert record.levelname == level
    assert (record.exc_info is not None) is traceback
    if not traceback:
        assert type(failure).__name__ in record.getMessage()
