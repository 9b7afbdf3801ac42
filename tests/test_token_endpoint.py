"""POST /ids/auth/login: client credentials for a JWT, RFC 6749 errors, and what stops a key."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import jwt
import pytest
from tortoise.exceptions import DBConnectionError

from keyrelease.clock import FrozenClock
from keyrelease.credentials import hash_secret
from keyrelease.models import ApiKey
from keyrelease.service.clients import KeyRecord, find_key
from keyrelease.testing.api import REVOKE_KEY, code_for_key, released_key
from keyrelease.testing.tokens import FORM, GRANT, basic_auth, request_token

LOGIN = "/ids/auth/login"
INVALID_CLIENT_BODY = {"error": "invalid_client", "error_description": "Client authentication failed."}


@pytest.fixture
def clock() -> FrozenClock:
    """Real time, frozen: PyJWT checks iat and exp against the wall clock."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_FAILURE_FLOOR_MS": "0"}


def _one_character_off(secret: str) -> str:
    return secret[:-1] + ("B" if secret.endswith("A") else "A")


def signature(response) -> tuple:
    """Everything a client can see of a response but time (and its random X-Request-Id)."""
    headers = sorted((n, v) for n, v in response.headers.multi_items() if n != "x-request-id")
    return response.status_code, response.content, headers


async def jwks_key(client, token: str) -> jwt.PyJWK:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
    return jwt.PyJWK(jwk)


# -- the contract ------------------------------------------------------------------------


async def test_a_released_key_gets_a_token_that_verifies_against_the_published_jwks(api, client, settings, clock):
    ada = await api.admin()
    key = await api.create_key(ada, name="Nightly export")
    assert key["status"] == "PENDING_VERIFICATION"
    verified = await api.verify(ada, key["id"], await code_for_key(api, ada, "Nightly export"))
    assert verified["status"] == "ACTIVE"
    creds = await api.reveal(ada, key["id"])

    response = await request_token(client, creds["clientId"], creds["clientSecret"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer" and body["scope"] == settings.token_scope
    signing_key = await jwks_key(client, body["access_token"])
    claims = jwt.decode(
        body["access_token"],
        signing_key,
        algorithms=[signing_key.algorithm_name],
        audience=settings.jwt_audience,
        issuer=settings.public_url,
    )
    now = int(clock.now().timestamp())
    assert claims["sub"] == creds["clientId"] and claims["institution"] == "Example University"
    assert claims["iat"] == now and claims["exp"] == now + 3600
    assert claims["scope"] == settings.token_scope and len(claims["jti"]) == 32


async def test_existing_client_code_reads_exp_from_the_unverified_payload(api, client, clock):
    _, creds = await released_key(api, await api.admin())
    token = (await request_token(client, creds["clientId"], creds["clientSecret"])).json()["access_token"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] == int(clock.now().timestamp()) + 3600


async def test_every_token_has_its_own_jti(api, client):
    _, creds = await released_key(api, await api.admin())
    tokens = [(await request_token(client, creds["clientId"], creds["clientSecret"])).json()["access_token"] for _ in range(3)]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3


async def test_form_urlencoded_client_id_and_secret_are_accepted(api, client):
    """RFC 6749 §2.3.1: ID and secret are form-urlencoded before Basic; '#' becomes %23."""
    _, creds = await released_key(api, await api.admin())
    encoded = await request_token(client, quote(creds["clientId"], safe=""), quote(creds["clientSecret"], safe=""))
    assert encoded.status_code == 200, encoded.text
    assert "%23" in quote(creds["clientId"], safe="")


async def test_the_jwks_publishes_public_keys_only_each_with_a_kid(client):
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert key["kid"] and key["alg"] == "EdDSA" and key["use"] == "sig" and key["kty"] == "OKP"
    assert "d" not in key


async def test_the_raw_key_lookup_reads_exactly_what_the_orm_reads(api, clock):
    ada = await api.admin()
    _, creds = await released_key(api, ada, expiresAt=(clock.now() + timedelta(days=3)).isoformat())
    locked = await api.create_key(ada, name="Locked")
    clock.advance(minutes=16)
    await api.verify(ada, locked["id"], "000000")  # records the window lock
    for client_id in (creds["clientId"], locked["clientId"]):
        row = await ApiKey.get(client_id=client_id).prefetch_related("institution")
        assert await find_key(client_id) == KeyRecord(
            id=row.id,
            secret_hash=row.secret_hash,
            verified_at=row.verified_at,
            locked_at=row.locked_at,
            revoked_at=row.revoked_at,
            compromised_at=row.compromised_at,
            revealed_at=row.revealed_at,
            expires_at=row.expires_at,
            verification_deadline=row.verification_deadline,
            institution=row.institution.name,
        )
    assert (await ApiKey.get(client_id=locked["clientId"])).locked_at is not None
    assert await find_key(f"us-east-1#{uuid.uuid4()}") is None


# -- one answer for every unusable credential -------------------------------------------


async def test_every_unusable_key_gets_the_identical_invalid_client(api, client, clock):
    ada = await api.admin()
    t0 = clock.now()
    # Keys whose state needs time to pass are made first.
    window = await api.create_key(ada, name="Window")
    expiring, expiring_creds = await released_key(
        api, ada, expiresAt=(t0 + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")
    )
    clock.advance(minutes=16)  # "Window" is past its 15-minute verification window
    pending = await api.create_key(ada, name="Pending")
    attempts = await api.create_key(ada, name="Attempts")
    wrong = f"{(int(await code_for_key(api, ada, 'Attempts')) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert (await api.verify(ada, attempts["id"], wrong))["__typename"] == "VerificationError"
    unrevealed = await api.create_key(ada, name="Unrevealed")
    await api.verify(ada, unrevealed["id"], await code_for_key(api, ada, "Unrevealed"))
    revoked, revoked_creds = await released_key(api, ada)
    assert (await api.data(REVOKE_KEY, {"input": {"keyId": revoked["id"]}}, ada.token))["revokeKey"]["status"] == "REVOKED"
    good, good_creds = await released_key(api, ada)
    assert (await request_token(client, expiring_creds["clientId"], expiring_creds["clientSecret"])).status_code == 200
    clock.advance(minutes=5)  # t0 + 21 min: "expiring" has expired; "Pending" is still pending

    states = {
        (await api.key(ada, k["id"]))["status"]
        for k in (window, pending, attempts, unrevealed, revoked, expiring)
    }
    assert states == {"LOCKED", "PENDING_VERIFICATION", "ACTIVE", "REVOKED", "EXPIRED"}
    # Even if a secret hash were present on a key that was never revealed, the status rule alone
    # refuses it: plant a known secret on the pending, locked and unrevealed keys.
    planted = "planted-secret-planted-secret-planted-secret"
    for k in (window, pending, attempts, unrevealed):
        await ApiKey.filter(id=k["id"]).update(secret_hash=hash_secret(planted))

    attempts_made = {
        "unknown client": (f"us-east-1#{uuid.uuid4()}", good_creds["clientSecret"]),
        "wrong secret": (good_creds["clientId"], _one_character_off(good_creds["clientSecret"])),
        "pending": (pending["clientId"], planted),
        "locked by attempts": (attempts["clientId"], planted),
        "locked by window": (window["clientId"], planted),
        "verified, not revealed": (unrevealed["clientId"], planted),
        "revoked": (revoked_creds["clientId"], revoked_creds["clientSecret"]),
        "expired": (expiring_creds["clientId"], expiring_creds["clientSecret"]),
        "empty client id": ("", good_creds["clientSecret"]),
        "overlong client id": ("x" * 500, good_creds["clientSecret"]),
    }
    seen = {name: signature(await request_token(client, *pair)) for name, pair in attempts_made.items()}
    seen["no credentials"] = signature(await client.post(LOGIN, content=GRANT, headers=FORM))
    seen["bearer instead of basic"] = signature(
        await client.post(LOGIN, content=GRANT, headers={**FORM, "Authorization": "Bearer abc"})
    )

    reference = seen["unknown client"]
    assert reference[0] == 401
    assert (await request_token(client, "x", "y")).json() == INVALID_CLIENT_BODY
    assert ("www-authenticate", 'Basic realm="keyrelease"') in reference[2]
    assert ("cache-control", "no-store") in reference[2]
    for name, observed in seen.items():
        assert observed == reference, name
    assert (await request_token(client, good_creds["clientId"], good_creds["clientSecret"])).status_code == 200


async def test_a_revoked_key_stops_minting_tokens_with_the_next_request(api, client):
    """Nothing on this path is cached, so the staleness bound is zero: no clock move needed."""
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    refused = await request_token(client, creds["clientId"], creds["clientSecret"])
    assert refused.status_code == 401 and refused.json() == INVALID_CLIENT_BODY


async def test_a_key_revoked_while_the_body_is_on_its_way_gets_no_token(app, api):
    """The key is read after everything the client sends has arrived (on PostgreSQL the read
    travels with the rate-limit counters): a client that sends its headers, holds its body back
    until an admin revokes the key, then sends it, must be refused, not answered from a row read
    before the revocation."""
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    body_sent, waiting = asyncio.Event(), asyncio.Event()

    async def receive() -> dict:
        waiting.set()
        await body_sent.wait()
        return {"type": "http.request", "body": GRANT.encode(), "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    authorization = basic_auth(creds["clientId"], creds["clientSecret"]).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": LOGIN, "raw_path": LOGIN.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", authorization), (b"content-type", FORM["Content-Type"].encode())],
        "client": ("127.0.0.1", 40000), "server": ("test", 80),
    }
    request = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(waiting.wait(), 5)  # the request has its headers and waits for its body
    await api.data(REVOKE_KEY, {"input": {"keyId": key["id"]}}, ada.token)
    body_sent.set()
    await asyncio.wait_for(request, 5)
    assert sent[0]["status"] == 401, sent
    assert json.loads(sent[1]["body"]) == INVALID_CLIENT_BODY


async def test_an_expired_key_is_refused_and_its_tokens_never_outlive_it(api, client, clock):
    ada = await api.admin()
    expires = clock.now() + timedelta(hours=2)
    key, creds = await released_key(api, ada, expiresAt=expires.isoformat())
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).json()["expires_in"] == 3600

    clock.advance(minutes=90)
    late = (await request_token(client, creds["clientId"], creds["clientSecret"])).json()
    assert late["expires_in"] == 1800
    assert jwt.decode(late["access_token"], options={"verify_signature": False})["exp"] == int(expires.timestamp())

    clock.advance(minutes=30)
    refused = await request_token(client, creds["clientId"], creds["clientSecret"])
    assert refused.status_code == 401 and refused.json() == INVALID_CLIENT_BODY
    assert (await api.key(ada, key["id"]))["status"] == "EXPIRED"


# -- malformed requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (GRANT, None, "invalid_request"),
        (GRANT, "text/plain", "invalid_request"),
        ('{"grant_type": "client_credentials"}', "application/json", "invalid_request"),
        (GRANT, "multipart/form-data; boundary=x", "invalid_request"),
        ("", FORM["Content-Type"], "invalid_request"),
        ("scope=data", FORM["Content-Type"], "invalid_request"),
        ("grant_type=", FORM["Content-Type"], "invalid_request"),
        ("grant_type", FORM["Content-Type"], "invalid_request"),
        (GRANT + "&" + GRANT, FORM["Content-Type"], "invalid_request"),
        ("grant_type=client_credentials&grant_type=password", FORM["Content-Type"], "invalid_request"),
        ("grant_type=client_credentials&x=%FF", FORM["Content-Type"], "invalid_request"),
        ("grant_type=client_credentials&x=é", FORM["Content-Type"], "invalid_request"),
        ("&".join(f"f{i}=1" for i in range(40)) + "&" + GRANT, FORM["Content-Type"], "invalid_request"),
        ("grant_type=password", FORM["Content-Type"], "unsupported_grant_type"),
        ("grant_type=authorization_code&code=x", FORM["Content-Type"], "unsupported_grant_type"),
        ("grant_type=Client_Credentials", FORM["Content-Type"], "unsupported_grant_type"),
        ("grant_type=client_credentials", "Application/X-WWW-Form-Urlencoded; charset=UTF-8", None),
    ],
)
async def test_malformed_requests_get_rfc_6749_errors(api, client, body, content_type, error):
    _, creds = await released_key(api, await api.admin())
    headers = {"Authorization": basic_auth(creds["clientId"], creds["clientSecret"])}
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(LOGIN, content=body.encode(), headers=headers)
    if error is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error and response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        b"Basic",
        b"Basic ",
        b"Basic !!!not-base64!!!",
        b"Basic " + _b64(b"no-colon-here").encode(),
        b"Basic " + _b64(b"us-east-1#x:\xff\xfe").encode(),
        b"Basic " + _b64(b"us-east-1%FF:secret").encode(),
        b"Basic " + _b64(b"a:b")[:-1].encode(),
        b"Basic " + b"QUFB" * 1000,
        b"Basic \xc3\xa9\xc3\xa9==",
        b"basic " + _b64(b"a:b").encode() + b" trailing",
    ],
)
async def test_garbage_basic_headers_are_invalid_requests_never_errors(client, authorization):
    response = await client.post(LOGIN, content=GRANT, headers=[(b"content-type", FORM["Content-Type"].encode()), (b"authorization", authorization)])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_two_authorization_headers_are_an_invalid_request(api, client):
    _, creds = await released_key(api, await api.admin())
    value = basic_auth(creds["clientId"], creds["clientSecret"]).encode()
    headers = [(b"content-type", FORM["Content-Type"].encode()), (b"authorization", value), (b"authorization", value)]
    response = await client.post(LOGIN, content=GRANT, headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_a_huge_body_is_refused_before_it_is_read_and_the_service_carries_on(api, client):
    _, creds = await released_key(api, await api.admin())
    headers = {**FORM, "Authorization": basic_auth(creds["clientId"], creds["clientSecret"])}
    declared = await client.post(LOGIN, content=GRANT + "&pad=" + "x" * 5_000_000, headers=headers)
    assert declared.status_code == 413 and declared.json()["error"] == "invalid_request"

    async def chunks():
        yield GRANT.encode()
        for _ in range(100):
            yield b"&pad=" + b"x" * 10_000

    streamed = await client.post(LOGIN, content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413 and streamed.json()["error"] == "invalid_request"
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 200


async def test_an_unexpected_failure_is_logged_once_and_masked_and_its_log_holds_no_credential(
    api, client, caplog, monkeypatch, written_log
):
    _, creds = await released_key(api, await api.admin())
    header = basic_auth(creds["clientId"], creds["clientSecret"])

    async def broken(*args, **kwargs):
        raise RuntimeError(f"boom {creds['clientSecret']} from {header}")

    monkeypatch.setattr(api.app.state.services.clients, "authenticate", broken)
    caplog.set_level(logging.ERROR, logger="keyrelease")
    response = await request_token(client, creds["clientId"], creds["clientSecret"])
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "error_description": "The server could not issue a token."}
    assert "boom" not in response.text and "Traceback" not in response.text
    assert len([r for r in caplog.records if r.name == "keyrelease.oauth"]) == 1
    # The log a reader sees: the failure with its traceback, and no trace of the credentials.
    log = written_log.both()
    assert log.count("token endpoint failed") == 2 and log.count("Traceback (most recent call last):") == 2
    assert "in broken" in log and "RuntimeError" in log  # the frame and the type locate the bug
    for value in (creds["clientSecret"], header.split()[1]):
        assert value not in log


async def test_an_unreachable_database_is_a_503_without_details(api, client, caplog, monkeypatch):
    _, creds = await released_key(api, await api.admin())

    async def unreachable(*args, **kwargs):
        raise DBConnectionError("connection refused to db.internal:5432")

    monkeypatch.setattr(api.app.state.services.clients, "authenticate", unreachable)
    response = await request_token(client, creds["clientId"], creds["clientSecret"])
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert "db.internal" not in response.text and response.headers["retry-after"] == "1"


async def test_other_methods_are_not_allowed(client):
    assert (await client.get(LOGIN)).status_code == 405
