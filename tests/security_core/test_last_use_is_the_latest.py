"""The token endpoint remembers each key's latest use in memory until the next flush: a use
reported late (an older timestamp, e.g. from a slower request) never replaces a newer one,
and every key keeps its own. A flush writes each key's own use and nothing else, and moves
an earlier written use forward."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from keyrelease.service.clients import LastUseRecorder
from keyrelease.testing.api import released_key
from keyrelease.testing.tokens import request_token

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LAST_USED = "query($id: ID!) { key(id: $id) { lastUsedAt } }"


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
    assert await recorder.flush() == 1
    assert (await last_used(used), await last_used(unused)) == (first, None)
    clock.advance(seconds=30)
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    assert await recorder.flush() == 1
    assert await last_used(used) == clock.now()
