"""Slow and heavy clients against a live server: connections that never finish their headers
are closed after the header deadline while the service keeps answering, connections beyond the
cap are refused at once, oversize headers are refused, and a caller without an admin token may
send only a small GraphQL document, refused before it is parsed.

The header deadline is a real timer in the server process (uvicorn's event loop), so these
tests wait on sockets for it; nothing here asserts a speed.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from graphql import get_introspection_query

from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import base_env

pytestmark = pytest.mark.live

HEADER_TIMEOUT = 4
PARTIAL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: keyrelease.test\r\n"
REVEAL_KEY = (Path(__file__).parent.parent / "src/keyrelease/web/static/operations.js").read_text()


@pytest.fixture(scope="module", params=["httptools", "h11"])
def live(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    env = base_env(tmp, KEYRELEASE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))
    created = run_cli(env, "admin", "create", "--institution", "Slow U", "--email", "slow@uni.example")
    server = Server(env=env, log_path=tmp / "server.log").start("--http", request.param)
    try:
        yield server, created.stdout.strip().splitlines()[-1], request.param
    finally:
        server.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def still_open(sock: socket.socket) -> bool:
    """Nothing received and no end of stream: the server holds the connection."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # returns b"" at the end of the stream, or an answer
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_slow_header_connections_leave_healthz_answering_and_are_closed_after_the_header_timeout(live):
    server, _, _ = live
    trickling = [connect(server) for _ in range(200)]
    for sock in trickling:
        sock.sendall(PARTIAL_REQUEST)
    silent = [connect(server) for _ in range(20)]
    for _ in range(3):
        for sock in trickling:
            sock.sendall(b"X")  # one more byte of a header that never ends
        assert httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200
    assert all(still_open(sock) for sock in trickling + silent), "closed before the deadline"

    for sock in trickling:
        answer = read_until_closed(sock, HEADER_TIMEOUT + 10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    for sock in silent:
        assert read_until_closed(sock, HEADER_TIMEOUT + 10) == b""  # closed without a word
    for sock in trickling + silent:
        sock.close()
    assert httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200


def test_a_keep_alive_connection_trickling_its_next_request_is_closed_too(live):
    server, _, _ = live
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyrelease.test\r\n\r\n")
    first = b""
    while not first.endswith(b'{"status":"ok"}'):
        first += sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200 ")
    sock.sendall(b"GET /hea")  # the next request starts, and stalls
    assert read_until_closed(sock, HEADER_TIMEOUT + 10).startswith(b"HTTP/1.1 408 ")
    sock.close()


def test_headers_larger_than_the_limit_are_refused(live):
    server, _, protocol = live
    response = httpx.get(server.url + "/healthz", headers={"X-Padding": "a" * 20_000}, timeout=5)
    # httptools: counted by keyrelease, 431; h11 bounds what it buffers of incomplete headers
    # itself, so on h11 the bound holds for headers that arrive in pieces (checked below).
    if protocol == "httptools":
        assert response.status_code == 431
        assert "larger than 16384 bytes" in response.text
    for piece in (b"X-Padding: " + b"a" * 8000 + b"\r\n", b"a" * 8000):  # whole lines; one endless line
        sock = connect(server)
        sock.sendall(PARTIAL_REQUEST + b"X-Padding: ")
        for _ in range(4):
            sock.sendall(piece)
            time.sleep(0.05)  # separate reads on the server, as a slow sender's would be
        answer = read_until_closed(sock, HEADER_TIMEOUT - 1)  # refused for size, not for time
        assert answer.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 400 ")), answer[:80]
        sock.close()


def test_an_oversize_document_without_an_admin_token_is_refused_before_parsing(live):
    server, token, _ = live
    attack = "{" + " __typename" * 300 + "}"  # 3.3 KB
    unparseable = "{ " + "__typename " * 300 + "((("  # a syntax error, if it were parsed
    invalid = "{ " + "noSuchField " * 300 + "}"  # a validation error, if it were validated
    for document in (attack, unparseable, invalid):
        for headers in ({}, {"Authorization": "Bearer kra_not-a-real-token"}):
            response = httpx.post(server.url + "/graphql", json={"query": document}, headers=headers, timeout=10)
            assert response.status_code == 413
            [error] = response.json()["errors"]
            assert error["extensions"] == {"code": "DOCUMENT_TOO_LARGE"}
            assert "2048 bytes" in error["message"] and "Authorization: Bearer" in error["message"]
            assert "locations" not in error  # no parser ever saw it

    admin = {"Authorization": f"Bearer {token}"}
    allowed = httpx.post(server.url + "/graphql", json={"query": attack}, headers=admin, timeout=10)
    assert allowed.status_code == 200 and allowed.json()["data"] == {"__typename": "Query"}
    checked = httpx.post(server.url + "/graphql", json={"query": invalid}, headers=admin, timeout=10)
    assert checked.json()["errors"][0]["message"].startswith("Cannot query field 'noSuchField'")


def test_a_partner_reveal_and_the_schema_introspection_fit_without_a_token(live):
    server, _, _ = live
    reveal = REVEAL_KEY.split("export const REVEAL_KEY = `", 1)[1].split("`", 1)[0]
    variables = {"input": {"keyId": "00000000-0000-0000-0000-000000000000", "oneTimePassword": "AAAA-BBBB"}}
    response = httpx.post(server.url + "/graphql", json={"query": reveal, "variables": variables}, timeout=10)
    assert response.status_code == 200
    assert response.json()["data"]["revealKey"]["__typename"] == "VerificationError"
    introspection = get_introspection_query(descriptions=True, input_value_deprecation=True)
    schema = httpx.post(server.url + "/graphql", json={"query": introspection}, timeout=10)
    assert schema.status_code == 200 and schema.json()["data"]["__schema"]["mutationType"]["name"] == "Mutation"


def test_requests_beyond_the_connection_cap_get_503_at_once(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_MAX_CONNECTIONS="10", KEYRELEASE_HEADER_TIMEOUT_SECONDS="60")
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    held: list[socket.socket] = []
    try:
        held = [connect(server) for _ in range(12)]
        refused = httpx.get(server.url + "/healthz", timeout=5)
        assert refused.status_code == 503
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while (status := httpx.get(server.url + "/healthz", timeout=5).status_code) != 200:
            assert time.monotonic() < deadline, status  # the server has not yet seen them close
    finally:
        for sock in held:
            sock.close()
        server.stop()
