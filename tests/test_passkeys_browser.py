"""Passkeys in a real browser (issue 17): Chromium, driven by Playwright, with the DevTools
WebAuthn virtual authenticator (CTAP2, internal, resident keys, user verification) standing in
for the device, against the real app under uvicorn at http://localhost (a secure context, and
the relying party ID the server derives from KEYRELEASE_PUBLIC_URL). The console registers a
passkey, confirmed with the emailed code, and then releases a key with it, on an institution
whose keys only a passkey releases (no code is emailed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Importing the console's browser tests skips this module too when Chromium or Playwright is
# missing, with their reason.
from test_web_console import Admin, LiveApp, browser, create_key, sign_in  # noqa: F401  # isort: skip  (browser: the fixture)
from console_browser import script_errors  # isort: skip
from playwright.sync_api import Browser, Page, expect  # isort: skip

from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.models import ApiKey, ReleaseProof
from keyrelease.service.passkeys import set_release_proof
from keyrelease.testing.api import CODE_LINE
from keyrelease.testing.processes import free_port
from keyrelease.testing.settings import base_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("passkeys-web")
    shutil.copy(migrated_template, tmp / "keyrelease.sqlite3")
    port = free_port()
    settings = Settings.from_env(base_env(tmp, KEYRELEASE_PUBLIC_URL=f"http://localhost:{port}"))
    live = LiveApp(settings, FrozenClock(), port)
    live.url = f"http://localhost:{port}"
    live.start()
    yield live
    live.stop()


@pytest.fixture
def page(browser: Browser, server: LiveApp) -> Iterator[Page]:
    """A fresh context with a virtual authenticator; the test fails on any script or console
    error (a CSP violation is one)."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1024, "height": 800}, locale="en-GB")
    page = context.new_page()
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    problems = script_errors(page)
    yield page
    context.close()
    assert not problems, problems


def passkey_code(admin: Admin) -> str:
    mails = admin.server.mails(lambda m: m.to == admin.email and "add a passkey" in m.subject)
    match = CODE_LINE.search(mails[-1].text)
    assert match, mails[-1].text
    return match.group(1)


async def stored(key_id: str) -> ApiKey:
    return await ApiKey.get(id=key_id)


def test_chromium_registers_a_passkey_and_releases_a_key_with_it(page: Page, server: LiveApp):
    admin = Admin(server)
    assert server.run(set_release_proof(admin.institution, ReleaseProof.PASSKEY))
    sign_in(page, admin)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Passkeys").click()
    expect(page.get_by_role("heading", name="Passkeys")).to_be_focused()
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()
    page.get_by_label("Name of the new passkey").fill("Test laptop")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_label("Code from the email").fill(passkey_code(admin))
    page.get_by_role("button", name="Confirm and create the passkey").click()
    expect(page.locator("#passkeys-list li")).to_have_count(1)
    expect(page.locator("#passkeys-list li")).to_contain_text("Test laptop")
    expect(page.locator("#passkeys-list li")).to_contain_text("never used")

    key_id = create_key(page, "Released by a passkey")
    assert not server.mails(lambda m: m.to == admin.email and "Released by a passkey" in m.subject, count=0)
    expect(page.get_by_label("Verification code")).to_be_hidden()  # passkey only: no code to enter
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", name="“Released by a passkey” is verified")).to_be_focused()
    expect(page.get_by_role("button", name="Reveal credentials")).to_be_visible()
    key = server.run(stored(key_id))
    assert key.verified_at is not None and key.passkey_nonce is None

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Passkeys").click()
    expect(page.locator("#passkeys-list li")).to_contain_text("last used")
