"""``keyrelease serve`` as a newcomer meets it: the address it serves is the one emails and
tokens carry, a busy port is one clear line, the CLI's stderr is quiet, ``--help`` explains."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from environment import needs_postgres, scratch_postgres
from keyrelease.codes import verification_code
from keyrelease.testing.processes import Server, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env

pytestmark = pytest.mark.live

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { ... on ApiKey { id } } }"
VERIFY = "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { __typename } }"
REVEAL = "mutation($i: RevealKeyInput!) { revealKey(input: $i) { ... on KeyCredentials { clientId clientSecret } } }"


def gql(server: Server, token: str, query: str, variables: dict) -> dict:
    response = httpx.post(
        server.url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response.json()["data"]


def verified_key(server: Server, token: str, **fields: str) -> str:
    key_id = gql(server, token, CREATE, {"i": {"name": "port test", **fields}})["createKey"]["id"]
    code = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    assert gql(server, token, VERIFY, {"i": {"keyId": key_id, "code": code}})["verifyKey"]["__typename"] == "ApiKey"
    return key_id


def wait_for_output(server: Server, pattern: str, seconds: float = 20) -> re.Match[str]:
    deadline = time.monotonic() + seconds
    while not (match := re.search(pattern, server.output())):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    return match


def test_serving_on_another_port_puts_that_port_in_partner_links_and_the_token_issuer(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_MAIL_TRANSPORT="console")
    token = run_cli(env, "admin", "create", "--institution", "Port U", "--email", "port@uni.example").stdout.split()[-1]
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    assert server.port != 8000
    try:
        announced = wait_for_output(server, r"Emails link to (\S+)/partner and tokens carry iss (\S+) ")
        assert announced.groups() == (server.url, server.url)

        verified_key(server, token, kind="PARTNER", partnerName="Acme", partnerEmail="p@acme.example")
        link = wait_for_output(server, r"Retrieve its credentials once, with these two values, at (\S+)")
        assert link.group(1) == f"{server.url}/partner"

        key_id = verified_key(server, token, kind="INSTITUTIONAL")
        credentials = gql(server, token, REVEAL, {"i": {"keyId": key_id}})["revealKey"]
        response = httpx.post(
            server.url + "/ids/auth/login",
            data={"grant_type": "client_credentials"},
            auth=(quote(credentials["clientId"], safe=""), quote(credentials["clientSecret"], safe="")),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        payload = response.json()["access_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["iss"] == server.url
    finally:
        server.stop()


def test_a_configured_public_url_wins_over_the_address_served(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_PUBLIC_URL="https://keys.uni.example/")
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    try:
        announced = wait_for_output(server, r"Emails link to (\S+)/partner and tokens carry iss (\S+) \(public URL (\S+)")
        assert announced.groups() == ("https://keys.uni.example", "https://keys.uni.example", "KEYRELEASE_PUBLIC_URL).")
    finally:
        server.stop()


def test_a_second_serve_on_a_busy_port_exits_with_one_line_naming_the_address(tmp_path):
    env = base_env(tmp_path)
    first = Server(env=env, log_path=tmp_path / "first.log").start()
    try:
        second = run_cli(env, "serve", "--port", str(first.port), timeout=30)
        assert second.returncode == 1
        assert second.stdout == ""
        assert second.stderr == f"keyrelease: cannot listen on 127.0.0.1:{first.port}: address already in use\n"
        assert httpx.get(first.url + "/healthz", timeout=5).status_code == 200  # the first is untouched
    finally:
        first.stop()


def test_cli_commands_write_nothing_to_stderr_when_all_is_well(tmp_path):
    env = base_env(tmp_path)
    for args in (
        ("migrate",),
        ("admin", "create", "--institution", "Quiet U", "--email", "quiet@uni.example"),
        ("admin", "list"),
    ):
        result = run_cli(env, *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", (args, result.stderr)


def test_the_server_log_has_no_tortoise_lifecycle_lines(tmp_path):
    server = Server(env=base_env(tmp_path), log_path=tmp_path / "server.log").start("--log-level", "info")
    server.stop()
    log = server.output()
    assert "Application startup complete" in log
    assert "Tortoise-ORM" not in log


def test_serve_help_explains_host_and_port_with_their_defaults():
    result = run_cli({}, "serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert re.search(r"--host HOST Address to listen on \(default: 127\.0\.0\.1", text), text
    assert re.search(r"--port PORT TCP port to listen on \(default: 8000", text), text
    assert "KEYRELEASE_PUBLIC_URL" in text


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@needs_postgres
def test_workers_serve_one_port_from_several_processes_on_postgresql(tmp_path):
    with scratch_postgres("keyrelease_workers") as database_url:
        env = base_env(tmp_path, KEYRELEASE_DATABASE_URL=database_url)
        assert run_cli(env, "migrate").returncode == 0
        token = run_cli(env, "admin", "create", "--institution", "W U", "--email", "w@uni.example").stdout.split()[-1]
        server = Server(env=env, log_path=tmp_path / "server.log", options=("--workers", "2")).start()
        try:
            wait_for_output(server, r"2 worker processes")
            deadline = time.monotonic() + 20
            while len(workers := _children(server.pid)) < 2:  # the second may still be starting
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.1)
            assert len(workers) == 2
            key_id = verified_key(server, token, kind="INSTITUTIONAL")  # the whole flow, across whichever workers answer
            assert gql(server, token, "query($id: ID!) { key(id: $id) { status } }", {"id": key_id})["key"] == {
                "status": "ACTIVE"
            }
        finally:
            server.stop()
        assert server.process is not None and server.process.returncode == 0, server.output()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # SIGTERM reached every worker


def test_workers_are_refused_while_the_rate_limits_live_in_one_process(tmp_path):
    done = run_cli(base_env(tmp_path), "serve", "--port", "0", "--workers", "2")
    assert done.returncode == 2
    assert "--workers 2 needs the rate-limit counters in the database" in done.stderr
