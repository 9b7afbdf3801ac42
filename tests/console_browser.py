"""The admin console in a real browser, shared by its browser tests (test_web_console.py,
test_console_rotation.py, test_graphiql_browser.py): Playwright driving Debian's Chromium
against the real app, served by uvicorn on a port, on a SQLite database, with the memory mail
transport (the tests read each email as its recipient would) and a frozen clock the tests move.

A test module takes the fixtures by name (``server = console_browser.server`` …): one server
and one browser for the module; each test signs in as its own admin, in its own browser
context. The server's clock stands in 2030 while the browser's runs today: every countdown on
screen must therefore come from the server's clock (its ``Date`` header), not the browser's.

Importing this module skips the importing test module when Chromium or Playwright is missing,
saying which.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from environment import empty_postgres, missing

#: The browser the tests drive (Debian's; Playwright's own download is not used). .ci/run checks this path.
CHROMIUM = Path("/usr/bin/chromium")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(missing(f"Chromium at {CHROMIUM} (apt-get install chromium)"), allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason=missing("playwright (pip install -e '.[test]')"))

import uvicorn  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402
from tortoise.backends.base.executor import EXECUTOR_CACHE  # noqa: E402

from keyrelease.app import create_app  # noqa: E402
from keyrelease.clock import FrozenClock  # noqa: E402
from keyrelease.config import Settings  # noqa: E402
from keyrelease.service.admins import create_admin  # noqa: E402
from keyrelease.testing.api import CODE_LINE  # noqa: E402
from keyrelease.testing.processes import free_port  # noqa: E402
from keyrelease.testing.settings import base_env  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
expect.set_options(timeout=10_000)


# -- the server ------------------------------------------------------------------------


def with_clock_date(app: Any, clock: FrozenClock) -> Any:
    """The app with the ``Date`` header uvicorn would add, but read from the app's clock, as
    it is in production (where the app's clock is the system clock)."""

    async def dated(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_dated(message: dict) -> None:
            if message["type"] == "http.response.start":
                date = format_datetime(clock.now(), usegmt=True).encode()
                message = {**message, "headers": [*message.get("headers", []), (b"date", date)]}
            await send(message)

        await app(scope, receive, send_dated)

    return dated


class LiveApp:
    """``create_app`` under uvicorn in a background thread, on that thread's event loop."""

    def __init__(self, settings: Settings, clock: FrozenClock, port: int) -> None:
        self.clock = clock
        self.app = create_app(settings, clock=clock)
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            with_clock_date(self.app, clock), host="127.0.0.1", port=port, log_level="warning", date_header=False
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="web-test-server", daemon=True)

    def _serve(self) -> None:
        self.loop.run_until_complete(self.server.serve())
        # A task cancelled at shutdown may leave a database call running on aiosqlite's worker
        # thread; let its answer land before the loop closes.
        self.loop.run_until_complete(asyncio.sleep(0.2))
        self.loop.close()

    def start(self) -> LiveApp:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (where its database connections live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(15)

    def mails(self, predicate: Callable[[Any], bool], count: int = 1, timeout: float = 10) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in list(self.app.state.services.transport.messages) if predicate(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} matching mails, got {len(found)}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[LiveApp]:
    """The app on SQLite; a module may run on each of BACKENDS instead, with
    ``pytestmark = pytest.mark.parametrize("server", BACKENDS, indirect=True, scope="module")``."""
    tmp = tmp_path_factory.mktemp("web")
    shutil.copy(migrated_template, tmp / "keyrelease.sqlite3")
    database: dict[str, str] = {}
    # Tortoise caches statements per connection name, in the first backend's dialect: start clean.
    EXECUTOR_CACHE.clear()
    if getattr(request, "param", "sqlite") == "postgres":
        # Off this thread: Playwright's sync API keeps an event loop running in it, and preparing
        # the database takes asyncio.run().
        with ThreadPoolExecutor(1) as thread:
            url = thread.submit(request.getfixturevalue, "postgres_url").result()  # skips without PostgreSQL
            thread.submit(empty_postgres, url).result()
        database["KEYRELEASE_DATABASE_URL"] = url
    port = free_port()
    settings = Settings.from_env(
        base_env(
            tmp,
            **database,
            KEYRELEASE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN="30",
            KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR="1000",
            KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY="1000",
        )
    )
    live = LiveApp(settings, FrozenClock(), port).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Admin:
    """An admin of the running service, and their mailbox."""

    def __init__(
        self, server: LiveApp, *, institution: str = "", email: str = "", name: str = "Ada"
    ) -> None:
        self.email = email or f"ada-{uuid.uuid4().hex[:8]}@uni.example"
        self.institution = institution or f"University {uuid.uuid4().hex[:8]}"  # sees only its own keys
        created = server.run(create_admin(server.clock, institution=self.institution, email=self.email, name=name))
        self.token = created.token
        self.model = created.admin
        self.server = server

    def code(self, key_name: str, nth: int = 1) -> str:
        """The code in the ``nth`` email about ``key_name``, as the admin reads it."""
        mails = self.server.mails(lambda m: m.to == self.email and f"“{key_name}”" in m.subject, count=nth)
        match = CODE_LINE.search(mails[nth - 1].text)
        assert match, mails[nth - 1].text
        return match.group(1)


@pytest.fixture
def admin(server: LiveApp) -> Admin:
    return Admin(server)


@pytest.fixture
def page(browser: Browser, server: LiveApp) -> Iterator[Page]:
    """A fresh browser context; the test fails on any script error or console error (a CSP
    violation is one)."""
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1024, "height": 800}, locale="en-GB", timezone_id="UTC"
    )
    page = context.new_page()
    problems = script_errors(page)
    yield page
    context.close()
    assert not problems, problems


def script_errors(page: Page) -> list[str]:
    """The page's script errors and console errors (a CSP violation is one), collected as
    they happen."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    return problems


# -- steps, as a user takes them -------------------------------------------------------


def sign_in(page: Page, admin: Admin) -> None:
    page.goto("/")
    page.get_by_label("Admin token").fill(admin.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()


def create_key(page: Page, name: str, *, partner: tuple[str, str] | None = None) -> str:
    """Fill in and send the create form; returns the new key's id (from the address bar)."""
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Create key").click()
    expect(page.get_by_role("heading", name="Create key")).to_be_focused()
    if partner:
        page.get_by_label("Partner", exact=True).check()
        page.get_by_label("Partner name").fill(partner[0])
        page.get_by_label("Partner email").fill(partner[1])
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name=f"Verify “{name}”")).to_be_focused()
    return page.url.rsplit("/", 1)[-1]


def enter_code(page: Page, code: str) -> None:
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify", exact=True).click()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def countdown_seconds(page: Page, element_id: str) -> int:
    minutes, seconds = page.locator(f"#{element_id}").inner_text().split(":")
    return int(minutes) * 60 + int(seconds)


def tab_until(page: Page, selector: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def assert_fits(page: Page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px window"
