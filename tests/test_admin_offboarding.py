"""Admin offboarding (`keyrelease admin disable` / `enable`), through the real CLI and a live
`keyrelease serve`, on SQLite and PostgreSQL: a disabled admin's tokens get the revoked answer
byte for byte, their pending keys lock (ADMIN_DISABLED) and can never be verified, their active
keys keep working and stay with the institution's other admins, enabling restores sign-in and
no lock; and verifyKey or createKey racing the disable never leaves a key both active and
locked, nor a pending key behind."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

import live_server
from dbutil import query
from keyrelease import db
from keyrelease.clock import SystemClock
from keyrelease.codes import verification_code
from keyrelease.service.admins import create_admin
from keyrelease.service.offboarding import disable_admin
from keyrelease.service.results import GENERIC_VERIFICATION_ERROR
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import SECRET_KEY
from keyrelease.testing.tokens import request_token

pytestmark = pytest.mark.live

ME = "{ me { email } }"
CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename ... on Error { message } } }"
REVEAL = "mutation($i: RevealKeyInput!) { revealKey(input: $i) { ... on KeyCredentials { clientId clientSecret } } }"
REVOKE = "mutation($i: RevokeKeyInput!) { revokeKey(input: $i) { __typename ... on ApiKey { status } } }"
KEY = "query($id: ID!) { key(id: $id) { status lockReason events { type detail } } }"
KEYS = "{ keys(first: 100) { edges { node { id status lockReason } } } }"


# The module's live server and its environment, on each of BACKENDS (tests/live_server.py).
live = live_server.live_server


def cli(env: dict, *args: str):
    return run_cli(env, "admin", *args)


def new_admin(env: dict, institution: str = "Offboard U") -> tuple[str, str]:
    """A new admin of ``institution`` through the CLI: their email and token."""
    email = f"{uuid.uuid4().hex[:10]}@uni.example"
    created = cli(env, "create", "--institution", institution, "--email", email)
    assert created.returncode == 0, created.stderr
    return email, created.stdout.strip().splitlines()[-1]


async def post(server: Server, token: str | None, document: str, variables: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.post("/graphql", json={"query": document, "variables": variables or {}}, headers=headers)


async def data(server: Server, token: str, document: str, variables: dict | None = None) -> dict:
    response = await post(server, token, document, variables)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def pending_key(server: Server, token: str, **fields) -> tuple[str, str]:
    """A new key, PENDING_VERIFICATION: its id and its current code."""
    created = await data(server, token, CREATE, {"i": {"name": "offboard", "kind": "INSTITUTIONAL", **fields}})
    key_id = created["createKey"]["id"]
    return key_id, verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)


async def released_key(server: Server, token: str) -> tuple[str, dict]:
    key_id, code = await pending_key(server, token)
    verified = await data(server, token, VERIFY, {"i": {"keyId": key_id, "code": code}})
    assert verified["verifyKey"]["__typename"] == "ApiKey", verified
    return key_id, (await data(server, token, REVEAL, {"i": {"keyId": key_id}}))["revealKey"]


async def token_status(server: Server, creds: dict) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return (await request_token(http, creds["clientId"], creds["clientSecret"])).status_code


async def test_a_disabled_admins_tokens_get_the_revoked_answer_byte_for_byte(live):
    server, env = live
    ada, ada_token = new_admin(env)
    extra = cli(env, "token", "--email", ada)
    assert extra.returncode == 0, extra.stderr
    ada_second = extra.stdout.strip().splitlines()[-1]
    _, revoked = new_admin(env)
    assert cli(env, "revoke-token", revoked).returncode == 0
    for document in (ME, KEYS):
        assert (await post(server, ada_token, document)).status_code == 200
    revoked_answers = [await post(server, revoked, document, {"i": {"name": "x", "kind": "INSTITUTIONAL"}})
                       for document in (ME, KEYS, CREATE)]

    done = cli(env, "disable", "--email", ada.upper())
    assert done.returncode == 0, done.stderr
    assert f"{ada} disabled at" in done.stdout and "every token of theirs is refused" in done.stdout
    for token in (ada_token, ada_second):
        for document, answer in zip((ME, KEYS, CREATE), revoked_answers, strict=True):
            refused = await post(server, token, document, {"i": {"name": "x", "kind": "INSTITUTIONAL"}})
            assert (refused.status_code, refused.content) == (answer.status_code, answer.content)
    assert b"UNAUTHENTICATED" in revoked_answers[0].content

    enabled = cli(env, "enable", "--email", ada)
    assert enabled.returncode == 0 and "enabled" in enabled.stdout, enabled.stderr
    assert (await data(server, ada_token, ME)) == {"me": {"email": ada}}
    # enabling does not bring back what was revoked or expired
    assert (await post(server, revoked, ME)).content == revoked_answers[0].content


async def test_pending_keys_lock_active_keys_keep_working_with_the_other_admins_and_enable_unlocks_nothing(live):
    server, env = live
    institution = f"Inst {uuid.uuid4().hex[:6]}"
    ada, ada_token = new_admin(env, institution)
    _, bob_token = new_admin(env, institution)
    pending_id, code = await pending_key(server, ada_token)
    active_id, creds = await released_key(server, ada_token)
    assert await token_status(server, creds) == 200

    done = cli(env, "disable", "--email", ada)
    assert done.returncode == 0, done.stderr
    assert "1 pending key(s) locked (lock reason ADMIN_DISABLED); 1 active key(s) keep working" in done.stdout

    # the active key still gets tokens, and Bob sees both keys
    assert await token_status(server, creds) == 200
    listed = {edge["node"]["id"]: edge["node"] for edge in (await data(server, bob_token, KEYS))["keys"]["edges"]}
    assert listed[pending_id] == {"id": pending_id, "status": "LOCKED", "lockReason": "ADMIN_DISABLED"}
    assert listed[active_id] == {"id": active_id, "status": "ACTIVE", "lockReason": None}
    locked = (await data(server, bob_token, KEY, {"id": pending_id}))["key"]
    assert [e["type"] for e in locked["events"]][-2:] == ["ADMIN_DISABLED", "LOCKED"]
    assert locked["events"][-1]["detail"] == "ADMIN_DISABLED"
    active = (await data(server, bob_token, KEY, {"id": active_id}))["key"]
    assert active["events"][-1] == {"type": "ADMIN_DISABLED", "detail": "creator disabled; the key keeps working"}

    # the lock is not charged to Ada's budget: that counts keys locked by wrong codes
    url = env["KEYRELEASE_DATABASE_URL"]
    spent = await query(url, "SELECT e.item FROM admin_budget_entry e JOIN admin a ON a.id = e.admin_id WHERE a.email = ?", ada)
    assert "KEY_LOCKED" not in {row["item"] for row in spent}

    # enabling restores sign-in, never the lock: the right code now gets the generic error
    enabled = cli(env, "enable", "--email", ada)
    assert enabled.returncode == 0, enabled.stderr
    assert "keys locked by the disable stay locked" in enabled.stdout
    answer = (await data(server, ada_token, VERIFY, {"i": {"keyId": pending_id, "code": code}}))["verifyKey"]
    assert answer == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}
    assert (await data(server, bob_token, KEY, {"id": pending_id}))["key"]["status"] == "LOCKED"
    assert (await data(server, ada_token, CREATE, {"i": {"name": "after", "kind": "INSTITUTIONAL"}}))[
        "createKey"]["__typename"] == "ApiKey"

    # Bob manages the active key: his revocation stops it
    revoked = (await data(server, bob_token, REVOKE, {"i": {"keyId": active_id}}))["revokeKey"]
    assert revoked == {"__typename": "ApiKey", "status": "REVOKED"}
    assert await token_status(server, creds) == 401


async def test_disabling_twice_changes_nothing_and_says_so_and_an_unknown_email_is_an_error(live):
    server, env = live
    ada, ada_token = new_admin(env)
    key_id, _ = await pending_key(server, ada_token)
    assert cli(env, "disable", "--email", ada).returncode == 0
    url = env["KEYRELEASE_DATABASE_URL"]
    before = await query(url, "SELECT type, detail FROM key_event WHERE key_id = ? ORDER BY id", uuid.UUID(key_id))
    [row] = await query(url, "SELECT disabled_at FROM admin WHERE email = ?", ada)

    again = cli(env, "disable", "--email", ada)
    assert again.returncode == 0, again.stderr
    assert "was already disabled" in again.stdout and "nothing changed" in again.stdout
    assert await query(url, "SELECT type, detail FROM key_event WHERE key_id = ? ORDER BY id", uuid.UUID(key_id)) == before
    assert await query(url, "SELECT disabled_at FROM admin WHERE email = ?", ada) == [row]
    [line] = [line for line in cli(env, "list").stdout.splitlines() if line.startswith(f"{ada}\t")]
    assert "\tdisabled " in line

    assert cli(env, "enable", "--email", ada).returncode == 0
    not_disabled = cli(env, "enable", "--email", ada)
    assert not_disabled.returncode == 0 and "is not disabled; nothing changed" in not_disabled.stdout

    for command in ("disable", "enable"):
        unknown = cli(env, command, "--email", "nobody@uni.example")
        assert unknown.returncode == 2
        assert unknown.stderr.strip() == "error: no admin with email nobody@uni.example"
    [line] = [line for line in cli(env, "list").stdout.splitlines() if line.startswith(f"{ada}\t")]
    assert "disabled" not in line


ROUNDS = 10


async def test_verify_and_create_racing_the_disable_never_leave_a_key_active_and_locked_or_pending(live):
    """Each round: an admin with three pending keys; at once, two right-code verifyKey calls per
    key and two createKey calls over HTTP (each on its own connection, to the server process)
    and the disable (in this process, on its own database connection: the function the CLI
    calls, started at the very moment, which a CLI process's start-up would blur). Every other
    round the disable starts once the first verifyKey answered, so both sides win some."""
    server, env = live
    url = env["KEYRELEASE_DATABASE_URL"]
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
    EXECUTOR_CACHE.clear()  # Tortoise caches statements per connection name, in one dialect
    async with db.connected(url), httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
        for round_number in range(ROUNDS):
            email = f"{uuid.uuid4().hex[:10]}@uni.example"
            token = (await create_admin(SystemClock(), institution="Race U", email=email)).token
            keys = [await pending_key(server, token) for _ in range(3)]
            headers = {"Authorization": f"Bearer {token}"}

            async def call(document: str, variables: dict, headers: dict = headers) -> str:
                response = await http.post("/graphql", json={"query": document, "variables": variables}, headers=headers)
                body = response.json()
                if body.get("errors"):
                    return body["errors"][0]["extensions"]["code"]
                return next(iter(body["data"].values()))["__typename"]

            verifies = [call(VERIFY, {"i": {"keyId": key_id, "code": code}}) for key_id, code in keys for _ in range(2)]
            creates = [call(CREATE, {"i": {"name": "racer", "kind": "INSTITUTIONAL"}}) for _ in range(2)]
            tasks = [asyncio.ensure_future(request) for request in (*verifies, *creates)]
            if round_number % 2:  # every other round the disable starts once one verifyKey answered
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            disabled, *answers = await asyncio.gather(disable_admin(SystemClock(), email), *tasks)
            assert disabled.changed
            assert set(answers) <= {"ApiKey", "VerificationError", "UNAUTHENTICATED"}, answers

            rows = await query(
                url, "SELECT k.id, k.verified_at, k.locked_at, k.lock_reason FROM api_key k "
                "JOIN admin a ON a.id = k.created_by_id WHERE a.email = ?", email,
            )
            assert len(rows) == 3 + answers[6:].count("ApiKey")
            for key_id, answer_pair in zip((k for k, _ in keys), zip(answers[0:6:2], answers[1:6:2], strict=True), strict=True):
                [row] = [r for r in rows if str(r["id"]) == key_id]
                assert ("ApiKey" in answer_pair) == (row["verified_at"] is not None), (answer_pair, row)
            for row in rows:
                events = Counter(
                    r["type"] for r in await query(url, "SELECT type FROM key_event WHERE key_id = ?", uuid.UUID(str(row["id"])))
                )
                assert events["ADMIN_DISABLED"] == 1, events
                if row["verified_at"] is not None:
                    assert row["locked_at"] is None and events["LOCKED"] == 0, (row, events)
                    outcomes["verified first"] += 1
                else:  # never left pending: locked by the disable, never verified afterwards
                    assert row["lock_reason"] == "ADMIN_DISABLED" and row["locked_at"] is not None, row
                    assert events["LOCKED"] == 1 and events["VERIFIED"] == 0, events
                    outcomes["locked"] += 1
            outcomes.update(f"answer {answer}" for answer in answers)
    assert outcomes["locked"] and outcomes["verified first"], outcomes  # both sides won some
