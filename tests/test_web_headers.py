"""The console's pages and assets over HTTP, without a browser: security headers on every
response, no inline script or style for the policy to forbid, every asset a page names served,
and the GraphQL endpoint's answers never stored."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import keyrelease.web

PAGES = ["/", "/partner"]
STATIC = Path(keyrelease.web.__file__).parent / "static"
ASSETS = sorted(f"/static/{path.name}" for path in STATIC.iterdir() if path.suffix in (".js", ".css"))


def policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


@pytest.mark.parametrize("path", PAGES + ASSETS)
async def test_every_page_and_asset_has_a_strict_content_security_policy(client, path):
    response = await client.get(path)
    assert response.status_code == 200
    csp = policy(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PAGES)
async def test_pages_where_secrets_appear_are_never_stored(client, path):
    response = await client.get(path)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("path", ASSETS)
async def test_assets_are_revalidated_and_typed(client, path):
    response = await client.get(path)
    assert response.headers["cache-control"] == "no-cache"
    expected = "text/css" if path.endswith(".css") else "text/javascript"
    assert response.headers["content-type"].startswith(expected)


async def test_graphql_answers_are_never_stored(client):
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


class Markup(HTMLParser):
    """What a page's HTML asks the browser to load or run."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.labels: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str | None]] = {}
        self._in_script = False
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"] or "")
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=…>: inline script or style")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if not attributes.get("src") or attributes.get("type") != "module":
                self.problems.append("a <script> that is not an external module")
        for name in ("src", "href"):
            value = attributes.get(name)
            if value and tag in ("script", "link") and value != "data:,":
                self.urls.append(value)
        if tag == "label" and attributes.get("for"):
            self._label_for = attributes["for"]
            self.labels[self._label_for] = ""
        if tag in ("input", "select"):
            self.inputs[attributes.get("id") or ""] = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "label":
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script")
        if self._label_for:
            self.labels[self._label_for] += data


async def markup(client, path: str) -> Markup:
    parser = Markup()
    parser.feed((await client.get(path)).text)
    return parser


@pytest.mark.parametrize("path", PAGES)
async def test_pages_hold_no_inline_script_or_style_and_load_only_their_own_assets(client, path):
    page = await markup(client, path)
    assert page.problems == []
    assert page.urls, "a page with no script or stylesheet"
    for url in page.urls:
        assert url.startswith("/static/"), url
        assert (await client.get(url)).status_code == 200, url


@pytest.mark.parametrize("path", [p for p in ASSETS if p.endswith(".js")])
async def test_every_module_import_is_served(client, path):
    source = (await client.get(path)).text
    for module in re.findall(r'from "\./([\w.-]+\.js)"', source):
        assert (await client.get(f"/static/{module}")).status_code == 200, module
    assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML", source)  # text goes in as text
    assert not re.search(r"\blocalStorage\s*\.", source)  # the admin token stays in this tab


async def test_only_the_assets_are_served_from_static(client):
    for path in ("/static/", "/static/__init__.py", "/static/../__init__.py", "/static/../pages/console.html"):
        assert (await client.get(path)).status_code == 404, path


async def test_every_control_is_labelled(client):
    for path in PAGES:
        page = await markup(client, path)
        for input_id, attributes in page.inputs.items():
            assert input_id in page.labels, f"{path}: #{input_id} has no <label for>"
            described = (attributes.get("aria-describedby") or "").split()
            assert all(target in page.ids for target in described), f"{path}: #{input_id} describedby {described}"


async def test_the_console_names_its_controls_as_the_admins_expect(client):
    page = await markup(client, "/")
    labels = {name: " ".join(text.split()) for name, text in page.labels.items()}
    assert labels["token"] == "Admin token"
    assert labels["kind-institutional"] == "Institutional"
    assert labels["kind-partner"] == "Partner"
    assert labels["name"] == "Name"
    assert labels["expires"].startswith("Expires")
    assert labels["partner-name"] == "Partner name"
    assert labels["partner-email"] == "Partner email"
    assert labels["code"] == "Verification code"
    code = page.inputs["code"]
    assert code["inputmode"] == "numeric" and code["autocomplete"] == "one-time-code"
    partner = await markup(client, "/partner")
    assert {partner.labels["key-id"], partner.labels["otp"]} == {"Key ID", "One-time password"}
