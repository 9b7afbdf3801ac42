"""What a live server writes to stdout and stderr while clients get every kind of error.

Real codes, a real partner one-time password, a real client secret and the admin token are
put into the query text and into the variables of every error path — refused, rate-limited,
unparseable, invalid, unauthenticated — and into token-endpoint requests and URLs. None of
them may reach the log; no expected error may be logged as an error or with a traceback;
each costs one INFO line with its code and the request id; and no line a client's text
forged may appear, in either log format.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from mailservers import SmtpServer, start_smtp_server

from keyrelease.testing.api import CODE_LINE, OTP_LINE
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import base_env
from keyrelease.testing.tokens import basic_auth

pytestmark = pytest.mark.live

ADMIN = "admin@logs.example"
PARTNER = "keys@partner.example"
#: A line a client tries to forge: a record of its own, with a terminal escape in it.
FORGED = "\r\n2030-01-01 00:00:00,000 CRITICAL keyrelease [-]: forged \x1b[2J"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename } }"
REVEAL = "mutation($i: RevealKeyInput!) { revealKey(input: $i) { __typename ... on KeyCredentials { clientId clientSecret } } }"


@dataclass
class Live:
    server: Server
    smtp: SmtpServer
    token: str
    log_format: str
    expected: list[tuple[str, str]] = field(default_factory=list)  # (request id, code) of every expected error

    def mail_line(self, address: str, pattern: re.Pattern[str], nth: int) -> str:
        deadline = time.monotonic() + 15
        while len(self.smtp.handler.to(address)) < nth:
            assert time.monotonic() < deadline, f"no mail {nth} to {address}"
            time.sleep(0.05)
        match = pattern.search(self.smtp.handler.to(address)[nth - 1].text())
        assert match
        return match.group(1)


@pytest.fixture(scope="module", params=["text", "json"])
def live(request, tmp_path_factory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp(f"error-logs-{request.param}")
    smtp = start_smtp_server()
    env = base_env(
        tmp,
        **smtp.env(),
        KEYRELEASE_LOG_FORMAT=request.param,
        KEYRELEASE_RATE_LIMIT_PARTNER_KEY="2/hour",
        KEYRELEASE_RATE_LIMIT_TOKEN_CLIENT="3/hour",
        KEYRELEASE_RATE_LIMIT_ADMIN="12/hour",
    )
    run_cli(env, "migrate")
    token = run_cli(env, "admin", "create", "--institution", "Logs U", "--email", ADMIN).stdout.strip().splitlines()[-1]
    server = Server(env=env, log_path=tmp / "server.log").start("--log-level", "info")  # access lines too
    try:
        yield Live(server, smtp, token, request.param)
    finally:
        server.stop()
        smtp.stop()


def post(http: httpx.Client, live: Live, query: str, variables: dict | None = None, token: str | None = None, code: str | None = None) -> dict:
    """POST a GraphQL request; when ``code`` is given it must fail with that error code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    if code is not None:
        assert [e["extensions"]["code"] for e in body.get("errors", [])] == [code], body
        live.expected.append((response.headers["x-request-id"], code))
    return body


def test_no_error_path_writes_a_secret_a_traceback_or_a_forged_line(live):
    http = httpx.Client(base_url=live.server.url, timeout=30)
    admin = live.token

    # Real secrets: a partner key's code and OTP, an institutional key's code and client secret.
    partner = post(http, live, CREATE, {"i": {"name": "Partner", "kind": "PARTNER", "partnerName": "P", "partnerEmail": PARTNER}}, admin)
    partner_id = partner["data"]["createKey"]["id"]
    partner_code = live.mail_line(ADMIN, CODE_LINE, 1)
    assert post(http, live, VERIFY, {"i": {"keyId": partner_id, "code": partner_code}}, admin)["data"]["verifyKey"]["__typename"] == "ApiKey"
    otp = live.mail_line(PARTNER, OTP_LINE, 1)
    key = post(http, live, CREATE, {"i": {"name": "Institutional", "kind": "INSTITUTIONAL"}}, admin)
    key_id = key["data"]["createKey"]["id"]
    code = live.mail_line(ADMIN, CODE_LINE, 2)
    assert post(http, live, VERIFY, {"i": {"keyId": key_id, "code": code}}, admin)["data"]["verifyKey"]["__typename"] == "ApiKey"
    creds = post(http, live, REVEAL, {"i": {"keyId": key_id}}, admin)["data"]["revealKey"]
    client_id, secret = creds["clientId"], creds["clientSecret"]
    everything = {"code": code, "partnerCode": partner_code, "otp": otp, "secret": secret, "token": admin}

    # A partner revealKey refused by its rate limit, with the real OTP: in variables, then in the query text.
    for wrong in ("AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH"):
        post(http, live, REVEAL, {"i": {"keyId": partner_id, "oneTimePassword": wrong}})
    post(http, live, REVEAL, {"i": {"keyId": partner_id, "oneTimePassword": otp}, **everything}, code="RATE_LIMITED")
    literal = f'mutation {{ revealKey(input: {{keyId: "{partner_id}", oneTimePassword: "{otp}"}}) {{ __typename }} }}'
    post(http, live, literal, everything, code="RATE_LIMITED")

    # verifyKey with a bad admin token, and with none: the code in the query text and in variables.
    literal = f'mutation {{ verifyKey(input: {{keyId: "{key_id}", code: "{code}"}}) {{ __typename }} }}'
    post(http, live, literal, everything, token=f"{secret}-not-a-token", code="UNAUTHENTICATED")
    post(http, live, VERIFY, {"i": {"keyId": key_id, "code": partner_code}, **everything}, code="UNAUTHENTICATED")

    # Parse errors, one echoing a string with a newline that would start a forged record.
    post(http, live, f'{{ me {{ email }} }} "{otp} {FORGED}', everything, code="GRAPHQL_PARSE_FAILED")
    post(http, live, f'mutation {{ verifyKey(input: {{keyId: "{key_id}", code: "{code}"', everything, code="GRAPHQL_PARSE_FAILED")
    # Validation errors: an unknown argument and a wrong literal type, each holding secrets.
    post(http, live, f'{{ me(secret: """{secret}{FORGED}""") {{ email }} }}', everything, admin, code="GRAPHQL_VALIDATION_FAILED")
    post(http, live, f'mutation {{ revealKey(input: {{keyId: {{x: "{code}"}}, oneTimePassword: "{otp}"}}) {{ __typename }} }}', everything, code="GRAPHQL_VALIDATION_FAILED")
    # Two guesses in one document.
    two = f'mutation {{ a: verifyKey(input: {{keyId: "{key_id}", code: "{code}"}}) {{ __typename }} b: revealKey(input: {{keyId: "{partner_id}", oneTimePassword: "{otp}"}}) {{ __typename }} }}'
    post(http, live, two, everything, admin, code="TOO_MANY_GUESSES")
    # Variables that do not fit their types, and arguments out of range.
    post(http, live, VERIFY, {"i": {"keyId": key_id, "code": code, "oneTimePassword": otp + FORGED}, **everything}, admin, code="BAD_USER_INPUT")
    post(http, live, "query($n: Int) { keys(first: $n) { edges { cursor } } }", {"n": None, **everything}, admin, code="BAD_USER_INPUT")
    post(http, live, f'{{ keys(first: 5, after: """{secret}{FORGED}""") {{ edges {{ cursor }} }} }}', everything, admin, code="BAD_USER_INPUT")
    # Failures as data (no GraphQL error): a wrong code, a wrong OTP for another key.
    post(http, live, VERIFY, {"i": {"keyId": key_id, "code": partner_code}, **everything}, admin)
    post(http, live, REVEAL, {"i": {"keyId": key_id, "oneTimePassword": otp}, **everything})
    # An admin's mutations until their rate limit refuses one; every one holds the secrets.
    for _ in range(12):
        body = post(http, live, VERIFY, {"i": {"keyId": str(uuid.uuid4()), "code": code}, **everything}, admin)
        if "errors" in body:
            assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            live.expected.append(("", "RATE_LIMITED"))
            break
    else:
        pytest.fail("the admin rate limit never refused")

    # GraphQL and the token endpoint with secrets in the URL, in headers and in the body.
    query = urllib.parse.quote(f'mutation {{ revealKey(input: {{keyId: "{partner_id}", oneTimePassword: "{otp}"}}) {{ __typename }} }}')
    assert http.get(f"/graphql?query={query}&secret={secret}", headers={"Accept": "application/json"}).status_code < 500
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    login = "/ids/auth/login"
    assert http.post(login, content=f"grant_type=client_credentials&client_secret={secret}", headers={**form, "Authorization": basic_auth(client_id, otp)}).status_code == 401
    assert http.post(f"{login}?client_secret={secret}&code={code}", content=f"client_id={client_id}&client_secret={secret}", headers=form).status_code == 400
    assert http.post(login, content=f"grant_type={otp}", headers={**form, "Authorization": basic_auth(client_id, secret)}).status_code == 400
    assert http.post(login, content="grant_type=client_credentials", headers={**form, "Authorization": basic_auth(client_id, secret)}).status_code == 200
    assert http.post(login, content="grant_type=client_credentials", headers={**form, "Authorization": basic_auth(client_id, secret)}).status_code == 429
    http.close()
    live.server.stop()  # everything written and flushed

    output = live.server.output()
    # The secrets in every form a request carried them: raw, compact, URL-encoded, Basic-encoded.
    forms = {name: value for name, value in everything.items()}
    forms |= {"otp (compact)": otp.replace("-", ""), "basic": basic_auth(client_id, secret).split()[1], "basic (otp)": basic_auth(client_id, otp).split()[1]}
    forms |= {f"{name} (url)": urllib.parse.quote(value, safe="") for name, value in everything.items()}
    for name, value in forms.items():
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", output), f"{name} is in the log"
    assert "Traceback" not in output and "withheld" not in output  # no exception was logged at all
    assert "\x1b" not in output and "\r" not in output

    lines = [line for line in output.splitlines() if not line.startswith(BANNER)]
    records = [parse(line, live.log_format) for line in lines]  # every line is a record of its own
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], output
    assert not [r for r in records if "forged" in r["message"] and not r["message"].startswith("GraphQL")]
    for request_id, expected_code in live.expected:
        if request_id:  # one INFO line naming the code, under the request's id
            mine = [r for r in records if r["request_id"] == request_id and r["logger"] == "keyrelease.graphql"]
            assert [(r["level"], r["message"]) for r in mine] == [("INFO", f"GraphQL errors: {expected_code}")]
    assert sum(r["message"] == "GraphQL errors: RATE_LIMITED" for r in records) == 3
    assert any(r["logger"] == "uvicorn.access" and '"POST /ids/auth/login HTTP/1.1" 429' in r["message"] for r in records)
    assert any(r["logger"] == "uvicorn.access" and r["message"].endswith('"GET /graphql HTTP/1.1" 400') for r in records)


#: What `keyrelease serve` prints for a person before it serves (not log records).
BANNER = ("keyrelease serving on", "Emails link to", "Listening on every interface", "Create an admin token")


def parse(line: str, log_format: str) -> dict:
    """A written line as its fields; fails on a line that is not a record of its own."""
    if log_format == "json":
        return json.loads(line)
    assert RECORD_START.match(line) and not line.startswith("2030-"), f"not a record: {line!r}"
    head, message = line.split("]: ", 1)
    _, _, level, logger, request_id = head.split(" ", 4)
    return {"level": level, "logger": logger, "request_id": request_id.strip("["), "message": message}


async def test_an_unexpected_error_is_logged_once_with_its_traceback_and_nothing_of_the_request(api, caplog, monkeypatch, written_log):
    ada = await api.admin()
    key = await api.create_key(ada)
    code, otp = "482913", "WFW3-QQQQ-RRRR-SSSS"

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError(f"{code} {otp}")

    monkeypatch.setattr(api.app.state.services.keys, "verify_key", broken)
    caplog.set_level(logging.DEBUG)
    query = f'mutation($i: VerifyKeyInput!) {{ verifyKey(input: $i) {{ __typename }} }} # {otp}'
    response = await api.post(query, {"i": {"keyId": key["id"], "code": code}, "otp": otp}, ada.token)
    body = response.json()
    assert body["errors"][0]["message"] == "Internal error." and body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.getMessage()) for r in errors] == [("keyrelease.graphql", "GraphQL field verifyKey raised KeyError")]
    written = written_log.text.getvalue()
    [record] = [json.loads(line) for line in written_log.json.getvalue().splitlines() if '"level": "ERROR"' in line]
    assert record["request_id"] == response.headers["x-request-id"]
    assert record["exception"].startswith("Traceback") and "in broken" in record["exception"]
    assert written.count("Traceback (most recent call last):") == 1
    for leaked in (code, otp, ada.token, "mutation($i", "__typename", "VerifyKeyInput"):
        assert leaked not in written_log.both(), leaked
    assert key["id"] not in record["message"] + record["exception"]  # (the ORM's DEBUG lines name it)
