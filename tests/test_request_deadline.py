"""The request deadline: a request still running when it passes is cancelled and answered 503
with Retry-After, in the shape its API answers errors: RFC 6749's on the token endpoint,
GraphQL's everywhere else. The deadline is a real timer, at its least allowed value (1 s)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

UNAVAILABLE = "The service is temporarily unavailable; try again shortly."
REVEAL = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) { __typename }
}"""


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_REQUEST_TIMEOUT_SECONDS": "1"}


async def never_answers(*args: object, **kwargs: object) -> None:
    await asyncio.Event().wait()


def assert_unavailable(response, body: dict) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1" and response.headers["cache-control"] == "no-store"
    assert response.json() == body


async def test_a_token_request_past_its_deadline_gets_an_oauth_error(app, client, monkeypatch, caplog):
    monkeypatch.setattr(app.state.services.limiter, "token_request_and_read", never_answers)
    caplog.set_level(logging.WARNING, logger="keyrelease")

    response = await client.post(
        "/ids/auth/login", data={"grant_type": "client_credentials"}, auth=("some-client", "some-secret")
    )

    assert_unavailable(response, {"error": "temporarily_unavailable", "error_description": UNAVAILABLE})
    assert "request to /ids/auth/login passed its 1.0s deadline" in caplog.messages


async def test_a_graphql_request_past_its_deadline_gets_a_graphql_error(app, client, monkeypatch, caplog):
    monkeypatch.setattr(app.state.services.limiter, "partner_reveal", never_answers)
    caplog.set_level(logging.WARNING, logger="keyrelease")

    response = await client.post(
        "/graphql",
        json={"query": REVEAL, "variables": {"input": {"keyId": str(uuid.uuid4()), "oneTimePassword": "123456"}}},
    )

    assert_unavailable(response, {"errors": [{"message": UNAVAILABLE, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]})
    assert "request to /graphql passed its 1.0s deadline" in caplog.messages


# -- the deadlines themselves (keyrelease.deadline.Deadlines), on a bare ASGI app ---------------


def _middleware(seconds: float):  # type: ignore[no-untyped-def]
    from keyrelease.deadline import RequestDeadline

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(scope["work"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    return RequestDeadline(app, seconds, lambda scope: {"error": "late"})


async def _call(middleware, work: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    began = loop.time()
    await middleware({"type": "http", "path": "/x", "work": work}, None, send)
    return sent[0]["status"], loop.time() - began


async def test_parallel_requests_each_get_their_own_whole_deadline():
    """Requests that start at different times, in parallel, on one middleware: each slow one is
    cut off one deadline after *its own* start (not sooner, not much later), and every quick
    one is answered untouched, before and after the deadlines that pass around it."""
    middleware = _middleware(0.3)
    calls = []
    for n in range(12):
        slow = n % 3 == 0
        calls.append(asyncio.create_task(_call(middleware, 5.0 if slow else 0.05)))
        await asyncio.sleep(0.04)  # staggered starts: the deadlines pass one by one
    results = await asyncio.gather(*calls)
    for n, (status, elapsed) in enumerate(results):
        if n % 3 == 0:
            assert status == 503 and 0.3 <= elapsed < 1.5, (n, status, elapsed)
        else:
            assert status == 200, (n, status, elapsed)


async def test_a_cancellation_from_elsewhere_propagates_and_is_not_a_timeout():
    """Shutdown or a client gone cancels the request's task: that must stay a cancellation (no
    503 sent, CancelledError raised), and the deadline's bookkeeping must not swallow it."""
    middleware = _middleware(0.5)
    task = asyncio.create_task(_call(middleware, 5.0))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The deadline of that request, still queued, later finds it finished and cancels nothing;
    # a new request on the same middleware gets its whole deadline and its answer.
    await asyncio.sleep(0.5)
    assert await _call(middleware, 0.01) == (200, pytest.approx(0.01, abs=0.5))



def test_each_event_loop_keeps_its_own_deadlines():
    """One middleware serving two event loops, each in its thread (a test client's portal next
    to the app's loop, an embedding): a slow request on one loop is still cut off at its deadline
    while the other loop serves requests, and each loop's timer only touches its own requests."""
    import threading

    middleware = _middleware(0.2)
    results: dict[str, object] = {}
    started = threading.Event()

    def slow_loop() -> None:
        async def run() -> tuple[int, float]:
            call = asyncio.create_task(_call(middleware, 1.0))
            await asyncio.sleep(0.01)
            started.set()
            return await call

        results["slow"] = asyncio.run(run())

    def busy_loop() -> None:
        started.wait(5)

        async def run() -> list[tuple[int, float]]:
            return [await _call(middleware, 0.01) for _ in range(20)]

        results["busy"] = asyncio.run(run())

    threads = [threading.Thread(target=slow_loop), threading.Thread(target=busy_loop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    status, elapsed = results["slow"]  # type: ignore[misc]
    assert status == 503 and 0.2 <= elapsed < 0.9, results["slow"]
    assert all(status == 200 for status, _ in results["busy"]), results["busy"]  # type: ignore[union-attr]
