"""Every outcome of verifyKey, resendCode and revealKey (admin and partner) is counted under
its own label, exactly once, and nothing else is: input refused before any read, an unknown
key, a wrong code or password, success, a budget refusal; and every lock by its reason,
whether wrong codes or a closed window caused it."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

COUNTERS = (
    "keyrelease_verifications_total",
    "keyrelease_key_locks_total",
    "keyrelease_code_resends_total",
    "keyrelease_reveals_total",
    "keyrelease_admin_budget_refusals_total",
)
UNKNOWN = "00000000-0000-4000-8000-000000000000"
BELL = "\x07"


def snapshot() -> dict[tuple, float]:
    samples = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name in COUNTERS:
                samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


class Counted:
    def __init__(self) -> None:
        self.before = snapshot()

    def delta(self) -> dict[str, float]:
        after = snapshot()
        self.before, before = after, self.before
        changed = {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}
        return {f"{key[0].removeprefix('keyrelease_').removesuffix('_total')}{dict(key[1:])}": v for key, v in changed.items()}


def wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "2"}])
async def test_verify_and_resend_outcomes(api, clock):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    counted = Counted()

    assert (await api.verify(ada, key["id"] + BELL, code))["__typename"] == "ValidationError"
    assert counted.delta() == {"verifications{'outcome': 'invalid'}": 1}
    assert (await api.verify(ada, key["id"], "12345x"))["__typename"] == "ValidationError"
    assert counted.delta() == {"verifications{'outcome': 'invalid'}": 1}
    assert (await api.verify(ada, UNKNOWN, code))["__typename"] == "VerificationError"
    assert counted.delta() == {"verifications{'outcome': 'failed'}": 1}
    assert (await api.verify(ada, key["id"], wrong(code)))["__typename"] == "VerificationError"
    assert counted.delta() == {"verifications{'outcome': 'failed'}": 1}

    assert (await api.resend(ada, key["id"] + BELL))["__typename"] == "ValidationError"
    assert counted.delta() == {"code_resends{'outcome': 'refused'}": 1}
    assert (await api.resend(ada, UNKNOWN))["__typename"] == "VerificationError"
    assert counted.delta() == {"code_resends{'outcome': 'refused'}": 1}
    assert (await api.resend(ada, key["id"]))["__typename"] == "ApiKey"  # the second code email of the hour
    assert counted.delta() == {"code_resends{'outcome': 'sent'}": 1}
    assert (await api.resend(ada, key["id"]))["__typename"] == "CodeEmailLimitError"
    assert counted.delta() == {
        "code_resends{'outcome': 'limited'}": 1,
        "admin_budget_refusals{'rule': 'CODE_EMAIL'}": 1,
    }

    new_code = await api.code_for(ada, nth=2)
    assert (await api.verify(ada, key["id"], new_code))["__typename"] == "ApiKey"
    assert counted.delta() == {"verifications{'outcome': 'verified'}": 1}


async def test_locks_are_counted_by_reason(api, clock):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    late, _ = await api.create_key_with_code(ada)
    counted = Counted()
    for _ in range(5):
        await api.verify(ada, key["id"], wrong(code))
    assert counted.delta() == {"verifications{'outcome': 'failed'}": 5, "key_locks{'reason': 'ATTEMPTS'}": 1}

    clock.advance(minutes=16)  # the other key's window has closed
    assert (await api.verify(ada, late["id"], "123456"))["__typename"] == "VerificationError"
    assert counted.delta() == {"verifications{'outcome': 'failed'}": 1, "key_locks{'reason': 'WINDOW'}": 1}
    assert (await api.verify(ada, late["id"], "123456"))["__typename"] == "VerificationError"
    assert counted.delta() == {"verifications{'outcome': 'failed'}": 1}, "a lock is counted once"


async def test_reveal_outcomes_admin_and_partner(api):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    partner, partner_code = await api.create_key_with_code(ada, kind="PARTNER", partnerEmail="pat@acme.example")
    counted = Counted()

    assert (await api.reveal(ada, key["id"] + BELL))["__typename"] == "ValidationError"
    assert counted.delta() == {"reveals{'kind': 'institutional', 'outcome': 'refused'}": 1}
    assert (await api.reveal(ada, key["id"]))["__typename"] == "VerificationError"  # not verified yet
    assert counted.delta() == {"reveals{'kind': 'institutional', 'outcome': 'refused'}": 1}
    await api.verify(ada, key["id"], code)
    counted.delta()
    assert (await api.reveal(ada, key["id"]))["__typename"] == "KeyCredentials"
    assert counted.delta() == {"reveals{'kind': 'institutional', 'outcome': 'revealed'}": 1}

    await api.verify(ada, partner["id"], partner_code)
    otp = await api.otp_for("pat@acme.example")
    counted.delta()
    assert (await api.reveal(None, partner["id"], otp=otp + BELL))["__typename"] == "ValidationError"
    assert counted.delta() == {"reveals{'kind': 'partner', 'outcome': 'refused'}": 1}
    assert (await api.reveal(None, UNKNOWN, otp=otp))["__typename"] == "VerificationError"
    assert counted.delta() == {"reveals{'kind': 'partner', 'outcome': 'refused'}": 1}
    assert (await api.reveal(None, partner["id"], otp="AAAA-AAAA-AAAA-AAAA"))["__typename"] == "VerificationError"
    assert counted.delta() == {"reveals{'kind': 'partner', 'outcome': 'refused'}": 1}
    assert (await api.reveal(None, partner["id"], otp=otp))["__typename"] == "KeyCredentials"
    assert counted.delta() == {"reveals{'kind': 'partner', 'outcome': 'revealed'}": 1}
