"""What the stages measure against: a database with an admin, a key made through GraphQL, and
many more keys cloned from it in bulk; and the GraphQL calls the flows make."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
from options import RATE_LIMITS_ON
from processes import run_cli

from keyrelease.testing.settings import base_env

SECRET_KEY = "bench-server-secret-0123456789abcdef-0123456789abcdef"
BULK_SECRET = "bench-bulk-secret-" + "x" * 32
BASE_KEYS = 1000

KEY_QUERY = "query($id: ID!) { key(id: $id) { id name kind status clientId createdAt expiresAt revealed } }"
CREATE = ("mutation($input: CreateKeyInput!) { createKey(input: $input) { __typename "
          "... on ApiKey { id status } ... on Error { message } } }")
VERIFY = ("mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { __typename "
          "... on ApiKey { id status } ... on Error { message } } }")
REVEAL = ("mutation($input: RevealKeyInput!) { revealKey(input: $input) { __typename "
          "... on KeyCredentials { clientId clientSecret } ... on Error { message } } }")


def db_env(tmp: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The service's environment for one database: memory mail, warning logs, and rate limits
    and budgets that are spent on every request but never refuse one."""
    env = base_env(tmp, KEYRELEASE_DATABASE_URL=database_url, KEYRELEASE_SECRET_KEY=SECRET_KEY,
                   KEYRELEASE_LOG_LEVEL="warning")
    huge = "1000000000/minute"
    for rule in ("TOKEN_IP", "TOKEN_CLIENT", "PARTNER_IP", "PARTNER_KEY", "ADMIN", "ADMIN_QUERY"):
        env[f"KEYRELEASE_RATE_LIMIT_{rule}"] = huge if RATE_LIMITS_ON else "off"
    # The flows make thousands of keys with one admin: the admin's budget at its ceiling, so it
    # is still spent (and its cost measured) on every createKey and resendCode, never refused.
    for budget in ("MAX_KEYS_PER_ADMIN_PER_DAY", "MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR"):
        env[f"KEYRELEASE_{budget}"] = "100000"
    env.update(extra)
    return env


def create_admin(env: dict[str, str], email: str = "bench@uni.example") -> str:
    out = run_cli(env, "admin", "create", "--institution", "Bench University", "--email", email, "--name", "Bench")
    return out.strip().splitlines()[-1]


class GraphQL:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables}, headers=self.headers)
        body = response.json()
        if response.status_code != 200 or "errors" in body:
            raise RuntimeError(f"GraphQL {response.status_code}: {body}")
        return body["data"]

    async def flow(self, name: str) -> tuple[str, str, str]:
        """createKey -> verifyKey (code derived from the server secret) -> revealKey."""
        from keyrelease.codes import verification_code

        created = (await self.call(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}))["createKey"]
        if created["__typename"] != "ApiKey":
            raise RuntimeError(f"createKey: {created}")
        code = verification_code(SECRET_KEY.encode(), uuid.UUID(created["id"]), 0)
        verified = (await self.call(VERIFY, {"input": {"keyId": created["id"], "code": code}}))["verifyKey"]
        if verified.get("status") != "ACTIVE":
            raise RuntimeError(f"verifyKey: {verified}")
        revealed = (await self.call(REVEAL, {"input": {"keyId": created["id"]}}))["revealKey"]
        if revealed["__typename"] != "KeyCredentials":
            raise RuntimeError(f"revealKey: {revealed}")
        return created["id"], revealed["clientId"], revealed["clientSecret"]

    async def create_only(self, name: str) -> None:
        created = (await self.call(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}))["createKey"]
        if created["__typename"] != "ApiKey":
            raise RuntimeError(f"createKey: {created}")


def seed_flow(url: str, token: str) -> tuple[str, str, str]:
    async def run() -> tuple[str, str, str]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            return await GraphQL(http, token).flow("Bench seed key")

    return asyncio.run(run())


_COPY_COLUMNS_SKIP = ("id", "client_id", "name", "secret_hash")


def bulk_insert(database_url: str, template_id: str, count: int, region: str = "us-east-1") -> list[str]:
    """Insert ``count`` valid, revealed, ACTIVE keys cloned from the template key's row (same
    institution, timestamps, status fields), each with its own ``<region>#<uuid>`` client ID
    and the secret ``BULK_SECRET``. Returns the new client IDs."""
    secret_hash = hashlib.sha256(BULK_SECRET.encode()).hexdigest()
    client_ids = [f"{region}#{uuid.uuid4()}" for _ in range(count)]
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite://"))
        try:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(api_key)") if row[1] not in _COPY_COLUMNS_SKIP]
            cols = ", ".join(columns)
            sql = (f"INSERT INTO api_key (id, client_id, name, secret_hash, {cols}) "
                   f"SELECT ?, ?, ?, ?, {cols} FROM api_key WHERE id = ?")
            batch = 50_000
            for start in range(0, count, batch):
                rows = [(str(uuid.uuid4()), cid, f"bulk {start + n}", secret_hash, template_id)
                        for n, cid in enumerate(client_ids[start:start + batch])]
                conn.executemany(sql, rows)
                conn.commit()
        finally:
            conn.close()
        return client_ids

    import asyncpg

    async def pg() -> None:
        conn = await asyncpg.connect(re.sub(r"^(postgres|postgresql|asyncpg)://", "postgresql://", database_url))
        try:
            names = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_key' ORDER BY ordinal_position")
            columns = [r["column_name"] for r in names if r["column_name"] not in _COPY_COLUMNS_SKIP]
            cols = ", ".join(columns)
            sql = (f"INSERT INTO api_key (id, client_id, name, secret_hash, {cols}) "
                   f"SELECT $1::uuid, $2, $3, $4, {cols} FROM api_key WHERE id = $5::uuid")
            rows = [(uuid.uuid4(), cid, f"bulk {n}", secret_hash, uuid.UUID(template_id)) for n, cid in enumerate(client_ids)]
            await conn.executemany(sql, rows)
            await conn.execute("ANALYZE api_key")
        finally:
            await conn.close()

    asyncio.run(pg())
    return client_ids


def sample(items: list[str], n: int) -> list[str]:
    step = max(1, len(items) // n)
    return items[::step][:n]
