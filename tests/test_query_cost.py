"""The query cost limit: the most values an answer can hold (list sizes × nesting × aliases),
computed before execution; over the limit, QUERY_TOO_COSTLY and nothing runs. The default
admits everything the console and the README send."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from graphql import GraphQLObjectType, get_introspection_query, get_named_type, get_nullable_type, is_list_type, parse

from keyrelease.app import create_app
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.graphql.cost import COSTLY, LIST_SIZES, AdminTurns, operation_cost
from keyrelease.graphql.limits import MAX_COST as DEFAULT_MAX_COST
from keyrelease.graphql.schema import build_schema
from keyrelease.testing.settings import base_env
from keyrelease.web import operations
from seed import seed_keys
from sqlcount import StatementCounter

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = build_schema()._schema
BOUNDS = (1, 100)

#: The attack on the admin API: 20 aliases of a full page of keys with their events and deliveries.
ATTACK = "{" + " ".join(
    f"a{n}: keys(first: 100) {{ edges {{ node {{ events {{ type }} lastDelivery {{ status }} }} }} }}" for n in range(20)
) + "}"


def cost(document: str, variables: dict | None = None, operation: str | None = None) -> int | None:
    return operation_cost(SCHEMA, parse(document), operation, variables, page_bounds=BOUNDS)


# -- what a document costs ------------------------------------------------------------------


def test_a_field_counts_once_per_object_and_a_page_multiplies_what_is_under_it():
    # keys 1, edges 1 + 10 items, node 10, id 10
    assert cost("{ keys(first: 10) { edges { node { id } } } }") == 32
    assert cost("{ keys(first: 100) { edges { node { id } } } }") == 302
    assert cost("{ keys { edges { node { id } } } }") == 62  # the argument's default, 20
    # pageInfo is one object beside the page, not one per key
    assert cost("{ keys(first: 100) { pageInfo { hasNextPage } } }") == 3


def test_aliases_and_fragments_add_up():
    one = cost("{ keys(first: 10) { edges { node { id } } } }")
    assert cost("{ a: keys(first: 10) { edges { node { id } } } b: keys(first: 10) { edges { node { id } } } }") == 2 * one
    spread = "query { keys(first: 10) { edges { node { ...F } } } } fragment F on ApiKey { id }"
    assert cost(spread) == one


def test_nested_lists_multiply_with_their_nominal_size():
    # events: 1 per key + 20 items per key; type: 20 per key
    assert cost("{ keys(first: 10) { edges { node { events { type } } } } }") == 1 + 11 + 10 + (10 + 200) + 200
    assert cost(ATTACK) == 20 * (1 + 101 + 100 + 2100 + 2000 + 100 + 100)


def test_first_is_read_from_variables_and_clamped_to_the_page_bounds():
    document = "query($n: Int!) { keys(first: $n) { edges { node { id } } } }"
    assert cost(document, {"n": 10}) == cost("{ keys(first: 10) { edges { node { id } } } }")
    assert cost(document, {"n": 100000}) == cost("{ keys(first: 100) { edges { node { id } } } }")
    assert cost("query($n: Int = 5) { keys(first: $n) { edges { node { id } } } }") == 17
    assert cost(document, {"n": "many"}) is None  # execution refuses the variable itself


def test_introspection_costs_nothing():
    assert cost(get_introspection_query()) == 0


def test_every_list_in_the_schema_has_a_size():
    """A list is sized by the ``first`` of the connection field above it, or by LIST_SIZES;
    a new list field must be given one of the two."""
    types = [t for name, t in SCHEMA.type_map.items() if not name.startswith("__") and isinstance(t, GraphQLObjectType)]
    connections = {
        get_named_type(f.type).name for t in types for f in t.fields.values() if "first" in f.args
    }
    unsized = [
        (t.name, name)
        for t in types
        for name, f in t.fields.items()
        if is_list_type(get_nullable_type(f.type)) and t.name not in connections and (t.name, name) not in LIST_SIZES
    ]
    assert unsized == []


# -- what the console and the README send ------------------------------------------------


def console_operations() -> dict[str, str]:
    """Every GraphQL document the console sends, fragments spliced in as the browser does."""
    return operations.documents()


def readme_operations() -> dict[str, str]:
    """The documents in the README's curl examples, as the shell sends them."""
    readme = (ROOT / "README.md").read_text()
    bodies = re.findall(r"-d '(\{\"query\".*?\})'", readme)
    documents = {}
    for n, body in enumerate(bodies):
        as_sent = re.sub(r"'\$[A-Z_]+'", "00000000-0000-0000-0000-000000000000", body)
        documents[f"README curl {n + 1}"] = json.loads(as_sent)["query"]
    return documents


def every_key_field() -> str:
    """A page of 100 keys with every field of a key, its events and its delivery: the most
    the README's `keys(first, after, status)` and `events { type at detail }` can ask."""
    key_type = SCHEMA.type_map["ApiKey"]
    fields = []
    for name, f in key_type.fields.items():
        inner = get_named_type(f.type)
        if hasattr(inner, "fields"):
            fields.append(f"{name} {{ {' '.join(inner.fields)} }}")
        else:
            fields.append(name)
    return f"{{ keys(first: 100) {{ edges {{ cursor node {{ {' '.join(fields)} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"


def test_every_console_and_readme_operation_is_under_the_default_limit():
    documents = {**console_operations(), **readme_operations(), "every field of a page of 100": every_key_field()}
    assert {"Me", "Keys", "Key", "CreateKey", "VerifyKey", "ResendCode", "RevealKey", "RevokeKey", "RotateKey", "CancelRotation"} <= set(documents)
    assert len(readme_operations()) == 6
    key = {"keyId": "00000000-0000-0000-0000-000000000000"}
    variables = {  # as the console sends them, with the largest page the API allows
        "Keys": {"first": 100},
        "ExpiringKeys": {"within": "30d"},
        "Key": {"id": key["keyId"]},
        "CreateKey": {"input": {"name": "n", "kind": "PARTNER", "partnerName": "p", "partnerEmail": "p@x.example"}},
        "VerifyKey": {"input": {**key, "code": "123456"}},
        "ResendCode": {"input": key},
        "RevealKey": {"input": {**key, "oneTimePassword": "AAAA-BBBB-CCCC-DDDD"}},
        "RevokeKey": {"input": key},
        "RotateKey": {"input": {**key, "expiresAt": "2031-01-01T00:00:00Z"}},
        "CancelRotation": {"input": key},
        "StartPasskeyRegistration": {"input": {"proof": "EMAIL"}},
        "ConfirmPasskeyRegistration": {"input": {"registrationId": key["keyId"], "code": "123456"}},
        "FinishPasskeyRegistration": {"input": {"registrationId": key["keyId"], "name": "n", "credential": "{}"}},
        "RemovePasskey": {"input": {"passkeyId": key["keyId"]}},
        "BeginPasskeyVerification": {"input": key},
        "VerifyKeyWithPasskey": {"input": {**key, "passkeyAssertion": "{}"}},
        "CreateApiToken": {"input": {"name": "n", "expiresAt": "2031-01-01T00:00:00Z"}},
        "RevokeApiToken": {"input": {"id": "1"}},
    }
    costs = {name: cost(text, variables.get(name, {})) for name, text in documents.items()}
    assert all(value is not None for value in costs.values()), costs
    assert max(costs.values()) <= DEFAULT_MAX_COST, costs
    assert cost(ATTACK) > DEFAULT_MAX_COST


# -- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def app(settings, clock, statements):  # counting from start-up
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        await statements.attach_sqlite()
        yield application


async def test_the_attack_document_is_refused_before_anything_runs(api, clock, statements: StatementCounter):
    ada = await api.admin()
    await seed_keys(ada.email, 100, clock.now())
    async with statements.counting() as block:
        response = await api.post(ATTACK, token=ada.token)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": cost(ATTACK), "maxCost": DEFAULT_MAX_COST}
    assert "first" in error["message"] and "aliases" in error["message"]
    assert block == []  # not even the admin's token was looked up


async def test_the_console_page_and_the_introspection_query_pass(api, clock):
    ada = await api.admin()
    await seed_keys(ada.email, 12, clock.now())
    data = await api.data(console_operations()["Keys"], {"first": 10}, ada.token)
    assert len(data["keys"]["edges"]) == 10
    assert (await api.data(get_introspection_query()))["__schema"]["queryType"]["name"] == "Query"


class TestALowerLimit:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_GRAPHQL_MAX_COST": "1000"}

    async def test_is_applied_to_queries_and_mutations_alike(self, api):
        ada = await api.admin()
        small = "{ keys(first: 10) { edges { node { id events { type } } } } }"
        large = "{ keys(first: 100) { edges { node { id events { type } } } } }"
        assert "errors" not in await api.gql(small, token=ada.token)
        body = await api.gql(large, token=ada.token)
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert body["errors"][0]["extensions"]["maxCost"] == 1000
        aliased = "mutation { " + " ".join(
            f'r{n}: revokeKey(input: {{keyId: "x"}}) {{ ... on ApiKey {{ events {{ type at detail }} }} }}' for n in range(20)
        ) + " }"
        assert (await api.gql(aliased, token=ada.token))["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


def test_the_limit_is_validated_at_start_up(tmp_path):
    def settings(value: str) -> Settings:
        return Settings.from_env(base_env(tmp_path, KEYRELEASE_GRAPHQL_MAX_COST=value))

    assert settings("").graphql_max_cost == DEFAULT_MAX_COST == 13_000
    assert settings("50000").graphql_max_cost == 50_000
    for bad in ("lots", "0", "999", "-5", "20000000"):
        with pytest.raises(ConfigError, match="KEYRELEASE_GRAPHQL_MAX_COST"):
            settings(bad)


# -- an admin's costly queries take turns ------------------------------------------------------


class TestTurns:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_ADMIN_QUERY": "off"}

    @pytest.fixture
    def overlap(self, monkeypatch):
        """The most page reads in progress at once (each gives the others every chance to run)."""
        from keyrelease.graphql import loaders

        state = {"active": 0, "peak": 0, "expect": 0}
        original = loaders.queries.list_keys

        async def list_keys(*args, **kwargs):
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            try:
                for _ in range(20):
                    await asyncio.sleep(0)
                # A test that expects N reads at once holds each until N are in (at most ~2 s):
                # a read that must wait its turn never arrives, and the peak stays below N.
                for _ in range(200):
                    if state["active"] >= state["expect"]:
                        break
                    await asyncio.sleep(0.01)
                return await original(*args, **kwargs)
            finally:
                state["active"] -= 1

        monkeypatch.setattr(loaders.queries, "list_keys", list_keys)
        return state

    COSTLY = "{ keys(first: 100) { edges { node { id events { type } } } } }"  # 2,302: takes turns
    CHEAP = "{ keys(first: 10) { edges { node { id events { type } } } } }"  # 232: never waits

    async def test_one_admins_costly_queries_run_one_at_a_time(self, api, clock, overlap):
        ada = await api.admin()
        await seed_keys(ada.email, 5, clock.now())
        answers = await asyncio.gather(*(api.gql(self.COSTLY, token=ada.token) for _ in range(4)))
        assert all("errors" not in a for a in answers)
        assert overlap["peak"] == 1

    async def test_different_admins_and_cheap_queries_do_not_wait_for_each_other(self, api, overlap):
        ada, bob = await api.admin(), await api.admin("bob@other.example", "Other College")
        requests = [api.gql(self.COSTLY, token=ada.token), api.gql(self.COSTLY, token=bob.token)]
        requests += [api.gql(self.CHEAP, token=ada.token) for _ in range(2)]
        overlap["expect"] = 4
        answers = await asyncio.gather(*requests)
        assert all("errors" not in a for a in answers)
        assert overlap["peak"] == 4
        assert cost(self.COSTLY) >= COSTLY > cost(self.CHEAP)


async def test_a_turn_is_forgotten_when_nobody_holds_or_awaits_it():
    turns = AdminTurns()
    async with turns.turn(1), turns.turn(2):
        assert set(turns._locks) == {1, 2}
    assert turns._locks == {} and turns._users == {}
