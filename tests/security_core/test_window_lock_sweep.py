"""The sweeper records LOCKED (reason WINDOW, at the deadline, counted once) for pending keys
whose verification window closed unobserved: at most ``limit`` a sweep, never a key that was
verified, revoked or already locked, never a key whose window is still open (none of which
takes a place in a sweep's batch), and never twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from keyrelease.policy import VerificationPolicy
from keyrelease.service.keys import KeyService
from keyrelease.testing.api import REVOKE_KEY
from keyrelease.testing.settings import SECRET_KEY
from seed import seed_pending_keys


def sweeper(clock) -> KeyService:
    return KeyService(server_secret=SECRET_KEY.encode(), policy=VerificationPolicy(), clock=clock, region="us-east-1")


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


async def test_the_sweep_locks_only_lapsed_pending_keys_at_their_deadline_within_its_limit(api, clock):
    ada = await api.admin()
    # The keys a sweep must pass over are created first, so that on SQLite (which reads in
    # insertion order) a sweep that let them into its batch would fill it with them. The one
    # still open is created ten minutes on, and the clock then set back.
    clock.advance(minutes=10)
    fresh, _ = await api.create_key_with_code(ada)  # its window is still open after the others close
    clock.advance(minutes=-10)
    verified, code = await api.create_key_with_code(ada)
    await api.verify(ada, verified["id"], code)
    revoked, _ = await api.create_key_with_code(ada)
    await api.data(REVOKE_KEY, {"input": {"keyId": revoked["id"]}}, ada.token)
    attempts, attempts_code = await api.create_key_with_code(ada)
    for _ in range(5):
        await api.verify(ada, attempts["id"], wrong(attempts_code))
    lapsed = [await api.create_key_with_code(ada) for _ in range(3)]
    created = clock.now()
    clock.advance(minutes=10)

    keys = sweeper(clock)
    assert await keys.record_window_locks() == 0, "no window has closed yet"
    clock.advance(minutes=5)  # the first six keys' windows close exactly now
    assert await keys.record_window_locks(limit=2) == 2
    assert await keys.record_window_locks(limit=2) == 1
    assert await keys.record_window_locks() == 0

    deadline = created + timedelta(minutes=15)
    for key, _ in lapsed:
        after = await api.key(ada, key["id"])
        assert after["status"] == "LOCKED"
        locks = [e for e in after["events"] if e["type"] == "LOCKED"]
        assert [(datetime.fromisoformat(e["at"]), e["detail"]) for e in locks] == [(deadline, "WINDOW")]
    assert (await api.key(ada, verified["id"]))["status"] == "ACTIVE"
    assert (await api.key(ada, revoked["id"]))["status"] == "REVOKED"
    assert [e["detail"] for e in (await api.key(ada, attempts["id"]))["events"] if e["type"] == "LOCKED"] == ["ATTEMPTS"]
    assert (await api.key(ada, fresh["id"]))["status"] == "PENDING_VERIFICATION"
    for key_id in (verified["id"], revoked["id"], fresh["id"]):
        assert not [e for e in (await api.key(ada, key_id))["events"] if e["type"] == "LOCKED"], key_id


async def test_one_sweep_records_at_most_500_lapsed_keys_unless_told_otherwise(api, clock):
    """A backlog (say, after an outage of the sweeper) is worked off 500 keys a pass."""
    ada = await api.admin()
    await seed_pending_keys(ada.email, 501, clock.now())  # 501 createKey flows would take minutes
    clock.advance(minutes=15)
    keys = sweeper(clock)
    assert await keys.record_window_locks() == 500
    assert await keys.record_window_locks() == 1
