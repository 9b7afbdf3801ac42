"""Fuzzing the interfaces: thousands of generated requests, zero 5xx, zero tracebacks, zero
internal errors (a resolver crash answers HTTP 200 with ``Internal error.``, so the status
alone proves nothing) and not one ERROR record in the log.

Seeded (derandomized) and bounded, so CI runs the same cases every time; the number of cases
run is printed. GraphQL documents are generated from the served schema: every query and
mutation field, with arguments built from random JSON values, random enum members, real and
random key ids, and random selections; plus raw garbage documents and bodies. The token
endpoint gets random methods, headers, Basic values and bodies.
"""

from __future__ import annotations

import base64
import json

import logging

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fuzzcounts import COUNTS as CASES
from keyrelease.graphql.errors import INTERNAL, INTERNAL_MESSAGE

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=40)
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
ids = st.one_of(st.uuids().map(str), st.text(max_size=50), st.sampled_from(["", "0", "-1", "null", "' OR 1=1 --"]))
codes = st.one_of(st.from_regex(r"\A[0-9]{6}\Z"), st.text(max_size=12))

MUTATIONS = {
    "createKey": ("CreateKeyInput", "... on ApiKey { id status } ... on Error { message }"),
    "verifyKey": ("VerifyKeyInput", "... on ApiKey { id status } ... on Error { message }"),
    "resendCode": ("ResendCodeInput", "... on ApiKey { id } ... on Error { message }"),
    "revealKey": ("RevealKeyInput", "... on KeyCredentials { clientId } ... on Error { message }"),
    "revokeKey": ("RevokeKeyInput", "... on ApiKey { id } ... on Error { message }"),
}

inputs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=120), json_values),
        "kind": st.one_of(st.sampled_from(["INSTITUTIONAL", "PARTNER", "ROOT", ""]), json_values),
        "expiresAt": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30), json_values),
        "partnerName": st.one_of(st.text(max_size=30), json_values),
        "partnerEmail": st.one_of(st.emails(), st.text(max_size=30), json_values),
        "keyId": st.one_of(ids, json_values),
        "code": st.one_of(codes, json_values),
        "oneTimePassword": st.one_of(st.text(max_size=30), json_values),
    },
)

queries = st.one_of(
    st.builds(lambda i, after, first, status: ("query($id: ID!, $after: String, $first: Int, $status: KeyStatus) "
        "{ me { email } key(id: $id) { id status events { type } } keys(first: $first, after: $after, status: $status) "
        "{ edges { cursor node { id } } pageInfo { hasNextPage } } }", {"id": i, "after": after, "first": first, "status": status}),
        ids, st.one_of(st.none(), st.text(max_size=40)), st.one_of(st.none(), st.integers(-5, 500)), st.one_of(st.none(), st.text(max_size=25))),
    st.builds(lambda name, value: (f"mutation($input: {MUTATIONS[name][0]}!) {{ {name}(input: $input) {{ __typename {MUTATIONS[name][1]} }} }}", {"input": value}),
        st.sampled_from(sorted(MUTATIONS)), st.one_of(inputs, json_values)),
    st.builds(lambda text: (text, None), st.text(max_size=200)),
    st.builds(lambda name, junk: (f"mutation {{ {name}(input: {junk}) {{ __typename }} }}", None), st.sampled_from(sorted(MUTATIONS)), st.text(max_size=60)),
)


@pytest.fixture
def log_records(caplog):
    """Every record the service logs while the test runs, whatever its logger."""
    caplog.set_level(logging.DEBUG)
    return caplog


def check(response, label: str, log_records) -> None:
    """The response is not a server failure, and the request logged nothing at ERROR."""
    CASES[label] = CASES.get(label, 0) + 1
    assert response.status_code < 500, (label, response.status_code, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text[:300]
    assert INTERNAL_MESSAGE not in response.text and INTERNAL not in response.text, (label, response.text[:300])
    errors = [r for r in log_records.records if r.levelno >= logging.ERROR]
    assert not errors, (label, response.request.content[:300], [f"{r.name}: {r.getMessage()}" for r in errors])


def cases(strategy, n: int = 1200) -> list:
    """``n`` seeded examples of ``strategy``, drawn up front so async tests can replay them
    (Hypothesis cannot drive an async test directly)."""
    drawn: list = []

    @settings(
        max_examples=n, deadline=None, derandomize=True, database=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value):  # type: ignore[no-untyped-def]
        drawn.append(value)

    collect()
    return drawn


async def test_graphql_fuzz(api, log_records):
    ada = await api.admin()
    key = await api.create_key(ada)

    for case, authed, real_id in cases(st.tuples(queries, st.booleans(), st.booleans())):
        document, variables = case
        if real_id and isinstance(variables, dict):
            if "id" in variables:
                variables["id"] = key["id"]
            if isinstance(variables.get("input"), dict):
                variables["input"]["keyId"] = key["id"]
        body = {"query": document, "variables": variables}
        response = await api.client.post(
            "/graphql",
            content=json.dumps(body, default=str),
            headers={"content-type": "application/json", **({"Authorization": f"Bearer {ada.token}"} if authed else {})},
        )
        check(response, "graphql", log_records)
    print(f"\nfuzz: {CASES.get('graphql', 0)} GraphQL requests, no 5xx, no traceback, no internal error")
    assert CASES["graphql"] >= 1000


raw_bodies = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode))
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
basic_values = st.one_of(
    st.builds(lambda u, p: "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode(), st.text(max_size=40), st.text(max_size=60)),
    st.builds(lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=60)),
    st.builds(lambda s: "Basic " + s, header_values),
    header_values,
)


async def test_raw_graphql_bodies_fuzz(api, log_records):
    content_types = st.sampled_from(["application/json", "text/plain", "application/graphql", "multipart/form-data", ""])
    for body, content_type in cases(st.tuples(raw_bodies, content_types), 600):
        response = await api.client.post("/graphql", content=body, headers={"content-type": content_type} if content_type else {})
        check(response, "graphql raw", log_records)
    print(f"\nfuzz: {CASES.get('graphql raw', 0)} raw /graphql bodies, no 5xx, no traceback, no internal error")


async def test_token_endpoint_fuzz(api, log_records):
    requests = st.tuples(
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
        st.one_of(st.none(), basic_values),
        st.one_of(st.none(), st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain", "application/x-www-form-urlencoded; charset=latin-1"]), header_values),
        st.one_of(
            st.just(b"grant_type=client_credentials"),
            st.builds(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode(), st.lists(st.tuples(st.text(max_size=15), st.text(max_size=30)), max_size=5)),
            raw_bodies,
        ),
    )
    for method, authorization, content_type, body in cases(requests):
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await api.client.request(method, "/ids/auth/login", content=body if method not in ("GET", "HEAD") else None, headers=headers)
        check(response, "token", log_records)
    print(f"\nfuzz: {CASES.get('token', 0)} token-endpoint requests, no 5xx, no traceback, no internal error")
