"""Settings that change the GraphQL surface."""

import pytest


@pytest.fixture
def env_overrides():
    return {"KEYRELEASE_GRAPHQL_INTROSPECTION": "false", "KEYRELEASE_GRAPHQL_MAX_DEPTH": "3"}


async def test_introspection_can_be_switched_off(api):
    body = await api.gql("{ __schema { queryType { name } } }")
    assert body["errors"] and body.get("data") is None


async def test_queries_deeper_than_the_limit_are_refused(api):
    ada = await api.admin()
    assert "errors" not in await api.gql("{ keys { edges { node { id } } } }", token=ada.token)
    body = await api.gql("{ keys { edges { node { events { type } } } } }", token=ada.token)
    assert body.get("data") is None
    assert "depth" in body["errors"][0]["message"]
