"""Every answer of POST /ids/auth/login, byte for byte: status, JSON body and headers, for
each way a request can be wrong, at the exact size and field-count limits, and for a client
that goes away before its body arrives."""

from __future__ import annotations

import json
import logging

import pytest
from tortoise.exceptions import DBConnectionError

from keyrelease.testing.api import released_key
from keyrelease.testing.tokens import FORM, GRANT, basic_auth, request_token

LOGIN = "/ids/auth/login"
UNKNOWN = basic_auth("us-east-1#00000000-0000-0000-0000-000000000000", "no-such-secret")
CONTENT_TYPE = "Content-Type must be application/x-www-form-urlencoded."
NOT_A_FORM = "The body is not a valid form, or repeats a parameter."
TOO_LARGE = "The request body is larger than 4096 bytes."


def error(code: str, description: str) -> dict:
    return {"error": code, "error_description": description}


@pytest.mark.parametrize(
    ("headers", "body", "status", "expected"),
    [
        ({"Authorization": UNKNOWN}, GRANT, 400, error("invalid_request", CONTENT_TYPE)),
        ({"Authorization": UNKNOWN, "Content-Type": "text/plain"}, GRANT, 400, error("invalid_request", CONTENT_TYPE)),
        ({**FORM, "Authorization": UNKNOWN}, GRANT + "&" + GRANT, 400, error("invalid_request", NOT_A_FORM)),
        ({**FORM, "Authorization": UNKNOWN}, "scope=x", 400, error("invalid_request", "grant_type is required.")),
        (
            {**FORM, "Authorization": UNKNOWN},
            "grant_type=password",
            400,
            error("unsupported_grant_type", "Only grant_type=client_credentials is supported."),
        ),
        (
            {**FORM, "Authorization": "Basic !!!"},
            GRANT,
            400,
            error("invalid_request", "The Authorization header is not valid Basic credentials."),
        ),
        ({**FORM, "Authorization": UNKNOWN}, GRANT, 401, error("invalid_client", "Client authentication failed.")),
        ({**FORM}, GRANT, 401, error("invalid_client", "Client authentication failed.")),
    ],
)
async def test_each_refusal_has_its_exact_status_body_and_headers(client, headers, body, status, expected):
    response = await client.post(LOGIN, content=body.encode(), headers=headers)
    assert response.status_code == status
    assert response.json() == expected
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-length"] == str(len(response.content))
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="keyrelease"'
    else:
        assert "www-authenticate" not in response.headers


async def test_a_granted_token_answer_is_compact_json_with_bearer_type(api, client):
    _, creds = await released_key(api, await api.admin())
    response = await request_token(client, creds["clientId"], creds["clientSecret"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"} and body["token_type"] == "Bearer"
    assert response.content == json.dumps(body, separators=(",", ":")).encode()


def asgi_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    """A POST to the token endpoint, for driving the ASGI app by hand."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": LOGIN, "raw_path": LOGIN.encode(), "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 50000), "server": ("keyrelease.test", 80),
    }


def padded(total: int) -> bytes:
    """A valid grant body of exactly ``total`` bytes."""
    prefix = GRANT + "&pad="
    return (prefix + "x" * (total - len(prefix))).encode()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_body_of_exactly_4096_bytes_is_read_and_one_more_byte_is_refused(client, streamed):
    headers = {**FORM, "Authorization": UNKNOWN}

    def content(body: bytes):
        if not streamed:
            return body

        async def chunks():
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        return chunks()

    at_limit = await client.post(LOGIN, content=content(padded(4096)), headers=headers)
    assert at_limit.status_code == 401, at_limit.text
    over = await client.post(LOGIN, content=content(padded(4097)), headers=headers)
    assert over.status_code == 413
    assert over.json() == error("invalid_request", TOO_LARGE)


async def test_sixteen_form_fields_are_read_and_a_seventeenth_is_refused(client):
    headers = {**FORM, "Authorization": UNKNOWN}
    fifteen = "&".join(f"f{i}=1" for i in range(15))
    at_limit = await client.post(LOGIN, content=f"{GRANT}&{fifteen}", headers=headers)
    assert at_limit.status_code == 401, at_limit.text
    over = await client.post(LOGIN, content=f"{GRANT}&{fifteen}&f15=1", headers=headers)
    assert over.status_code == 400 and over.json() == error("invalid_request", NOT_A_FORM)


async def test_the_media_type_is_what_comes_before_the_first_parameter(client):
    content_type = "application/x-www-form-urlencoded; charset=UTF-8; boundary=x"
    response = await client.post(LOGIN, content=GRANT, headers={"Content-Type": content_type, "Authorization": UNKNOWN})
    assert response.json() == error("invalid_client", "Client authentication failed.")  # the form was read


async def test_blank_form_values_are_kept_so_an_empty_grant_type_is_missing(client):
    response = await client.post(LOGIN, content="grant_type=&scope=", headers={**FORM, "Authorization": UNKNOWN})
    assert response.json() == error("invalid_request", "grant_type is required.")


async def test_a_client_that_disconnects_before_its_body_gets_an_invalid_request(app):
    sent: list[dict] = []
    headers = [(b"content-type", FORM["Content-Type"].encode()), (b"authorization", UNKNOWN.encode())]
    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(asgi_scope(headers), receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == error("invalid_request", "The request body was not received.")


async def test_a_blank_repeat_of_a_parameter_is_still_a_repeat(client):
    response = await client.post(
        LOGIN, content=f"grant_type=&{GRANT}", headers={**FORM, "Authorization": UNKNOWN}
    )
    assert response.status_code == 400 and response.json() == error("invalid_request", NOT_A_FORM)


async def test_a_declared_oversize_body_is_refused_without_reading_it(app):
    sent: list[dict] = []
    reads = 0
    headers = [
        (b"content-type", FORM["Content-Type"].encode()),
        (b"content-length", b"4097"),
        (b"authorization", UNKNOWN.encode()),
    ]

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": padded(4097), "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(asgi_scope(headers), receive, send)
    assert sent[0]["status"] == 413 and reads == 0


async def drive(app, messages: list[dict]) -> tuple[int, dict]:
    """Send ``messages`` as the request body events; the status and JSON body answered."""
    sent: list[dict] = []
    pending = list(messages)
    headers = [(b"content-type", FORM["Content-Type"].encode()), (b"authorization", UNKNOWN.encode())]

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(asgi_scope(headers), receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_body_events_may_leave_out_body_and_more_body_as_asgi_allows(app):
    # No "body": an empty chunk. No "more_body": the last chunk.
    status, body = await drive(app, [{"type": "http.request", "more_body": True}, {"type": "http.request", "body": GRANT.encode()}])
    assert (status, body) == (401, error("invalid_client", "Client authentication failed."))
    status, body = await drive(app, [{"type": "http.request", "body": b"grant_type=client_", "more_body": True},
                                     {"type": "http.request", "body": b"credentials", "more_body": False}])
    assert status == 401


async def test_header_names_go_out_lowercase_as_asgi_requires(app):
    sent: list[dict] = []
    headers = [(b"content-type", FORM["Content-Type"].encode()), (b"authorization", UNKNOWN.encode())]

    async def receive() -> dict:
        return {"type": "http.request", "body": GRANT.encode()}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = asgi_scope(headers)
    del scope["client"]  # optional in ASGI: the peer is then unknown
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    names = [name for name, _ in sent[0]["headers"]]
    assert {b"content-type", b"cache-control", b"pragma", b"content-length", b"www-authenticate"} <= set(names)
    assert all(name == name.lower() for name in names)


async def test_an_unreachable_database_is_a_retryable_503_logged_once_by_exception_type(app, client, caplog, monkeypatch):
    async def unreachable(*_args):
        raise DBConnectionError("connection to db.internal:5432 refused")

    monkeypatch.setattr(app.state.services.clients, "authenticate", unreachable)
    caplog.set_level(logging.INFO, logger="keyrelease.oauth")
    response = await client.post(LOGIN, content=GRANT, headers={**FORM, "Authorization": UNKNOWN})
    assert response.status_code == 503
    assert response.json() == error("temporarily_unavailable", "Try again shortly.")
    assert response.headers["retry-after"] == "1"
    records = [r for r in caplog.records if r.name == "keyrelease.oauth"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "token endpoint: database unavailable (DBConnectionError)")
    ]


async def test_an_unexpected_failure_is_a_500_logged_once_with_its_traceback(app, client, caplog, monkeypatch):
    async def crash(*_args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(app.state.services.clients, "authenticate", crash)
    response = await client.post(LOGIN, content=GRANT, headers={**FORM, "Authorization": UNKNOWN})
    assert response.status_code == 500
    assert response.json() == error("server_error", "The server could not issue a token.")
    records = [r for r in caplog.records if r.name == "keyrelease.oauth"]
    assert [(r.levelname, r.getMessage()) for r in records] == [("ERROR", "token endpoint failed")]
    assert records[0].exc_info and records[0].exc_info[0] is RuntimeError
