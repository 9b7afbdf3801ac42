"""Timing (issue 8): failures must not be told apart by how long they take.

Many samples, interleaved so that load on the machine hits every case alike; the medians
must agree within a small bound. This is a security property, not a speed assertion: it
compares the cases with each other and never with a fixed time.
"""

from __future__ import annotations

import statistics
import time
import uuid

from conftest import VERIFY_KEY, released_key, request_token


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def test_verify_failures_take_the_same_time(api):
    ada = await api.admin()
    pending, code = await api.create_key_with_code(ada)
    locked, locked_code = await api.create_key_with_code(ada)
    for _ in range(5):
        await api.verify(ada, locked["id"], wrong(locked_code))

    async def verify(key_id: str, guess: str):
        response = await api.post(VERIFY_KEY, {"input": {"keyId": key_id, "code": guess}}, ada.token)
        assert response.json()["data"]["verifyKey"]["__typename"] == "VerificationError"

    samples: dict[str, list[float]] = {"unknown key": [], "wrong code": [], "locked key": []}
    for _ in range(25):
        samples["unknown key"].append(await timed(lambda: verify(str(uuid.uuid4()), code)))
        # A wrong code counts an attempt; undo it between samples so the key stays pending
        # (directly in the database: this is the test's bookkeeping, not a service path).
        samples["wrong code"].append(await timed(lambda: verify(pending["id"], wrong(code))))
        await reset_attempts(pending["id"])
        samples["locked key"].append(await timed(lambda: verify(locked["id"], locked_code)))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print("\nverifyKey failure medians (ms):", {k: round(v * 1000, 2) for k, v in medians.items()})
    assert max(medians.values()) - min(medians.values()) < 0.010, medians


async def reset_attempts(key_id: str) -> None:
    from keyrelease.models import ApiKey, KeyEvent

    await ApiKey.filter(id=key_id).update(attempts_used=0)
    await KeyEvent.filter(key_id=key_id, type="VERIFICATION_FAILED").delete()


async def test_token_endpoint_refusals_take_the_same_time(api, client):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    unknown = f"us-east-1#{uuid.uuid4()}"
    samples: dict[str, list[float]] = {"unknown client": [], "wrong secret": []}

    async def refused(client_id: str, secret: str):
        response = await request_token(client, client_id, secret)
        assert response.status_code == 401

    for _ in range(3):  # warm up both paths
        await refused(unknown, "x" * 43)
        await refused(creds["clientId"], "x" * 43)
    for _ in range(150):
        samples["unknown client"].append(await timed(lambda: refused(unknown, "x" * 43)))
        samples["wrong secret"].append(await timed(lambda: refused(creds["clientId"], "y" * 43)))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print("\ntoken refusal medians (ms):", {k: round(v * 1000, 3) for k, v in medians.items()})
    assert abs(medians["unknown client"] - medians["wrong secret"]) < 0.002, medians
