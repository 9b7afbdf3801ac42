"""A page of keys costs the same number of SQL statements whatever its size: each key's events
and latest delivery are loaded for the whole page at once, not one query per key. Counted at
the database driver, on SQLite and PostgreSQL, through the real HTTP stack."""

from __future__ import annotations

from typing import Any

import pytest

from keyrelease.app import create_app
from seed import seed_keys
from sqlcount import StatementCounter

PAGE = """query($first: Int!) { keys(first: $first) { edges { node {
    id events { type } lastDelivery { status }
} } } }"""


@pytest.fixture
def env_overrides():
    # The cost limit would refuse the 20 aliases below before they run; here they must run. No
    # dispatcher: its pass over the outbox (every second) would land inside a counted block.
    return {
        "KEYRELEASE_RATE_LIMIT_ADMIN_QUERY": "off",
        "KEYRELEASE_GRAPHQL_MAX_COST": "1000000",
        "KEYRELEASE_DISPATCHER": "false",
    }


@pytest.fixture
async def app(settings, clock, statements):  # counting from start-up
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        await statements.attach_sqlite()
        yield application


async def count(api, statements: StatementCounter, query: str, variables: dict[str, Any], token: str) -> tuple[int, dict]:
    async with statements.counting() as block:
        data = await api.data(query, variables, token)
    return len(block), data


async def test_a_page_with_events_and_last_delivery_costs_the_same_statements_for_1_10_and_100_keys(api, clock, statements):
    ada = await api.admin()
    await seed_keys(ada.email, 100, clock.now())
    await api.data("{ me { email } }", token=ada.token)  # warm: connections open, statements prepared

    counts = {}
    for size in (1, 10, 100):
        counts[size], data = await count(api, statements, PAGE, {"first": size}, ada.token)
        nodes = [edge["node"] for edge in data["keys"]["edges"]]
        assert len(nodes) == size
        assert all([e["type"] for e in n["events"]] == ["CREATED", "CODE_SENT", "VERIFIED", "REVEALED"] for n in nodes)
        assert all(n["lastDelivery"] == {"status": "SENT"} for n in nodes)
    assert counts[1] == counts[10] == counts[100], counts
    assert counts[100] <= 5, statements.statements[-counts[100]:]


async def test_each_key_gets_its_own_events_and_delivery_in_a_batch(api, clock, statements):
    ada = await api.admin()
    await seed_keys(ada.email, 3, clock.now())
    clock.advance(seconds=1)
    fresh = await api.create_key(ada, name="Fresh")  # newest: CREATED, CODE_SENT, its code PENDING
    clock.advance(seconds=1)
    revoked = await api.create_key(ada, name="Revoked")
    await api.data('mutation($i: RevokeKeyInput!) { revokeKey(input: $i) { __typename } }', {"i": {"keyId": revoked["id"]}}, ada.token)

    data = await api.data(PAGE, {"first": 5}, ada.token)
    nodes = {edge["node"]["id"]: edge["node"] for edge in data["keys"]["edges"]}
    assert [e["type"] for e in nodes[revoked["id"]]["events"]] == ["CREATED", "CODE_SENT", "REVOKED"]
    assert [e["type"] for e in nodes[fresh["id"]]["events"]] == ["CREATED", "CODE_SENT"]
    assert nodes[fresh["id"]]["lastDelivery"]["status"] in ("PENDING", "SENDING", "SENT")
    seeded = [n for key_id, n in nodes.items() if key_id not in (fresh["id"], revoked["id"])]
    assert len(seeded) == 3 and all(len(n["events"]) == 4 for n in seeded)


async def test_aliases_of_the_same_page_add_one_list_statement_each_and_no_per_key_statements(api, clock, statements):
    ada = await api.admin()
    await seed_keys(ada.email, 100, clock.now())
    await api.data("{ me { email } }", token=ada.token)
    one, _ = await count(api, statements, PAGE, {"first": 100}, ada.token)
    aliased = "query($first: Int!) {" + " ".join(
        f"a{n}: keys(first: $first) {{ edges {{ node {{ id events {{ type }} lastDelivery {{ status }} }} }} }}" for n in range(20)
    ) + "}"
    twenty, data = await count(api, statements, aliased, {"first": 100}, ada.token)
    assert all(len(data[f"a{n}"]["edges"]) == 100 for n in range(20))
    assert twenty <= one + 19 * 3, statements.statements[-twenty:]


async def test_a_single_key_with_events_and_delivery_is_read_in_a_few_statements(api, clock, statements):
    ada = await api.admin()
    [key_id] = await seed_keys(ada.email, 1, clock.now())
    await api.data("{ me { email } }", token=ada.token)
    query = "query($id: ID!) { key(id: $id) { id events { type } lastDelivery { status } } }"
    statements_used, data = await count(api, statements, query, {"id": str(key_id)}, ada.token)
    assert len(data["key"]["events"]) == 4 and data["key"]["lastDelivery"] == {"status": "SENT"}
    assert statements_used <= 4
