"""resendCode issues the next code (generation + 1, the previous one dead), refuses a key id
that is not even a UUID with the one generic error, and, asked for a key whose window has
closed, records the lock (reason WINDOW, at the deadline) like any late request does."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from keyrelease.codes import verification_code
from keyrelease.testing.settings import SECRET_KEY


def code(key_id: str, generation: int) -> str:
    return verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), generation)


async def test_each_resend_issues_the_next_generation(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    assert (await api.resend(ada, key["id"]))["__typename"] == "ApiKey"
    assert (await api.resend(ada, key["id"]))["__typename"] == "ApiKey"
    assert (await api.verify(ada, key["id"], code(key["id"], 1)))["__typename"] == "VerificationError"
    assert (await api.verify(ada, key["id"], code(key["id"], 2)))["__typename"] == "ApiKey"


async def test_a_key_id_that_is_not_a_uuid_is_the_generic_error(api):
    ada = await api.admin()
    assert (await api.resend(ada, "not-a-key"))["__typename"] == "VerificationError"


async def test_a_resend_after_the_window_closed_records_the_lock_at_the_deadline(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    deadline = clock.now() + timedelta(minutes=15)
    clock.advance(minutes=20)
    assert (await api.resend(ada, key["id"]))["__typename"] == "VerificationError"
    locks = [e for e in (await api.key(ada, key["id"]))["events"] if e["type"] == "LOCKED"]
    assert [(datetime.fromisoformat(e["at"]), e["detail"]) for e in locks] == [(deadline, "WINDOW")]
