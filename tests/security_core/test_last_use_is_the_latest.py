"""The token endpoint remembers each key's latest use in memory until the next flush: a use
reported late (an older timestamp, e.g. from a slower request) never replaces a newer one,
and every key keeps its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from keyrelease.service.clients import LastUseRecorder

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_an_older_use_never_replaces_a_newer_one_and_keys_are_separate():
    recorder = LastUseRecorder(flush_seconds=60)
    a, b = uuid.uuid4(), uuid.uuid4()
    recorder.record(a, T0 + timedelta(seconds=5))
    recorder.record(a, T0)
    recorder.record(b, T0)
    assert dict(recorder.pending) == {a: T0 + timedelta(seconds=5), b: T0}
    recorder.record(b, T0 + timedelta(seconds=1))
    assert recorder.pending[b] == T0 + timedelta(seconds=1)
