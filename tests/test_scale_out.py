"""Scale-out: two API instances and two mail workers on one PostgreSQL database.

Every limit holds across processes (the database decides, through conditional updates), and
every outbox message is delivered exactly once although four dispatchers compete for it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter

import httpx
import pytest
from environment import empty_postgres, needs_postgres
from dbutil import query
from mailservers import smtp_server

from keyrelease.codes import verification_code
from keyrelease.testing.processes import KEYRELEASE, Server, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env

pytestmark = [
    pytest.mark.live,
    needs_postgres,
]

VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename } }"
RESEND = "mutation($i: ResendCodeInput!) { resendCode(input: $i) { __typename } }"
CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
CREATE_TYPENAME = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename } }"


@pytest.fixture(scope="module")
def cluster(postgres_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    empty_postgres(postgres_url)
    with smtp_server() as smtp:
        env = {**base_env(tmp, KEYRELEASE_DATABASE_URL=postgres_url), **smtp.env()}
        token = run_cli(env, "admin", "create", "--institution", "Scale U", "--email", "ops@scale.example")
        assert token.returncode == 0, token.stderr
        servers = [Server(env=env, log_path=tmp / f"api{i}.log") for i in range(2)]
        workers = [
            subprocess.Popen(
                [KEYRELEASE, "worker"],
                env={**os.environ, **env},
                stdout=open(tmp / f"worker{i}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for i in range(2)
        ]
        try:
            for server in servers:
                server.start()
            yield servers, token.stdout.strip().splitlines()[-1], postgres_url, smtp
        finally:
            for server in servers:
                server.stop()
            for worker in workers:
                worker.terminate()
                worker.wait(10)


async def spread(servers, token, query_text, variables, n):
    """``n`` requests at once, alternating between the instances, each on its own connection."""
    clients = [
        httpx.AsyncClient(base_url=s.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        for s in servers
    ]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post("/graphql", json={"query": query_text, "variables": variables}, headers=headers)
                for i in range(n)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json()["data"] for r in responses]


async def create(servers, token, **fields) -> str:
    [data] = await spread(servers, token, CREATE, {"i": {"name": "scale", "kind": "INSTITUTIONAL", **fields}}, 1)
    return data["createKey"]["id"]


async def events(url, key_id) -> Counter:
    return Counter(r["type"] for r in await query(url, "SELECT type FROM key_event WHERE key_id = ?", uuid.UUID(key_id)))


async def test_sixty_wrong_guesses_across_instances_count_exactly_five(cluster):
    servers, token, url, _ = cluster
    key_id = await create(servers, token)
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    results = await spread(servers, token, VERIFY, {"i": {"keyId": key_id, "code": wrong}}, 60)
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    [row] = await query(url, "SELECT attempts_used, lock_reason FROM api_key WHERE id = ?", uuid.UUID(key_id))
    assert row == {"attempts_used": 5, "lock_reason": "ATTEMPTS"}
    counts = await events(url, key_id)
    assert counts["VERIFICATION_FAILED"] == 5 and counts["LOCKED"] == 1


async def test_twenty_right_codes_across_instances_activate_once_and_mail_the_partner_once(cluster):
    servers, token, url, smtp = cluster
    key_id = await create(servers, token, kind="PARTNER", partnerEmail="partner@acme.example")
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    results = await spread(servers, token, VERIFY, {"i": {"keyId": key_id, "code": right}}, 20)
    assert Counter(r["verifyKey"]["__typename"] for r in results) == {"ApiKey": 1, "VerificationError": 19}
    counts = await events(url, key_id)
    assert counts["VERIFIED"] == 1 and counts["PARTNER_OTP_SENT"] == 1
    deadline = time.monotonic() + 15
    while not smtp.handler.to("partner@acme.example") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)  # give a duplicate, if there were one, the time to arrive
    assert len(smtp.handler.to("partner@acme.example")) == 1


async def test_parallel_resends_across_instances_never_exceed_three(cluster):
    servers, token, url, _ = cluster
    key_id = await create(servers, token)
    results = await spread(servers, token, RESEND, {"i": {"keyId": key_id}}, 20)
    assert Counter(r["resendCode"]["__typename"] for r in results) == {"ApiKey": 3, "VerificationError": 17}
    [row] = await query(url, "SELECT resends_used FROM api_key WHERE id = ?", uuid.UUID(key_id))
    assert row["resends_used"] == 3


async def test_every_outbox_message_is_delivered_exactly_once(cluster):
    servers, token, url, smtp = cluster
    await asyncio.gather(*(create(servers, token, name=f"burst {i}") for i in range(4)))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = await query(url, "SELECT status FROM outbox_message")
        if all(r["status"] in ("SENT", "EXPIRED", "FAILED") for r in rows):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    rows = await query(url, "SELECT id, status FROM outbox_message")
    assert rows and {r["status"] for r in rows} == {"SENT"}
    received = Counter(d.parsed()["Message-ID"].strip("<>").partition("@")[0] for d in smtp.handler.deliveries)
    assert len(received) == len(rows), "every message arrived"
    assert set(received.values()) == {1}, f"duplicates: {[k for k, v in received.items() if v > 1]}"
    assert {str(r["id"]) for r in rows} == set(received)


async def new_admin(servers, institution: str, email: str) -> str:
    created = run_cli(servers[0].env, "admin", "create", "--institution", institution, "--email", email)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


async def at_once(servers, token, requests: list[tuple[str, dict]]) -> list[dict]:
    """Every (query, variables) at once, alternating between the instances, each on its own connection."""
    clients = [
        httpx.AsyncClient(base_url=s.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) for s in servers
    ]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post("/graphql", json={"query": q, "variables": v}, headers=headers)
                for i, (q, v) in enumerate(requests)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json()["data"] for r in responses]


async def test_parallel_resends_across_instances_never_exceed_the_hourly_code_emails(cluster):
    servers, _, url, _ = cluster
    token = await new_admin(servers, "Budget U", "budget@scale.example")
    keys = [await create(servers, token, name=f"budget {i}") for i in range(5)]  # 5 code emails of 10
    results = await at_once(servers, token, [(RESEND, {"i": {"keyId": keys[i % 5]}}) for i in range(30)])
    outcomes = Counter(r["resendCode"]["__typename"] for r in results)
    assert outcomes["ApiKey"] == 5, outcomes
    assert set(outcomes) <= {"ApiKey", "CodeEmailLimitError", "VerificationError"}
    rows = await query(url, "SELECT count(*) AS n FROM outbox_message WHERE recipient = ?", "budget@scale.example")
    assert rows[0]["n"] == 10


async def test_locks_landing_on_two_instances_at_once_mail_each_institution_admin_once(cluster):
    servers, _, url, smtp = cluster
    token = await new_admin(servers, "Guess U", "ada@guess.example")
    await new_admin(servers, "Guess U", "bob@guess.example")
    keys = [await create(servers, token, name=f"guessed {i}") for i in range(3)]
    wrong = {k: f"{(int(verification_code(SECRET_KEY.encode(), uuid.UUID(k), 0)) + 1) % 1_000_000:06d}" for k in keys}
    for key_id in keys:
        await spread(servers[:1], token, VERIFY, {"i": {"keyId": key_id, "code": wrong[key_id]}}, 4)
    results = await at_once(servers, token, [(VERIFY, {"i": {"keyId": k, "code": wrong[k]}}) for k in keys])
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    alerts = await query(url, "SELECT recipient FROM outbox_message WHERE kind = 'CREATION_SUSPENDED'")
    assert Counter(r["recipient"] for r in alerts) == {"ada@guess.example": 1, "bob@guess.example": 1}
    [refused] = await at_once(servers, token, [(CREATE_TYPENAME, {"i": {"name": "again", "kind": "INSTITUTIONAL"}})])
    assert refused["createKey"]["__typename"] == "KeyCreationSuspendedError"

    def alerts_to(address: str) -> list:
        return [d for d in smtp.handler.to(address) if "suspended" in d.parsed()["Subject"]]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (alerts_to("ada@guess.example") and alerts_to("bob@guess.example")):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)  # give a duplicate, if there were one, the time to arrive
    assert len(alerts_to("ada@guess.example")) == 1
    assert len(alerts_to("bob@guess.example")) == 1
