"""Frontends on another origin: a page served on another local port calls /graphql from a
real browser (Chromium), allowed when its origin is listed in KEYRELEASE_CORS_ORIGINS and
refused by the browser when it is not. The token endpoint never answers with CORS headers."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.testing.api import CODE_LINE
from keyrelease.testing.processes import Server, free_port, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env

CHROMIUM = Path("/usr/bin/chromium")

CREATE = 'mutation { createKey(input: {name: "Portal key", kind: INSTITUTIONAL}) { ... on ApiKey { id } ... on Error { message } } }'
VERIFY = 'mutation($id: ID!, $code: String!) { verifyKey(input: {keyId: $id, code: $code}) { ... on ApiKey { status } ... on Error { message } } }'
REVEAL = 'mutation($id: ID!) { revealKey(input: {keyId: $id}) { ... on KeyCredentials { clientId clientSecret } ... on Error { message } } }'

#: What a portal's frontend does: fetch() with the admin's bearer token, JSON in and out.
CALL = """async ([url, token, query, variables]) => {
    try {
        const response = await fetch(url + "/graphql", {
            method: "POST",
            headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
            body: JSON.stringify({query, variables}),
        });
        return {ok: true, body: await response.json()};
    } catch (error) {
        return {ok: false, error: String(error)};
    }
}"""


def serve_portal(directory: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    (directory / "index.html").write_text("<!doctype html><title>Portal</title><h1>Portal</h1>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    portal = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=portal.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{portal.server_address[1]}", portal


@pytest.fixture(scope="module")
def portals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    listed, listed_server = serve_portal(tmp_path_factory.mktemp("listed"))
    other, other_server = serve_portal(tmp_path_factory.mktemp("other"))
    yield listed, other
    listed_server.shutdown()
    other_server.shutdown()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, portals: tuple[str, str]) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp("cors")
    env = {
        "KEYRELEASE_VAR_DIR": str(tmp / "var"),
        "KEYRELEASE_SECRET_KEY": SECRET_KEY,
        "KEYRELEASE_MAIL_TRANSPORT": "console",
        "KEYRELEASE_CORS_ORIGINS": portals[0],
    }
    assert run_cli(env, "migrate").returncode == 0
    token = run_cli(env, "admin", "create", "--institution", "Portal U", "--email", "ada@portal.example").stdout.split()[-1]
    server = Server(env, log_path=tmp / "server.log").start()
    yield server, token
    server.stop()


def newest_code(server: Server, after: int) -> str:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = CODE_LINE.findall(server.output()[after:])
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no code mailed")


@pytest.mark.live
def test_a_listed_origin_runs_the_whole_release_from_the_browser_and_another_is_refused(api, portals):
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Chromium at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    server, token = api
    listed, other = portals
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(listed)
            mark = len(server.output())
            created = page.evaluate(CALL, [server.url, token, CREATE, {}])
            assert created["ok"], created
            key_id = created["body"]["data"]["createKey"]["id"]
            code = newest_code(server, mark)
            verified = page.evaluate(CALL, [server.url, token, VERIFY, {"id": key_id, "code": code}])
            assert verified["body"]["data"]["verifyKey"] == {"status": "ACTIVE"}, verified
            revealed = page.evaluate(CALL, [server.url, token, REVEAL, {"id": key_id}])
            credentials = revealed["body"]["data"]["revealKey"]
            assert set(credentials) == {"clientId", "clientSecret"} and credentials["clientSecret"], revealed

            page.goto(other)
            refused = page.evaluate(CALL, [server.url, token, CREATE, {}])
            assert refused == {"ok": False, "error": "TypeError: Failed to fetch"}, refused
        finally:
            browser.close()
    # The browser stopped at the refused preflight: the unlisted page created nothing.
    keys = httpx.post(
        server.url + "/graphql",
        json={"query": "{ keys { edges { node { name } } } }"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["data"]["keys"]["edges"]
    assert [edge["node"]["name"] for edge in keys] == ["Portal key"]


@pytest.mark.live
def test_cors_headers_go_to_the_listed_origin_only_and_never_on_the_token_endpoint(api, portals):
    server, _ = api
    listed, other = portals
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}

    allowed = httpx.options(server.url + "/graphql", headers={"Origin": listed, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == listed
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert set(re.split(r",\s*", allowed.headers["access-control-allow-methods"])) == {"GET", "POST"}
    assert {"authorization", "content-type"} <= set(re.split(r",\s*", allowed.headers["access-control-allow-headers"].lower()))
    assert int(allowed.headers["access-control-max-age"]) > 0
    assert "Origin" in allowed.headers["vary"]

    simple = httpx.post(server.url + "/graphql", json={"query": "{ __typename }"}, headers={"Origin": listed})
    assert simple.headers["access-control-allow-origin"] == listed and "Origin" in simple.headers["vary"]

    for origin in (other, "https://evil.example", "null"):
        refused = httpx.options(server.url + "/graphql", headers={"Origin": origin, **preflight})
        assert refused.status_code == 403
        assert not [h for h in refused.headers if h.startswith("access-control-")], refused.headers
        plain = httpx.post(server.url + "/graphql", json={"query": "{ __typename }"}, headers={"Origin": origin})
        assert plain.status_code == 200
        assert not [h for h in plain.headers if h.startswith("access-control-")], plain.headers

    token = httpx.post(server.url + "/ids/auth/login", data={"grant_type": "client_credentials"}, headers={"Origin": listed})
    assert not [h for h in token.headers if h.startswith("access-control-")], token.headers
    token_preflight = httpx.options(server.url + "/ids/auth/login", headers={"Origin": listed, **preflight})
    assert not [h for h in token_preflight.headers if h.startswith("access-control-")]


def test_without_the_setting_no_origin_gets_cors_headers(tmp_path):
    settings = Settings.from_env(base_env(tmp_path))
    assert settings.cors_origins == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*", "'*' is refused"),
        ("https://*.uni.example", "'*' is refused"),
        ("https://portal.uni.example/app", "not an origin"),
        ("portal.uni.example", "not an origin"),
        ("ftp://portal.uni.example", "not an origin"),
    ],
)
def test_an_origin_list_with_a_wildcard_or_a_path_is_refused_at_start_up(tmp_path, value, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)) as raised:
        Settings.from_env(base_env(tmp_path, KEYRELEASE_CORS_ORIGINS=value))
    assert "KEYRELEASE_CORS_ORIGINS" in str(raised.value)


def test_origins_are_normalised_and_deduplicated(tmp_path):
    settings = Settings.from_env(
        base_env(tmp_path, KEYRELEASE_CORS_ORIGINS=" https://Portal.Uni.example , http://127.0.0.1:3000,https://portal.uni.example")
    )
    assert settings.cors_origins == ("https://portal.uni.example", "http://127.0.0.1:3000")
