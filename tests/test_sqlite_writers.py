"""SQLite with more than one writing process: ``keyrelease serve`` busy with requests while an
operator runs ``keyrelease admin create`` beside it. Neither may fail with "database is
locked": every transaction takes the write lock when it begins (keyrelease/db_sqlite.py) and
waits its turn, instead of failing when a reader's stale snapshot tries to write."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import SECRET_KEY, base_env
from liveserver import Server, run_cli

from keyrelease.codes import verification_code

pytestmark = pytest.mark.live

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename ... on ApiKey { status } } }"
KEYRELEASE = str(Path(sys.executable).parent / "keyrelease")
SECONDS = 6


async def flows(server: Server, token: str, stop: float) -> tuple[int, list[str]]:
    done, problems = 0, []
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        while time.monotonic() < stop:
            created = (await http.post("/graphql", json={"query": CREATE, "variables": {
                "i": {"name": f"busy {uuid.uuid4().hex[:6]}", "kind": "INSTITUTIONAL"}}})).json()
            if "errors" in created or created["data"]["createKey"]["__typename"] != "ApiKey":
                problems.append(str(created))
                continue
            key_id = created["data"]["createKey"]["id"]
            code = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
            verified = (await http.post("/graphql", json={"query": VERIFY, "variables": {
                "i": {"keyId": key_id, "code": code}}})).json()
            if "errors" in verified or verified["data"]["verifyKey"].get("status") != "ACTIVE":
                problems.append(str(verified))
            done += 1
    return done, problems


async def admin_creates(env: dict[str, str], stop: float) -> tuple[int, list[str]]:
    done, problems = 0, []
    while time.monotonic() < stop:
        process = await asyncio.create_subprocess_exec(
            KEYRELEASE, "admin", "create", "--institution", "Busy U", "--email", f"{uuid.uuid4().hex[:8]}@busy.example",
            env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        done += 1
        if process.returncode != 0:
            problems.append(err.decode(errors="replace")[-300:])
    return done, problems


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
    try:
        stop = time.monotonic() + SECONDS
        (flows_a, problems_a), (flows_b, problems_b), (clis, cli_problems) = await asyncio.gather(
            flows(server, token, stop), flows(server, token, stop), admin_creates(env, stop)
        )
    finally:
        server.stop()
    assert problems_a + problems_b == [], (problems_a + problems_b)[:3]
    assert cli_problems == [], cli_problems[:3]
    assert flows_a + flows_b >= 20 and clis >= 5, (flows_a, flows_b, clis)  # they really overlapped
