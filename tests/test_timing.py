"""Failures must not be told apart by how long they take.

Timing alone cannot show this: hashing a guessed secret costs about a microsecond, far below
what a request's time varies by, and a failure path that skips the floor may still be faster
than any tolerance a shared machine allows. So these tests watch the work itself, through the
real HTTP stack: every refusal of the token endpoint hashes and compares each secret it was
sent, known client or not; every failure of verification, resend and reveal asks for the wait
that brings it up to the failure floor. One statistical test then compares the medians of the
token refusals with each other (never with a fixed time), at the scale of what they cost.
"""

from __future__ import annotations

import functools
import statistics
import time
import uuid
from collections import Counter

import pytest

from keyrelease import credentials
from keyrelease.testing.api import REVEAL_KEY, VERIFY_KEY, released_key
from keyrelease.testing.tokens import request_token

FLOOR_MS = 50
PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}
RESEND_CODE = "mutation($input: ResendCodeInput!) { resendCode(input: $input) { __typename } }"


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_FAILURE_FLOOR_MS": str(FLOOR_MS)}


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# -- the token endpoint: the same hashing for every refusal ----------------------------------


class HashWork:
    """Counts the hashing and constant-time comparing the token endpoint does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        hash_secret, hash_matches = credentials.hash_secret, credentials.hash_matches

        def counted_hash(secret: str) -> str:
            self.calls["hash"] += 1
            return hash_secret(secret)

        def counted_match(digest: str, stored_hash: str | None) -> bool:
            self.calls["compare"] += 1
            return hash_matches(digest, stored_hash)

        monkeypatch.setattr(credentials, "hash_secret", counted_hash)
        monkeypatch.setattr(credentials, "hash_matches", counted_match)

    async def of(self, call) -> Counter[str]:  # type: ignore[no-untyped-def]
        self.calls.clear()
        await call()
        return Counter(self.calls)


async def timed_refusal(client, client_id: str, secret: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds a token request takes to be refused (401)."""
    started = time.perf_counter()
    response = await request_token(client, client_id, secret)
    elapsed = time.perf_counter() - started
    assert response.status_code == 401
    return elapsed


async def test_an_unknown_client_is_hashed_and_compared_like_a_known_one(api, client, monkeypatch):
    ada = await api.admin()
    _, creds = await released_key(api, ada)
    pending = await api.create_key(ada, name="Never revealed")
    work = HashWork(monkeypatch)

    def refused(client_id: str, secret: str):  # type: ignore[no-untyped-def]
        async def call() -> None:
            response = await request_token(client, client_id, secret)
            assert response.status_code == 401, response.text

        return call

    # "a+b" is offered in both its readings ("a b" form-decoded, and as sent): two secrets.
    # A well-formed krs_ secret (valid checksum) is looked up and hashed like any other.
    for secret in ("y" * 43, "a+b%2B" + "y" * 37, credentials.new_client_secret()):
        known = await work.of(refused(creds["clientId"], secret))
        assert known["hash"] >= 1 and known["compare"] >= 1, known
        cases = {
            "unknown client": f"us-east-1#{uuid.uuid4()}",
            "client ID too long to look up": "x" * 200,
            "key never revealed (no stored hash)": pending["clientId"],
        }
        for case, client_id in cases.items():
            assert await work.of(refused(client_id, secret)) == known, (case, secret)


async def test_token_refusals_take_the_same_time_at_the_scale_of_their_cost(api, client):
    """Statistical cross-check of the lookup itself (a row found or not): the medians of the two
    refusals must agree within a quarter of what one refusal costs."""
    ada = await api.admin()
    _, creds = await released_key(api, ada)
    unknown = f"us-east-1#{uuid.uuid4()}"
    samples: dict[str, list[float]] = {"unknown client": [], "wrong secret": []}
    refused = functools.partial(timed_refusal, client)

    for _ in range(10):  # warm up both paths
        await refused(unknown, "x" * 43)
        await refused(creds["clientId"], "x" * 43)
    for _ in range(200):
        samples["unknown client"].append(await refused(unknown, "x" * 43))
        samples["wrong secret"].append(await refused(creds["clientId"], "y" * 43))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print("\ntoken refusal medians (ms):", {k: round(v * 1000, 3) for k, v in medians.items()})
    cost = min(medians.values())
    assert abs(medians["unknown client"] - medians["wrong secret"]) < 0.25 * cost, medians


# -- the token endpoint during a rotation's overlap: two secrets, the same work ---------------

ROTATE_KEY = "mutation($input: RotateKeyInput!) { rotateKey(input: $input) { __typename } }"


async def rotated_key(api, admin, clock) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """A released key rotated and its new secret revealed: both credentials live (the overlap)."""
    key, old = await released_key(api, admin)
    rotated = await api.data(ROTATE_KEY, {"input": {"keyId": key["id"]}}, admin.token)
    assert rotated["rotateKey"]["__typename"] == "ApiKey", rotated
    assert (await api.verify(admin, key["id"], await api.code_for(admin, 2)))["status"] == "ACTIVE"
    new = await api.reveal(admin, key["id"])
    assert new["__typename"] == "KeyCredentials" and new["clientId"] == old["clientId"], new
    return old, new


def answer(response) -> tuple[int, list[tuple[str, str]], bytes]:  # type: ignore[no-untyped-def]
    """Everything a client sees of a token response (a refusal's, compared byte for byte), but
    the request's own ID (``X-Request-ID``, different for every request by design)."""
    headers = sorted((name, value) for name, value in response.headers.multi_items() if name != "x-request-id")
    return response.status_code, headers, response.content


async def test_during_an_overlap_old_new_wrong_and_unknown_cost_the_same_hashing(api, client, clock, monkeypatch):
    """While both secrets authenticate, each request compares every secret it was sent with
    both the key's hashes, whichever secret it is, and whether the client exists at all; the
    refusals (a wrong secret, an unknown client, the old secret once retired) are the same bytes."""
    ada = await api.admin()
    old, new = await rotated_key(api, ada, clock)
    client_id = old["clientId"]
    work = HashWork(monkeypatch)
    responses: dict[str, object] = {}

    def token(case: str, client_id: str, secret: str, status: int):  # type: ignore[no-untyped-def]
        async def call() -> None:
            response = await request_token(client, client_id, secret)
            assert response.status_code == status, (case, response.text)
            responses[case] = response

        return call

    wrong_secret = credentials.new_client_secret()  # well-formed: looked up and hashed like any other
    cases = {
        "new secret": token("new secret", client_id, new["clientSecret"], 200),
        "old secret": token("old secret", client_id, old["clientSecret"], 200),
        "wrong secret for the rotating client": token("wrong secret", client_id, wrong_secret, 401),
        "unknown client": token("unknown client", f"us-east-1#{uuid.uuid4()}", wrong_secret, 401),
    }
    costs = {case: await work.of(call) for case, call in cases.items()}
    # Each secret hashed once and compared with the old hash and the new one (an absent hash is
    # compared all the same).
    assert costs["new secret"] == {"hash": 1, "compare": 2}, costs
    assert all(cost == costs["new secret"] for cost in costs.values()), costs
    refusal = answer(responses["wrong secret"])
    assert answer(responses["unknown client"]) == refusal

    clock.advance(days=1, seconds=1)  # the grace after the new secret's first use: the old one retires
    retired = token("old secret, retired", client_id, old["clientSecret"], 401)
    assert await work.of(retired) == costs["new secret"]
    assert answer(responses["old secret, retired"]) == refusal
    assert await work.of(token("new secret, alone", client_id, new["clientSecret"], 200)) == costs["new secret"]


async def test_overlap_refusals_take_the_same_time_at_the_scale_of_their_cost(api, client, clock):
    """Statistical cross-check of the lookup during an overlap (the key's row and its open
    rotation's found, or nothing): a wrong secret for the rotating client, its old secret once
    retired, and an unknown client. Their medians must agree within a quarter of what one
    refusal costs (the same measure as the test above for a key without a rotation)."""
    ada = await api.admin()
    old, new = await rotated_key(api, ada, clock)
    assert (await request_token(client, new["clientId"], new["clientSecret"])).status_code == 200  # first use
    clock.advance(days=1, seconds=1)  # the old secret retired by the grace; the rotation not yet finished
    unknown = f"us-east-1#{uuid.uuid4()}"
    cases = {
        "unknown client": (unknown, "x" * 43),
        "wrong secret": (old["clientId"], "y" * 43),
        "retired old secret": (old["clientId"], old["clientSecret"]),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    refused = functools.partial(timed_refusal, client)

    for _ in range(10):  # warm up every path
        for client_id, secret in cases.values():
            await refused(client_id, secret)
    for _ in range(140):  # interleaved, so a change in the machine's load touches each alike
        for name, (client_id, secret) in cases.items():
            samples[name].append(await refused(client_id, secret))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print("\noverlap token refusal medians (ms):", {k: round(v * 1000, 3) for k, v in medians.items()})
    cost = min(medians.values())
    assert max(medians.values()) - cost < 0.25 * cost, medians


# -- verification, resend and reveal: every failure waits for the floor -----------------------


class FloorWatch:
    """Stands in for the failure floor's stopwatch and wait.

    The stopwatch moves ``work`` seconds at each reading (the request's own work, as if it took
    that long) and by whatever the service waits, so each failure's requested wait is exactly
    what the floor asks of it.
    """

    def __init__(self, work: float = 0.0) -> None:
        self.now = 0.0
        self.work = work
        self.waits: list[float] = []

    def monotonic(self) -> float:
        self.now += self.work
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def install(self, app) -> None:  # type: ignore[no-untyped-def]
        app.state.services.keys.monotonic = self.monotonic
        app.state.services.keys.sleep = self.sleep

    async def of(self, call) -> list[float]:  # type: ignore[no-untyped-def]
        self.waits.clear()
        await call()
        return list(self.waits)


async def failure_paths(api, app):  # type: ignore[no-untyped-def]
    """Every way verifyKey, resendCode and revealKey fail, each as a call that checks it failed
    with the one generic error."""
    ada = await api.admin()
    eve = await api.admin(email="eve@other.example", institution="Other College")
    pending, code = await api.create_key_with_code(ada)
    locked, locked_code = await api.create_key_with_code(ada)
    for _ in range(app.state.services.settings.policy.max_attempts):
        await api.verify(ada, locked["id"], wrong(locked_code))
    exhausted = await api.create_key(ada, name="No resends left")
    for _ in range(app.state.services.settings.policy.max_resends):
        assert (await api.resend(ada, exhausted["id"]))["__typename"] == "ApiKey"
    partner, partner_code = await api.create_key_with_code(ada, **PARTNER)
    assert (await api.verify(ada, partner["id"], partner_code))["status"] == "ACTIVE"
    released, _ = await released_key(api, ada)

    def failing(query: str, field: str, variables: dict, token: str | None):  # type: ignore[no-untyped-def]
        async def call() -> None:
            body = await api.gql(query, {"input": variables}, token)
            assert body["data"][field]["__typename"] == "VerificationError", body

        return call

    def verify(key_id: str, guess: str, token: str = ada.token):  # type: ignore[no-untyped-def]
        return failing(VERIFY_KEY, "verifyKey", {"keyId": key_id, "code": guess}, token)

    def resend(key_id: str, token: str = ada.token):  # type: ignore[no-untyped-def]
        return failing(RESEND_CODE, "resendCode", {"keyId": key_id}, token)

    def reveal(key_id: str, otp: str | None = None, token: str | None = ada.token):  # type: ignore[no-untyped-def]
        variables = {"keyId": key_id} if otp is None else {"keyId": key_id, "oneTimePassword": otp}
        return failing(REVEAL_KEY, "revealKey", variables, token)

    return {
        "verify: unknown key": verify(str(uuid.uuid4()), code),
        "verify: malformed key ID": verify("not-a-key", code),
        "verify: another admin's key": verify(pending["id"], code, eve.token),
        "verify: wrong code": verify(pending["id"], wrong(code)),
        "verify: locked key": verify(locked["id"], locked_code),
        "resend: unknown key": resend(str(uuid.uuid4())),
        "resend: malformed key ID": resend("not-a-key"),
        "resend: no resends left": resend(exhausted["id"]),
        "reveal: unknown key": reveal(str(uuid.uuid4())),
        "reveal: pending key": reveal(pending["id"]),
        "reveal: already revealed": reveal(released["id"]),
        "partner reveal: unknown key": reveal(str(uuid.uuid4()), "AAAA-BBBB-CCCC-DDDD", None),
        "partner reveal: wrong one-time password": reveal(partner["id"], "AAAA-BBBB-CCCC-DDDD", None),
    }


async def test_every_failure_waits_until_the_failure_floor(api, app):
    paths = await failure_paths(api, app)
    watch = FloorWatch()
    watch.install(app)
    for name, call in paths.items():
        assert await watch.of(call) == [pytest.approx(FLOOR_MS / 1000)], name


async def test_the_floor_counts_the_work_already_done(api, app):
    """A failure that took 20 ms waits 30 ms more; one that took longer than the floor does not wait."""
    paths = await failure_paths(api, app)
    watch = FloorWatch(work=0.020)
    watch.install(app)
    assert await watch.of(paths["verify: wrong code"]) == [pytest.approx(0.030)]
    assert await watch.of(paths["reveal: unknown key"]) == [pytest.approx(0.030)]
    watch.work = 0.060
    assert await watch.of(paths["verify: unknown key"]) == []
    assert await watch.of(paths["partner reveal: wrong one-time password"]) == []
