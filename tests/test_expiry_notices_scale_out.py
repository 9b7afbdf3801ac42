"""Expiry notices across processes: two API instances and two workers on one PostgreSQL database
run their notice passes at the same time, and every notice goes out exactly once.

The processes run on the system clock, so the keys are moved instead of the clock: released by
one instance (with the notices off), then their expiry is set 14 days minus five minutes ahead
(the 14-day threshold crossed, still ahead when they were verified a day earlier), and only
then are the four processes started together, each running its first pass at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import pytest

from dbutil import query
from environment import empty_postgres, needs_postgres
from keyrelease.codes import verification_code
from keyrelease.testing.processes import KEYRELEASE, Process, Server, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env
from mailservers import smtp_server

pytestmark = [pytest.mark.live, needs_postgres]

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename } }"
KEYS = 24
PARTNER = "feeds@partner.example"


async def release_keys(server: Server, token: str) -> list[str]:
    """``KEYS`` verified keys expiring in 20 days, every third one a partner key."""
    headers = {"Authorization": f"Bearer {token}"}
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20 * 86400))
    ids = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for n in range(KEYS):
            fields = {"name": f"expiring {n}", "kind": "INSTITUTIONAL", "expiresAt": expires}
            if n % 3 == 0:
                fields |= {"kind": "PARTNER", "partnerName": "Partner", "partnerEmail": PARTNER}
            created = (await client.post("/graphql", json={"query": CREATE, "variables": {"i": fields}}, headers=headers)).json()
            assert created["data"]["createKey"]["__typename"] == "ApiKey", created
            key_id = created["data"]["createKey"]["id"]
            code = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
            verified = (
                await client.post("/graphql", json={"query": VERIFY, "variables": {"i": {"keyId": key_id, "code": code}}}, headers=headers)
            ).json()
            assert verified["data"]["verifyKey"]["__typename"] == "ApiKey", verified
            ids.append(key_id)
    return ids


@pytest.fixture
def empty_database(postgres_url: str) -> str:
    empty_postgres(postgres_url)
    return postgres_url


async def test_two_instances_and_two_workers_send_each_expiry_notice_exactly_once(empty_database, tmp_path):
    postgres_url = empty_database
    with smtp_server() as smtp:
        env = {
            **base_env(tmp_path, KEYRELEASE_DATABASE_URL=postgres_url),
            **smtp.env(),
            # one admin releases every key: room in their budget and their mutation rate
            "KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY": "1000",
            "KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "1000",
            "KEYRELEASE_RATE_LIMIT_ADMIN": "off",
        }
        made = run_cli(env, "admin", "create", "--institution", "Expiry U", "--email", "ops@expiry.example")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]

        setup = Server(env={**env, "KEYRELEASE_DISPATCHER": "false"}, log_path=tmp_path / "setup.log")
        setup.start()
        try:
            ids = await release_keys(setup, token)
        finally:
            setup.stop()
        await query(
            postgres_url,
            "UPDATE api_key SET verified_at = now() - interval '1 day', "
            "expires_at = now() + interval '14 days' - interval '5 minutes' WHERE expires_at IS NOT NULL",
        )
        assert await query(postgres_url, "SELECT id FROM outbox_message WHERE kind = 'EXPIRY_NOTICE'") == []

        workers = [Process([KEYRELEASE, "worker"], env, log_path=tmp_path / f"worker{i}.log").start() for i in range(2)]
        servers = [Server(env=env, log_path=tmp_path / f"api{i}.log") for i in range(2)]
        try:
            for server in servers:
                server.start()
            partner_keys = len(range(0, KEYS, 3))
            expected = KEYS + partner_keys

            def notices() -> list:
                return [d for d in smtp.handler.deliveries if "expires on" in d.parsed()["Subject"]]

            deadline = time.monotonic() + 30
            while len(notices()) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # give a duplicate, if there were one, the time to arrive
        finally:
            for server in servers:
                server.stop()
            for worker in workers:
                worker.stop()

    received = Counter((d.rcpt_tos[0], d.parsed()["Subject"]) for d in notices())
    assert len(received) == expected, "every notice arrived"
    assert set(received.values()) == {1}, f"duplicates: {[k for k, v in received.items() if v > 1]}"
    assert sum(1 for d in notices() if PARTNER in d.rcpt_tos) == partner_keys
    events = await query(postgres_url, "SELECT key_id, detail FROM key_event WHERE type = 'EXPIRY_NOTICE'")
    assert sorted(str(e["key_id"]) for e in events) == sorted(ids)
    assert {e["detail"] for e in events} == {"14d"}
    decided = await query(postgres_url, "SELECT threshold_seconds, outcome, count(*) AS n FROM expiry_notice GROUP BY 1, 2")
    assert {(r["threshold_seconds"], r["outcome"], r["n"]) for r in decided} == {
        (14 * 86400, "SENT", KEYS), (30 * 86400, "NOT_AHEAD", KEYS)
    }
    rows = await query(postgres_url, "SELECT status FROM outbox_message WHERE kind = 'EXPIRY_NOTICE'")
    assert len(rows) == expected and {r["status"] for r in rows} == {"SENT"}
