"""The console's sign-in with the institution's identity provider, in a real browser: Chromium
(Playwright) goes from the console's sign-in screen to a real OpenID Connect provider's login page
(oidc-provider, tests/identity_provider.py) and back signed in, creates a key, verifies it with
the code from its email (the memory transport, read as the admin reads it), reveals it, and
signs out, which ends the session on the server. The server (uvicorn, SQLite) keeps a clock that
starts at the real time, since the provider's ID tokens carry the real time.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from identity_provider import CLIENT_ID, CLIENT_SECRET, Provider, needs_node, running_provider
from test_web_console import LiveApp, browser  # noqa: F401  (browser: the module's Chromium, a fixture)

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from keyrelease.clock import FrozenClock  # noqa: E402
from keyrelease.config import Settings  # noqa: E402
from keyrelease.models import AdminSession  # noqa: E402
from keyrelease.service.sso import set_provider  # noqa: E402
from keyrelease.testing.api import CODE_LINE  # noqa: E402
from keyrelease.testing.processes import free_port  # noqa: E402
from keyrelease.testing.settings import SECRET_KEY, base_env  # noqa: E402

pytestmark = needs_node
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("provider"), [f"http://127.0.0.1:{port}/sso/callback"]) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path, port: int, provider: Provider) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("web-sso")
    shutil.copy(migrated_template, tmp / "keyrelease.sqlite3")
    settings = Settings.from_env(base_env(tmp, KEYRELEASE_PUBLIC_URL=f"http://127.0.0.1:{port}"))
    live = LiveApp(settings, FrozenClock(datetime.now(UTC).replace(microsecond=0)), port).start()
    live.run(set_provider(
        live.clock, SECRET_KEY.encode(), institution="Browser University", issuer=provider.issuer, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, admin_claim="groups=keyrelease-admins", email_domains=["browser.example"],
    ))
    yield live
    live.stop()


@pytest.fixture
def page(browser: Browser, server: LiveApp) -> Iterator[Page]:  # noqa: F811  (the imported fixture)
    """A fresh browser context; the test fails on a script error of the console's pages (the
    provider's own development pages are not ours to judge)."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1024, "height": 800}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}") if page.url.startswith(server.url) else None)
    yield page
    context.close()
    assert not problems, problems


async def ended_sessions() -> int:
    return await AdminSession.filter(ended_at__isnull=False).count()


def sign_in_with_provider(page: Page, email: str, login: str) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    page.get_by_label("Work email").fill(email)
    page.get_by_role("button", name="Continue with your institution").click()
    # The provider's own login page.
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()


def test_sign_in_with_the_provider_create_verify_reveal_and_sign_out(page: Page, server: LiveApp, provider: Provider):
    login = provider.account("grace", email="grace@browser.example", name="Grace Hopper", groups=["keyrelease-admins"])
    sign_in_with_provider(page, "grace@browser.example", login)
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()
    expect(page.get_by_role("navigation", name="Console")).to_contain_text("Grace Hopper · Browser University")
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["keyrelease-session"]["httpOnly"] and cookies["keyrelease-session"]["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # no script can read it
    assert page.evaluate("sessionStorage.length") == 0  # no token anywhere

    # Create a key, verify it with the emailed code, reveal it.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Create key").click()
    page.get_by_label("Name", exact=True).fill("Signed-in pipeline")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Verify “Signed-in pipeline”")).to_be_focused()
    mail = server.mails(lambda m: m.to == "grace@browser.example" and "“Signed-in pipeline”" in m.subject)[0]
    code = CODE_LINE.search(mail.text)
    assert code, mail.text
    page.get_by_label("Verification code").fill(code.group(1))
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(page.get_by_role("heading", name="“Signed-in pipeline” is verified")).to_be_focused()
    page.get_by_role("button", name="Reveal credentials").click()
    expect(page.get_by_label("Client ID", exact=True)).to_have_value(re.compile(r"^us-east-1#"))
    expect(page.get_by_label("Client secret", exact=True)).not_to_have_value("")

    # A reload keeps the session (the cookie), then signing out ends it on the server.
    page.reload()
    expect(page.get_by_role("navigation", name="Console")).to_contain_text("Grace Hopper")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    for _ in range(100):
        ended = server.run(ended_sessions())
        if ended:
            break
        page.wait_for_timeout(50)
    assert ended == 1
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()


def test_an_email_of_no_institution_is_told_so_on_the_sign_in_screen(page: Page, server: LiveApp):
    page.goto("/")
    page.get_by_label("Work email").fill("someone@nowhere.example")
    page.get_by_role("button", name="Continue with your institution").click()
    expect(page.locator("#work-email-error")).to_have_text(re.compile("^No institution signs in with email addresses at nowhere.example."))
    expect(page.get_by_label("Work email")).to_have_attribute("aria-invalid", "true")


def test_a_refused_sign_in_shows_its_one_message(page: Page, server: LiveApp, provider: Provider):
    login = provider.account("student", email="student@browser.example", name="S", groups=["students"])
    sign_in_with_provider(page, "student@browser.example", login)
    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "Your identity provider does not mark you as an admin of Browser University (groups must include keyrelease-admins)."
    )
    page.get_by_role("link", name="Back to sign-in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
