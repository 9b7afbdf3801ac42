"""The token endpoint remembers each key's latest use in memory until the next flush: a use
reported late (an older timestamp, e.g. from a slower request) never replaces a newer one,
and every key keeps its own. A flush writes each key's own use and nothing else, and moves
an earlier written use forward. The flush loop flushes again after a failure, which it logs."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from keyrelease.service.clients import LastUseRecorder
from keyrelease.testing.api import released_key
from keyrelease.testing.tokens import request_token

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LAST_USED = "query($id: ID!) { key(id: $id) { lastUsedAt } }"


class ObservedRecorder(LastUseRecorder):
    """Flushes with no pause between passes; the first pass with something to write fails
    (a database that went away); every pass's outcome (a count or the error) is queued."""

    def __init__(self) -> None:
        super().__init__(flush_seconds=0)
        self.outcomes: asyncio.Queue[int | Exception] = asyncio.Queue()
        self.failed = False

    async def flush(self) -> int:
        try:
            if self._pending and not self.failed:
                self.failed = True
                raise ConnectionError("database went away")
            written = await super().flush()
        except Exception as error:
            self.outcomes.put_nowait(error)
            raise
        self.outcomes.put_nowait(written)
        return written


def test_an_older_use_never_replaces_a_newer_one_and_keys_are_separate():
    recorder = LastUseRecorder(flush_seconds=60)
    a, b = uuid.uuid4(), uuid.uuid4()
    recorder.record(a, T0 + timedelta(seconds=5))
    recorder.record(a, T0)
    recorder.record(b, T0)
    assert dict(recorder.pending) == {a: T0 + timedelta(seconds=5), b: T0}
    recorder.record(b, T0 + timedelta(seconds=1))
    assert recorder.pending[b] == T0 + timedelta(seconds=1)


async def test_a_flush_writes_only_the_used_key_and_moves_its_last_use_forward(api, client, clock):
    ada = await api.admin()
    used, creds = await released_key(api, ada)
    unused, _ = await released_key(api, ada)
    recorder = api.app.state.services.last_use

    async def last_used(key: dict) -> datetime | None:
        value = (await api.data(LAST_USED, {"id": key["id"]}, ada.token))["key"]["lastUsedAt"]
        return datetime.fromisoformat(value) if value else None

    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    first = clock.now()
    assert await recorder.flush() == 2  # the used key, and the admin token the GraphQL requests sent
    assert (await last_used(used), await last_used(unused)) == (first, None)
    clock.advance(seconds=30)
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    assert await recorder.flush() == 2
    assert await last_used(used) == clock.now()


async def test_the_flush_loop_logs_a_failed_flush_and_writes_the_batch_on_the_next_pass(api, clock, caplog):
    ada = await api.admin()
    key, _ = await released_key(api, ada)
    recorder = ObservedRecorder()
    recorder.record(uuid.UUID(key["id"]), clock.now())
    loop = asyncio.create_task(recorder.run_forever())

    async def next_outcome() -> int | Exception:
        outcome = asyncio.ensure_future(recorder.outcomes.get())
        await asyncio.wait({outcome, loop}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert outcome.done(), loop  # the loop ended (its exception shows) or never flushed
        return outcome.result()

    try:
        with caplog.at_level(logging.ERROR, logger="keyrelease.clients"):
            assert isinstance(await next_outcome(), ConnectionError)
            assert await next_outcome() == 1
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    [logged] = [r for r in caplog.records if r.name == "keyrelease.clients"]
    assert (logged.levelno, logged.getMessage()) == (logging.ERROR, "last-use flush failed; will retry")
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], ConnectionError)
    written = (await api.data(LAST_USED, {"id": key["id"]}, ada.token))["key"]["lastUsedAt"]
    assert datetime.fromisoformat(written) == clock.now()
