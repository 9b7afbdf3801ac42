"""GraphiQL at GET /graphql over HTTP, without a browser: keyrelease's own page under a policy
as strict as the console's, loading only the bundle the package ships, and nothing of it when
KEYRELEASE_GRAPHIQL=off, while the API answers as before."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from test_web_headers import markup, policy

import keyrelease.web

ROOT = Path(__file__).resolve().parent.parent
WEB = Path(keyrelease.web.__file__).parent
BUNDLE = WEB / "static" / "graphiql"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
BUNDLE_FILES = sorted(path.relative_to(BUNDLE).as_posix() for path in BUNDLE.rglob("*") if path.is_file())


async def test_a_browser_gets_keyrelease_graphiql_under_a_strict_policy(client):
    response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "keyrelease · GraphiQL" in response.text
    csp = policy(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert csp["connect-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    # The one difference from the console: Monaco inserts <style> elements as it runs.
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    console = policy((await client.get("/")).headers["content-security-policy"])
    assert {name: values for name, values in csp.items() if name != "style-src"} == {
        name: values for name, values in console.items() if name != "style-src"
    }
    # No directive names another origin; fonts and workers fall back to default-src 'self'.
    sources = {value for values in csp.values() for value in values}
    assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:"}, sources
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


async def test_the_page_loads_only_the_packaged_bundle_and_shows_how_to_send_the_token(client):
    page = await markup(client, "/graphql")
    assert page.problems == []  # no inline script or style in the page itself
    assert sorted(page.urls) == ["/static/graphiql/graphiql.css", "/static/graphiql/graphiql.js"]
    for url in page.urls:
        assert (await client.get(url)).status_code == 200, url
    text = (await client.get("/graphql", headers=BROWSER)).text
    assert "unpkg" not in text and "cdn" not in text.lower() and "https://" not in text
    assert "keyrelease admin create" in text and "Bearer &lt;token&gt;" in text


async def test_every_file_the_bundle_names_is_served_with_the_consoles_policy(client):
    css = (await client.get("/static/graphiql/graphiql.css")).text
    urls = [url.strip("'\"") for url in re.findall(r"url\(([^)]*)\)", css)]
    fonts = [url for url in urls if not url.startswith("data:image/")]  # images: img-src 'self' data:
    assert fonts and all(url.startswith("./fonts/") for url in fonts), fonts  # no data: font, no other origin
    script = (await client.get("/static/graphiql/graphiql.js")).text
    assert re.search(r"new URL\(`\./\$\{\w+\}\.worker\.js`,import\.meta\.url\)", script)  # beside the script
    workers = {name for name in BUNDLE_FILES if name.endswith(".worker.js")}
    assert workers == {"editor.worker.js", "json.worker.js", "graphql.worker.js"}
    names = {url.removeprefix("./") for url in fonts} | workers
    for name in sorted(names):
        response = await client.get(f"/static/graphiql/{name}")
        assert response.status_code == 200, name
        # A worker runs under the policy its own script is served with: the console's.
        assert policy(response.headers["content-security-policy"])["script-src"] == ["'self'"]
        assert response.headers["x-content-type-options"] == "nosniff"
    worker = await client.get("/static/graphiql/graphql.worker.js")
    assert worker.headers["content-type"].startswith("text/javascript")


async def test_the_api_still_answers_beside_graphiql(client):
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_GRAPHIQL": "off"}])
async def test_graphiql_off_answers_a_browser_404_with_a_plain_note_and_the_api_is_unchanged(client):
    response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert "KEYRELEASE_GRAPHIQL=off" in response.text and "<" not in response.text
    assert response.headers["cache-control"] == "no-store"
    for name in ("graphiql.js", "graphiql.css", "graphql.worker.js", "LICENSES.txt"):
        assert (await client.get(f"/static/graphiql/{name}")).status_code == 404, name
    assert (await client.get("/static/style.css")).status_code == 200  # the console is untouched
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}


def test_the_wheel_ships_every_file_of_the_bundle():
    """Every file under static/graphiql/ matches a package-data pattern in pyproject.toml."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["keyrelease.web"]
    assert len(BUNDLE_FILES) > 5
    unshipped = [name for name in BUNDLE_FILES if not any(fnmatch(f"static/graphiql/{name}", p) for p in patterns)]
    assert not unshipped, unshipped
    assert any(fnmatch("pages/graphiql.html", p) for p in patterns)


def test_the_bundle_carries_the_licence_of_what_it_contains():
    licences = (BUNDLE / "LICENSES.txt").read_text()
    for package in ("graphiql@", "react@", "react-dom@", "monaco-editor@", "graphql@", "@graphiql/react@"):
        assert f"\n  {package}" in licences, package
    assert licences.count("Permission is hereby granted, free of charge") >= 40  # the MIT texts, whole
