"""Rule 12: every limit holds under genuinely parallel requests, against a live server.

A real ``keyrelease serve`` process on SQLite; requests fired at once from many concurrent
HTTP connections. The test knows the server secret, so it derives the current code itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest

import live_server
from dbutil import query
from keyrelease.codes import verification_code
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import SECRET_KEY

pytestmark = pytest.mark.live

VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename } }"
RESEND = "mutation($i: ResendCodeInput!) { resendCode(input: $i) { __typename } }"
REVEAL = "mutation($i: RevealKeyInput!) { revealKey(input: $i) { __typename ... on KeyCredentials { clientSecret } } }"
CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { ... on ApiKey { id } } }"


# The module's live server and its environment, on each of BACKENDS (tests/live_server.py).
served = live_server.live_server


@pytest.fixture(scope="module")
def live(served):
    """The live server, the token of its one admin, and its database URL."""
    server, env = served
    token = run_cli(env, "admin", "create", "--institution", "Live U", "--email", "live@uni.example").stdout.strip().splitlines()[-1]
    return server, token, env["KEYRELEASE_DATABASE_URL"]


async def gql(http: httpx.AsyncClient, token: str | None, query: str, variables: dict) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def fire(server: Server, token: str | None, query: str, variables: list[dict]) -> list[dict]:
    """Send every request at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(variables), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
        return await asyncio.gather(*(gql(http, token, query, v) for v in variables))


async def new_key(server: Server, token: str, **fields) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        data = await gql(http, token, CREATE, {"i": {"name": "parallel", "kind": "INSTITUTIONAL", **fields}})
    return data["createKey"]["id"]


def own_admin(server: Server, email: str) -> str:
    """A token of an admin of their own: the module's admin has spent much of its rate limit and
    budget on the tests above by now, which would refuse these tests' requests."""
    return run_cli({**server.env}, "admin", "create", "--institution", "Live U", "--email", email).stdout.strip().splitlines()[-1]


async def key_row(database_url: str, key_id: str) -> dict:
    [row] = await query(database_url, "SELECT * FROM api_key WHERE id = ?", uuid.UUID(key_id))
    return row


async def event_counts(database_url: str, key_id: str) -> Counter:
    rows = await query(database_url, "SELECT type FROM key_event WHERE key_id = ?", uuid.UUID(key_id))
    return Counter(row["type"] for row in rows)


async def partner_mails(database_url: str, key_id: str) -> int:
    rows = await query(
        database_url, "SELECT id FROM outbox_message WHERE key_id = ? AND kind = 'PARTNER_OTP'", uuid.UUID(key_id)
    )
    return len(rows)


async def test_forty_parallel_wrong_codes_count_exactly_five_and_lock(live):
    server, token, db_path = live
    key_id = await new_key(server, token)
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    results = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": wrong}}] * 40)
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    row = await key_row(db_path, key_id)
    assert row["attempts_used"] == 5
    assert row["locked_at"] is not None and row["lock_reason"] == "ATTEMPTS"
    counts = await event_counts(db_path, key_id)
    assert counts["VERIFICATION_FAILED"] == 5 and counts["LOCKED"] == 1


async def test_twenty_parallel_right_codes_activate_once_and_mail_the_partner_once(live):
    server, token, db_path = live
    key_id = await new_key(server, token, kind="PARTNER", partnerEmail="p@acme.example")
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    results = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": right}}] * 20)
    outcomes = Counter(r["verifyKey"]["__typename"] for r in results)
    assert outcomes == {"ApiKey": 1, "VerificationError": 19}
    counts = await event_counts(db_path, key_id)
    assert counts["VERIFIED"] == 1 and counts["PARTNER_OTP_SENT"] == 1
    assert await partner_mails(db_path, key_id) == 1
    assert (await key_row(db_path, key_id))["attempts_used"] == 0


async def test_parallel_resends_never_exceed_three(live):
    server, token, db_path = live
    key_id = await new_key(server, token)
    results = await fire(server, token, RESEND, [{"i": {"keyId": key_id}}] * 20)
    assert Counter(r["resendCode"]["__typename"] for r in results) == {"ApiKey": 3, "VerificationError": 17}
    row = await key_row(db_path, key_id)
    assert row["resends_used"] == 3 and row["code_generation"] == 3
    assert (await event_counts(db_path, key_id))["CODE_RESENT"] == 3


async def test_parallel_reveals_return_the_secret_once(live):
    server, token, db_path = live
    key_id = await new_key(server, token)
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    [verified] = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": right}}])
    assert verified["verifyKey"]["__typename"] == "ApiKey"
    results = await fire(server, token, REVEAL, [{"i": {"keyId": key_id}}] * 20)
    secrets = [r["revealKey"]["clientSecret"] for r in results if r["revealKey"]["__typename"] == "KeyCredentials"]
    assert len(secrets) == 1
    assert (await event_counts(db_path, key_id))["REVEALED"] == 1


async def test_parallel_creates_respect_the_pending_cap(live):
    server, _, _ = live
    token = own_admin(server, "cap@uni.example")
    results = await fire(
        server,
        token,
        "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename } }",
        [{"i": {"name": f"k{i}", "kind": "INSTITUTIONAL"}} for i in range(15)],
    )
    assert Counter(r["createKey"]["__typename"] for r in results) == {"ApiKey": 5, "PendingKeyLimitError": 10}


ROTATE = "mutation($i: RotateKeyInput!) { rotateKey(input: $i) { __typename } }"


async def released(server: Server, token: str) -> str:
    key_id = await new_key(server, token)
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    [verified] = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": right}}])
    [revealed] = await fire(server, token, REVEAL, [{"i": {"keyId": key_id}}])
    assert verified["verifyKey"]["__typename"] == "ApiKey" and revealed["revealKey"]["clientSecret"]
    return key_id


async def test_a_rotation_under_parallel_requests_opens_once_counts_five_and_reveals_once(live):
    server, _, db_path = live
    token = own_admin(server, "rotates@uni.example")
    key_id = await released(server, token)
    started = await fire(server, token, ROTATE, [{"i": {"keyId": key_id}}] * 10)
    assert Counter(r["rotateKey"]["__typename"] for r in started) == {"ApiKey": 1, "ValidationError": 9}
    [rotation] = await query(db_path, "SELECT id FROM key_rotation WHERE key_id = ?", uuid.UUID(key_id))
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(str(rotation["id"])), 0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    results = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": wrong}}] * 4)
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    verified = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": right}}] * 10)
    assert Counter(r["verifyKey"]["__typename"] for r in verified) == {"ApiKey": 1, "VerificationError": 9}
    reveals = await fire(server, token, REVEAL, [{"i": {"keyId": key_id}}] * 10)
    assert sum(r["revealKey"]["__typename"] == "KeyCredentials" for r in reveals) == 1
    counts = await event_counts(db_path, key_id)
    assert counts["ROTATION_STARTED"] == 1 and counts["ROTATION_VERIFIED"] == 1 and counts["ROTATION_REVEALED"] == 1
    assert counts["VERIFICATION_FAILED"] == 4  # the right code's losers were not counted: verified first


async def test_forty_parallel_wrong_codes_on_a_rotation_count_exactly_five(live):
    server, _, db_path = live
    token = own_admin(server, "guesses@uni.example")
    key_id = await released(server, token)
    [started] = await fire(server, token, ROTATE, [{"i": {"keyId": key_id}}])
    assert started["rotateKey"]["__typename"] == "ApiKey"
    [rotation] = await query(db_path, "SELECT id FROM key_rotation WHERE key_id = ?", uuid.UUID(key_id))
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(str(rotation["id"])), 0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    results = await fire(server, token, VERIFY, [{"i": {"keyId": key_id, "code": wrong}}] * 40)
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    [row] = await query(db_path, "SELECT * FROM key_rotation WHERE key_id = ?", uuid.UUID(key_id))
    assert row["attempts_used"] == 5 and row["locked_at"] is not None and row["lock_reason"] == "ATTEMPTS"
    counts = await event_counts(db_path, key_id)
    assert counts["VERIFICATION_FAILED"] == 5 and counts["ROTATION_LOCKED"] == 1
    assert (await key_row(db_path, key_id))["locked_at"] is None
