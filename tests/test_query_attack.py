"""One admin cannot stall the API for the others: six parallel requests, each 20 aliases of a
page of 100 keys with their events and deliveries, against a live ``keyrelease serve``. None
of them is answered 503, and another admin's ``key(id)``, asked again and again while they
run, is answered within 500 ms each time.

With the default settings those documents are refused as too costly before they run;
the costliest documents the default admits (aliases of distinct pages), six in parallel, all
run to the end and still leave the other admin answered in time."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from graphql import parse
from tortoise.backends.base.executor import EXECUTOR_CACHE

from environment import BACKENDS, empty_postgres
from keyrelease import db
from keyrelease.clock import SystemClock
from keyrelease.graphql.cost import operation_cost
from keyrelease.graphql.limits import MAX_COST as DEFAULT_MAX_COST
from keyrelease.graphql.schema import build_schema
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import base_env
from seed import seed_keys

pytestmark = pytest.mark.live

PAGE = "keys(first: 100) { edges { node { events { type } lastDelivery { status } } } }"
ATTACK = "{ " + " ".join(f"a{n}: {PAGE}" for n in range(20)) + " }"


def largest_admitted() -> str:
    """The costliest document the default limit admits built from the attack's page: aliases
    of distinct pages (nothing to share between them), as many as fit."""
    aliases: list[str] = []
    for n in range(100):
        alias = f"a{n}: " + PAGE.replace("first: 100", f"first: {100 - n}")
        if cost("{ " + " ".join([*aliases, alias]) + " }") > DEFAULT_MAX_COST:
            break
        aliases.append(alias)
    return "{ " + " ".join(aliases) + " }"


def cost(document: str) -> int | None:
    return operation_cost(build_schema()._schema, parse(document), None, None, page_bounds=(1, 100))


PROBE = "query($id: ID!) { key(id: $id) { id name status lastDelivery { status } } }"
PARALLEL = 6
PROBE_LIMIT = 0.5


def admin(env: dict[str, str], email: str, institution: str) -> str:
    out = run_cli(env, "admin", "create", "--institution", institution, "--email", email).stdout
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, tmp_path_factory):
    """A database with 100 keys of one admin and one key of another admin elsewhere."""
    tmp = tmp_path_factory.mktemp("attack")
    env = base_env(tmp, KEYRELEASE_MAIL_TRANSPORT="console", KEYRELEASE_DISPATCHER="false")
    if request.param == "postgres":
        env["KEYRELEASE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        empty_postgres(env["KEYRELEASE_DATABASE_URL"])
    run_cli(env, "migrate")
    attacker = admin(env, "mallory@uni.example", "Example University")
    other = admin(env, "olga@other.example", "Other College")

    async def seed() -> str:
        EXECUTOR_CACHE.clear()  # this process may have written to the other backend before
        async with db.connected(env["KEYRELEASE_DATABASE_URL"]):
            await seed_keys("mallory@uni.example", 100, SystemClock().now())
            [key_id] = await seed_keys("olga@other.example", 1, SystemClock().now())
            return str(key_id)

    key_id = asyncio.run(seed())
    return env, tmp, attacker, other, key_id


async def attack_while_probing(server: Server, attacker: str, documents: list[str], other: str, key_id: str):
    """Send ``documents`` at once, each on its own connection, and meanwhile ask for the
    other admin's key one request after another. The attack's responses, and each probe's
    (start, duration) relative to the attack's start."""
    limits = httpx.Limits(max_connections=len(documents) + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
        # A server that has been running: its connection pool opened, its caches warm.
        await asyncio.gather(*(
            http.post("/graphql", json={"query": PROBE, "variables": {"id": key_id}}, headers={"Authorization": f"Bearer {other}"})
            for _ in range(len(documents) + 1)
        ))
        started = time.monotonic()
        attack = asyncio.gather(
            *(http.post("/graphql", json={"query": d}, headers={"Authorization": f"Bearer {attacker}"}) for d in documents)
        )
        probes: list[tuple[float, float, int, dict]] = []

        async def probe_until_done() -> None:
            while True:  # the first probe leaves with the attack, the others while it lasts
                sent = time.monotonic()
                response = await http.post(
                    "/graphql", json={"query": PROBE, "variables": {"id": key_id}}, headers={"Authorization": f"Bearer {other}"}
                )
                probes.append((sent - started, time.monotonic() - sent, response.status_code, response.json()))
                if attack.done():
                    return
                await asyncio.sleep(0.02)

        responses, _ = await asyncio.gather(attack, probe_until_done())
        attack_seconds = time.monotonic() - started
    return responses, probes, attack_seconds


def report(label: str, responses, probes, attack_seconds: float) -> None:
    durations = sorted(d for _, d, _, _ in probes)
    print(
        f"\n{label}: attack {attack_seconds:.2f}s, statuses {sorted({r.status_code for r in responses})}, "
        f"{len(probes)} probes, slowest {durations[-1] * 1000:.0f} ms, median {durations[len(durations) // 2] * 1000:.0f} ms"
    )


def check_probes(probes, key_id: str) -> None:
    assert probes, "no probe ran while the attack was in flight"
    for sent, duration, status, body in probes:
        assert status == 200 and body == {"data": {"key": {"id": key_id, "name": "Seeded key 0", "status": "ACTIVE",
                                                            "lastDelivery": {"status": "SENT"}}}}, body
        assert duration < PROBE_LIMIT, f"a probe sent {sent:.2f}s into the attack took {duration * 1000:.0f} ms"


async def run_attack(seeded, documents: list[str], log_name: str, **env_overrides: str):
    env, tmp, attacker, other, key_id = seeded
    server = Server(env={**env, **env_overrides}, log_path=tmp / log_name).start()
    try:
        responses, probes, seconds = await attack_while_probing(server, attacker, documents, other, key_id)
    finally:
        server.stop()
    report(log_name, responses, probes, seconds)
    assert [r.status_code for r in responses] == [200] * len(documents), [r.text[:200] for r in responses]
    check_probes(probes, key_id)
    return [r.json() for r in responses]


async def test_the_issues_attack_is_refused_and_another_admin_is_answered_meanwhile(seeded):
    for body in await run_attack(seeded, [ATTACK] * PARALLEL, "attack.log"):
        [error] = body["errors"]
        assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 90_040, "maxCost": DEFAULT_MAX_COST}


async def test_the_costliest_queries_the_default_admits_in_parallel_stall_no_one(seeded):
    admitted = largest_admitted()
    for body in await run_attack(seeded, [admitted] * PARALLEL, "admitted.log"):
        assert "errors" not in body, body["errors"][:1]
        pages = list(body["data"].values())
        assert [len(page["edges"]) for page in pages] == [100 - n for n in range(len(pages))]
        assert all(len(edge["node"]["events"]) == 4 for page in pages for edge in page["edges"])
