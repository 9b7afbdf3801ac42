"""SQLite with more than one writing process: ``keyrelease serve`` busy with requests while an
operator runs ``keyrelease admin create`` beside it. Neither may fail with "database is
locked": every transaction takes the write lock when it begins (keyrelease/db/sqlite.py) and
waits its turn, instead of failing when a reader's stale snapshot tries to write."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from dbutil import query

from keyrelease.codes import verification_code
from keyrelease.testing.processes import KEYRELEASE, Server, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env

pytestmark = pytest.mark.live

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename ... on ApiKey { status } } }"
#: The CLI runs until this many of its writes began while a server write was in flight.
OVERLAPS = 3
MAX_CLI_RUNS = 40


class Request:
    """One write request to the server: when it was sent and when its answer came (None while in flight)."""

    def __init__(self) -> None:
        self.sent = datetime.now(UTC)
        self.answered: datetime | None = None

    def in_flight_at(self, moment: datetime) -> bool:
        return self.sent <= moment and (self.answered is None or moment <= self.answered)


async def flows(server: Server, token: str, done: asyncio.Event, requests: list[Request]) -> tuple[int, list[str]]:
    completed, problems = 0, []

    async def write(http: httpx.AsyncClient, query: str, variables: dict) -> dict:
        request = Request()
        requests.append(request)
        try:
            return (await http.post("/graphql", json={"query": query, "variables": variables})).json()
        finally:
            request.answered = datetime.now(UTC)

    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        while not done.is_set():
            created = await write(http, CREATE, {"i": {"name": f"busy {uuid.uuid4().hex[:6]}", "kind": "INSTITUTIONAL"}})
            if "errors" in created or created["data"]["createKey"]["__typename"] != "ApiKey":
                problems.append(str(created))
                continue
            key_id = created["data"]["createKey"]["id"]
            code = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
            verified = await write(http, VERIFY, {"i": {"keyId": key_id, "code": code}})
            if "errors" in verified or verified["data"]["verifyKey"].get("status") != "ACTIVE":
                problems.append(str(verified))
            completed += 1
    return completed, problems


async def admin_creates(env: dict[str, str], done: asyncio.Event, requests: list[Request]) -> tuple[int, int, list[str]]:
    """Run ``keyrelease admin create`` until OVERLAPS of its writes began (the admin's
    ``created_at``, taken as its transaction starts) while a server write was in flight."""
    runs, overlaps, problems = 0, 0, []
    try:
        while overlaps < OVERLAPS and runs < MAX_CLI_RUNS:
            email = f"{uuid.uuid4().hex[:8]}@busy.example"
            process = await asyncio.create_subprocess_exec(
                KEYRELEASE, "admin", "create", "--institution", "Busy U", "--email", email,
                env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            _, err = await process.communicate()
            runs += 1
            if process.returncode != 0:
                problems.append(err.decode(errors="replace")[-300:])
                continue
            [row] = await query(env["KEYRELEASE_DATABASE_URL"], "SELECT created_at FROM admin WHERE email = ?", email)
            began = datetime.fromisoformat(row["created_at"])
            overlaps += any(request.in_flight_at(began) for request in list(requests))
    finally:
        done.set()
    return runs, overlaps, problems


async def test_the_cli_and_a_busy_server_both_write_without_locking_errors(tmp_path):
    env = base_env(
        tmp_path,
        KEYRELEASE_MAIL_TRANSPORT="console",
        KEYRELEASE_RATE_LIMIT_ADMIN="off",
        KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY="100000",
        KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR="100000",
    )
    token = run_cli(env, "admin", "create", "--institution", "Busy U", "--email", "busy@uni.example").stdout.strip().splitlines()[-1]
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    done, requests = asyncio.Event(), []
    try:
        (flows_a, problems_a), (flows_b, problems_b), (runs, overlaps, cli_problems) = await asyncio.gather(
            flows(server, token, done, requests), flows(server, token, done, requests), admin_creates(env, done, requests)
        )
    finally:
        server.stop()
    assert problems_a + problems_b == [], (problems_a + problems_b)[:3]
    assert cli_problems == [], cli_problems[:3]
    # They really overlapped: that many CLI writes began while a server write was in flight.
    assert overlaps == OVERLAPS, (runs, overlaps, flows_a, flows_b)
