"""Each use-case that queues mail tells the dispatcher at once (``on_mail_queued``), once per
request, and one that queues none stays quiet: creating a key (its code), a resend, verifying
a partner key (the partner's password), and the lock that suspends an admin's key creation
(the alerts); not verifying an institutional key, a wrong code, a refusal."""

from __future__ import annotations

from keyrelease.codes import verification_code
from keyrelease.models import KeyKind
from keyrelease.policy import VerificationPolicy
from keyrelease.service import admins
from keyrelease.service.keys import KeyService
from keyrelease.testing.settings import SECRET_KEY


async def service_and_admin(clock):
    calls: list[int] = []
    keys = KeyService(
        server_secret=SECRET_KEY.encode(),
        policy=VerificationPolicy(),
        clock=clock,
        region="us-east-1",
        on_mail_queued=lambda: calls.append(1),
    )
    created = await admins.create_admin(clock, institution="Example University", email="ada@uni.example", name="Ada")
    admin = await admins.authenticate(clock, created.token)
    assert admin is not None
    return keys, admin, calls


def code(key, generation: int = 0) -> str:
    return verification_code(SECRET_KEY.encode(), key.id, generation)


def wrong(key) -> str:
    return f"{(int(code(key)) + 1) % 1_000_000:06d}"


async def announced(calls: list[int], action) -> tuple[object, int]:
    before = len(calls)
    result = await action
    return result, len(calls) - before


async def test_create_resend_and_partner_verification_announce_their_mail(app, clock):
    keys, admin, calls = await service_and_admin(clock)
    key, n = await announced(calls, keys.create_key(admin, name="inst", kind=KeyKind.INSTITUTIONAL))
    assert n == 1
    _, n = await announced(calls, keys.resend_code(admin, str(key.id)))
    assert n == 1
    _, n = await announced(calls, keys.verify_key(admin, str(key.id), wrong(key)))
    assert n == 0
    verified, n = await announced(calls, keys.verify_key(admin, str(key.id), code(key, 1)))
    assert verified.__class__.__name__ == "ApiKey" and n == 0, "an institutional key sends nothing on verification"
    _, n = await announced(calls, keys.resend_code(admin, str(key.id)))
    assert n == 0, "a refused resend queues nothing"

    partner, n = await announced(
        calls, keys.create_key(admin, name="p", kind=KeyKind.PARTNER, partner_email="pat@acme.example")
    )
    assert n == 1
    _, n = await announced(calls, keys.verify_key(admin, str(partner.id), code(partner)))
    assert n == 1


async def test_only_the_lock_that_suspends_creation_announces_the_alerts(app, clock):
    keys, admin, calls = await service_and_admin(clock)
    counts = []
    for i in range(3):
        key = await keys.create_key(admin, name=f"k{i}", kind=KeyKind.INSTITUTIONAL)
        for _ in range(5):
            _, n = await announced(calls, keys.verify_key(admin, str(key.id), wrong(key)))
            counts.append(n)
    assert counts == [0] * 14 + [1]
