"""GraphiQL at /graphql in a real browser, with the network cut off: Playwright drives Debian's
Chromium against the real app under uvicorn, and every request to an address other than the
server is aborted and recorded. GraphiQL must render, read the schema, and run a query with an
admin token from nothing but what keyrelease serves, under its Content-Security-Policy (a
violation is a console error, which fails the test), and leave no token in localStorage.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Importing the console's browser helpers skips this module too when Chromium or Playwright is
# missing, with their reason.
from console_browser import CHROMIUM, CHROMIUM_ARGS, Admin, LiveApp  # isort: skip
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright  # isort: skip

from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.testing.processes import free_port
from keyrelease.testing.settings import base_env

#: Loading 5 MB of GraphiQL and starting Monaco's workers, on a loaded two-core machine.
LOAD_TIMEOUT = 30_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("graphiql")
    shutil.copy(migrated_template, tmp / "keyrelease.sqlite3")
    port = free_port()
    settings = Settings.from_env(base_env(tmp, KEYRELEASE_PUBLIC_URL=f"http://127.0.0.1:{port}"))
    live = LiveApp(settings, FrozenClock(), port).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Offline:
    """What the page asked of the network: requests to the server go through, every other is
    aborted and kept here."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.served: list[str] = []
        self.blocked: list[str] = []

    def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            self.served.append(url)
            route.continue_()
        elif parts.scheme == "data":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture
def offline(browser: Browser, server: LiveApp) -> Iterator[tuple[Page, Offline]]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900}, locale="en-GB")
    network = Offline(server.url)
    context.route("**/*", network.route)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("response", lambda response: problems.append(f"{response.status}: {response.url}") if response.status >= 400 else None)
    yield page, network
    context.close()
    assert network.blocked == [], f"requests to other origins: {network.blocked}"
    assert not problems, problems


QUERY = "operation.graphql"
HEADERS = "request-headers.json"
RESPONSE = "response.json"


def editor(page: Page, name: str):  # type: ignore[no-untyped-def]
    """One of GraphiQL's Monaco editors, by the end of its model's name."""
    return page.locator(f'.monaco-editor[data-uri$="-{name}"]')


def replace_text(page: Page, name: str, text: str) -> None:
    editor(page, name).locator(".view-lines").click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def open_graphiql(page: Page) -> None:
    page.goto("/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(editor(page, QUERY).locator(".view-lines")).to_contain_text("query", timeout=LOAD_TIMEOUT)


def test_graphiql_renders_from_this_server_alone_and_shows_how_to_send_the_token(offline: tuple[Page, Offline], server):
    page, network = offline
    open_graphiql(page)
    hint = page.locator("#token-hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text('{"Authorization": "Bearer <token>"}')
    expect(hint).to_contain_text("keyrelease admin create")
    # The headers editor is open and holds the header to fill in.
    expect(editor(page, HEADERS)).to_be_visible()
    expect(editor(page, HEADERS)).to_contain_text("Bearer <token from keyrelease admin create>")
    # Its settings offer no way to start saving headers in the browser.
    page.get_by_role("button", name="Open settings dialog").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Theme")
    expect(dialog).not_to_contain_text("Persist headers")
    page.keyboard.press("Escape")
    assert any(url.endswith("/static/graphiql/graphiql.js") for url in network.served)
    assert any(".worker.js" in url for url in network.served), "Monaco's workers did not start"


def test_the_documentation_explorer_lists_the_mutations(offline: tuple[Page, Offline]):
    page, _ = offline
    open_graphiql(page)
    page.get_by_role("button", name="Show Documentation Explorer").click()
    explorer = page.locator(".graphiql-doc-explorer")
    expect(explorer).to_contain_text("Root Types")
    explorer.get_by_role("link", name="Mutation", exact=True).click()
    expect(explorer.get_by_role("link", name="createKey", exact=True)).to_be_visible()
    expect(explorer).to_contain_text("revokeKey")


def test_a_typed_query_with_an_admin_token_returns_data_and_the_token_is_not_kept(
    offline: tuple[Page, Offline], server: LiveApp
):
    page, network = offline
    admin = Admin(server, name="Grace")
    open_graphiql(page)
    replace_text(page, QUERY, "query Who { me { email name institution { name } } }")
    page.get_by_role("button", name="Headers", exact=True).click()
    replace_text(page, HEADERS, json.dumps({"Authorization": f"Bearer {admin.token}"}))
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()

    response = editor(page, RESPONSE)
    expect(response).to_contain_text(admin.email)
    expect(response).to_contain_text(admin.institution)
    assert any(url.endswith("/graphql") for url in network.served)

    # GraphiQL saved its tabs and history, but nothing of the token, anywhere in this origin's
    # localStorage (the console keeps its token in sessionStorage only; GraphiQL not at all).
    stored = page.evaluate("Object.fromEntries(Object.entries(localStorage))")
    assert any(key.startswith("graphiql:") for key in stored), stored  # it did save something
    assert "Who" in json.dumps(stored)  # the query, in its history
    assert not [key for key, value in stored.items() if admin.token in value or admin.token in key]
    assert admin.token not in json.dumps(page.evaluate("Object.entries(sessionStorage)"))
    assert page.context.cookies() == []

    # A reload starts from the hint again: the token went with the page.
    page.reload()
    open_graphiql(page)
    assert admin.token not in page.content()
