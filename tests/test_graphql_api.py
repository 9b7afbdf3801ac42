"""The GraphQL surface: listing, bad input, hardening, GraphiQL, the exported schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyrelease.graphql.schema import build_schema
from keyrelease.testing.api import CREATE_KEY, VERIFY_KEY

LIST = """
query($first: Int, $after: String, $status: KeyStatus) {
  keys(first: $first, after: $after, status: $status) {
    edges { cursor node { id name status } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def test_schema_graphql_matches_the_served_schema():
    exported = (Path(__file__).parent.parent / "schema.graphql").read_text()
    assert exported.strip() == build_schema().as_str().strip(), "run `make schema` and commit schema.graphql"


async def test_keys_are_listed_newest_first_with_cursors(api, clock):
    ada = await api.admin()
    names = []
    for i in range(5):
        names.append(f"key {i}")
        await api.create_key(ada, name=f"key {i}")
        clock.advance(1)
    seen = []
    after = None
    while True:
        page = (await api.data(LIST, {"first": 2, "after": after}, ada.token))["keys"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(names))


async def test_keys_filter_by_derived_status(api, clock):
    ada = await api.admin()
    locked = await api.create_key(ada, name="will lock")
    await api.code_for(ada)
    clock.advance(901)
    pending = await api.create_key(ada, name="pending")
    active = await api.create_key(ada, name="active")
    await api.verify(ada, active["id"], await api.code_for(ada, nth=3))

    async def names(status):
        page = (await api.data(LIST, {"status": status}, ada.token))["keys"]
        return [e["node"]["name"] for e in page["edges"]]

    assert await names("LOCKED") == ["will lock"]
    assert await names("PENDING_VERIFICATION") == ["pending"]
    assert await names("ACTIVE") == ["active"]
    assert await names("REVOKED") == []
    assert locked["id"] and pending["id"]


async def test_expired_status_after_expires_at(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada, expiresAt="2030-01-02T12:00:00+00:00")
    await api.verify(ada, key["id"], await api.code_for(ada))
    clock.advance(days=1)
    assert (await api.key(ada, key["id"]))["status"] == "EXPIRED"
    page = (await api.data(LIST, {"status": "EXPIRED"}, ada.token))["keys"]
    assert [e["node"]["id"] for e in page["edges"]] == [key["id"]]


@pytest.mark.parametrize("after", ["garbage", "Zm9vfGJhcg==", "!!!"])
async def test_bad_cursor_is_a_clean_error(api, after):
    ada = await api.admin()
    body = await api.gql(LIST, {"after": after}, ada.token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"kind": "PARTNER"}, "partnerEmail"),
        ({"kind": "PARTNER", "partnerEmail": "not-an-email"}, "partnerEmail"),
        ({"kind": "INSTITUTIONAL", "partnerEmail": "p@acme.example"}, "partnerEmail"),
        ({"expiresAt": "2029-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2040-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2030-06-01T00:00:00"}, "expiresAt"),
    ],
)
async def test_bad_key_input_is_a_validation_error_and_creates_nothing(api, fields, field):
    ada = await api.admin()
    result = await api.create_key(ada, **fields)
    assert result["__typename"] == "ValidationError"
    assert result["field"] == field
    listed = await api.data(LIST, {}, ada.token)
    assert listed["keys"]["edges"] == []
    assert api.mailbox.messages == []


async def test_a_hundred_character_name_is_fine(api):
    ada = await api.admin()
    assert (await api.create_key(ada, name="x" * 100))["__typename"] == "ApiKey"


@pytest.mark.parametrize(
    "variables",
    [
        {"input": {"name": "x", "kind": "ROOT"}},
        {"input": {"name": "x"}},
        {"input": {"name": 42, "kind": "INSTITUTIONAL"}},
        {"input": {"name": "x", "kind": "INSTITUTIONAL", "expiresAt": "tomorrow"}},
    ],
)
async def test_ill_typed_input_is_a_graphql_error_not_a_500(api, variables):
    ada = await api.admin()
    response = await api.post(CREATE_KEY, variables, ada.token)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] and "Traceback" not in response.text
    assert api.mailbox.messages == []


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"[]", b'{"query": 5}', b'{"query": "{"}', b"\xff\xfe", b'"just a string"'],
)
async def test_garbage_bodies_get_a_clean_client_error(client, body):
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 or (response.status_code == 200 and "errors" in response.json())
    assert "Traceback" not in response.text


async def test_huge_bodies_are_refused_before_parsing(client):
    response = await client.post(
        "/graphql", content=b'{"query": "' + b"a" * 200_000 + b'"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_batched_requests_are_refused(api, client):
    ada = await api.admin()
    response = await client.post(
        "/graphql",
        json=[{"query": "{ me { email } }"}, {"query": "{ me { email } }"}],
        headers={"Authorization": f"Bearer {ada.token}"},
    )
    assert response.status_code == 400


async def test_two_guesses_in_one_request_are_refused_before_either_runs(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    query = """
    mutation($id: ID!) {
      a: verifyKey(input: {keyId: $id, code: "000000"}) { __typename }
      b: verifyKey(input: {keyId: $id, code: "111111"}) { __typename }
    }"""
    body = await api.gql(query, {"id": key["id"]}, ada.token)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_GUESSES"
    assert (await api.key(ada, key["id"]))["attemptsRemaining"] == 5
    mixed = """
    mutation($id: ID!) {
      resendCode(input: {keyId: $id}) { __typename }
      revealKey(input: {keyId: $id}) { __typename }
    }"""
    assert (await api.gql(mixed, {"id": key["id"]}, ada.token))["errors"][0]["extensions"]["code"] == "TOO_MANY_GUESSES"
    assert (await api.key(ada, key["id"]))["resendsRemaining"] == 3
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"


async def test_guesses_hidden_in_fragments_are_counted(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    query = """
    mutation($id: ID!) { ...G ...H }
    fragment G on Mutation { x: verifyKey(input: {keyId: $id, code: "000000"}) { __typename } }
    fragment H on Mutation { y: verifyKey(input: {keyId: $id, code: "000001"}) { __typename } }
    """
    body = await api.gql(query, {"id": key["id"]}, ada.token)
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_GUESSES"
    assert (await api.key(ada, key["id"]))["attemptsRemaining"] == 5


async def test_token_limit(api):
    ada = await api.admin()
    query = "{ me { " + " ".join(["email"] * 3000) + " } }"
    body = await api.gql(query, token=ada.token)
    assert body["errors"]


async def test_introspection_is_on_by_default(api):
    body = await api.gql("{ __schema { queryType { name } } }")
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_graphiql_is_served_to_browsers(client):
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_unexpected_errors_are_masked(api, monkeypatch):
    from keyrelease.service.keys import KeyService

    async def boom(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    ada = await api.admin()
    monkeypatch.setattr(KeyService, "verify_key", boom)
    response = await api.post(VERIFY_KEY, {"input": {"keyId": "x", "code": "123456"}}, ada.token)
    assert response.status_code == 200
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert response.json()["errors"][0]["message"] == "Internal error."


async def test_health_endpoints(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
