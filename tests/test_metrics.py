"""Prometheus metrics at /metrics: what the service did, counted by outcome, never a secret.

Counters live in the process, so each test compares before and after."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyrelease.testing.api import CODE_LINE, released_key
from keyrelease.testing.tokens import request_token


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_verifications_locks_and_resends_are_counted_by_outcome(api, client):
    before = await scrape(client)
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    await api.resend(ada, key["id"])
    for _ in range(5):
        await api.verify(ada, key["id"], "000000" if code != "000000" else "111111")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("keyrelease_verifications_total", outcome="failed") == 5
    assert delta("keyrelease_key_locks_total", reason="ATTEMPTS") == 1
    assert delta("keyrelease_code_resends_total", outcome="sent") == 1
    assert delta("keyrelease_mail_deliveries_total", kind="VERIFICATION_CODE", outcome="sent") >= 1
    assert delta("keyrelease_mail_delivery_latency_seconds_count", kind="VERIFICATION_CODE") >= 1


async def test_token_grants_and_refusals_and_reveals_are_counted(api, client):
    ada = await api.admin()
    before = await scrape(client)
    _, creds = await released_key(api, ada)
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    assert (await request_token(client, creds["clientId"], "wrong")).status_code == 401
    after = await scrape(client)
    for labels, expected in (({"outcome": "granted"}, 1), ({"outcome": "invalid_client"}, 1)):
        got = value(after, "keyrelease_token_requests_total", **labels) - value(
            before, "keyrelease_token_requests_total", **labels
        )
        assert got == expected, labels
    assert value(after, "keyrelease_verifications_total", outcome="verified") - value(
        before, "keyrelease_verifications_total", outcome="verified"
    ) == 1
    assert value(after, "keyrelease_reveals_total", kind="institutional", outcome="revealed") - value(
        before, "keyrelease_reveals_total", kind="institutional", outcome="revealed"
    ) == 1


class TestRateLimitHits:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_TOKEN_CLIENT": "1/minute"}

    async def test_rate_limit_hits_are_counted_by_rule(self, client):
        before = await scrape(client)
        client_id = f"us-east-1#{uuid.uuid4()}"
        await request_token(client, client_id, "x")
        assert (await request_token(client, client_id, "x")).status_code == 429
        after = await scrape(client)
        assert value(after, "keyrelease_rate_limited_total", rule="token_client") - value(
            before, "keyrelease_rate_limited_total", rule="token_client"
        ) == 1
        assert value(after, "keyrelease_token_requests_total", outcome="rate_limited") - value(
            before, "keyrelease_token_requests_total", outcome="rate_limited"
        ) == 1


class TestOutboxDepth:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_DISPATCHER": "false"}

    async def test_the_outbox_depth_is_read_when_scraped(self, api, client):
        assert value(await scrape(client), "keyrelease_outbox_messages", status="PENDING") == 0
        ada = await api.admin()
        await api.create_key(ada, name="one")
        await api.create_key(ada, name="two")
        samples = await scrape(client)
        assert value(samples, "keyrelease_outbox_messages", status="PENDING") == 2
        assert value(samples, "keyrelease_outbox_messages", status="SENDING") == 0


async def test_no_code_or_secret_reaches_the_metrics(api, client):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    mails = await api.mails_to(ada.email)
    code = CODE_LINE.search(mails[0].text).group(1)
    text = (await client.get("/metrics")).text
    for secret in (creds["clientSecret"], creds["clientId"], key["id"], ada.token, ada.email, f'"{code}"'):
        assert secret not in text
