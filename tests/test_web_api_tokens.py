"""The console's "API tokens" screen in a real browser (the server, browser and admin fixtures of
tests/test_web_console.py): a token created with a name and an expiry, its value shown once and
copied, used for a GraphQL call, listed with its last use, and revoked after a confirmation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from test_web_console import SCREENSHOTS, Admin, LiveApp, admin, assert_fits, browser, page, server, sign_in, tab_until

__all__ = ["admin", "browser", "page", "server"]  # fixtures, used by name

ME = {"query": "{ me { email } }"}


def call_with(server: LiveApp, token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/graphql", json=ME, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_create_use_and_revoke_an_api_token(page: Page, admin: Admin, server: LiveApp, tmp_path: Path):
    sign_in(page, admin)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_focused()
    rows = page.locator("#api-tokens-body tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("cli")
    expect(rows.first).to_contain_text("(this console)")

    page.get_by_label("Token name", exact=True).fill("")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#api-token-name-error")).to_have_text("Enter a name for the token.")
    page.get_by_label("Token name", exact=True).fill("Nightly report")
    page.get_by_label("Valid for (days)", exact=True).fill("365")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#api-token-days-error")).to_have_text("The expiry date must be at most 90 days from now.")
    expect(page.get_by_label("Valid for (days)", exact=True)).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Valid for (days)", exact=True).fill("7")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token “Nightly report” created")).to_be_focused()
    value = page.get_by_label("Token", exact=True).input_value()
    assert value.startswith("kra_")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_role("button", name="Copy token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == value
    expect(rows).to_have_count(2)
    new_row = rows.filter(has_text="Nightly report")
    expect(new_row).to_contain_text("Never")

    # The token works for the API, and its use shows in the list after the next flush.
    assert call_with(server, value).json() == {"data": {"me": {"email": admin.email}}}
    server.run(server.app.state.services.last_use.flush())
    page.get_by_role("button", name="I have stored the token").click()
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)  # the value is gone from the page
    expect(page.get_by_label("Token name", exact=True)).to_be_focused()
    page.reload()
    expect(page.get_by_role("heading", name="API tokens")).to_be_focused()
    expect(new_row).not_to_contain_text("Never")
    assert value not in page.content()
    # docs/console.md's picture, refreshed with KEYRELEASE_UPDATE_SCREENSHOTS=1 like the others
    out = SCREENSHOTS if os.environ.get("KEYRELEASE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(out / "api-tokens.png"), full_page=True)
    assert (out / "api-tokens.png").stat().st_size > 1000

    # Revoking asks once more, then the token is refused with the next request.
    new_row.get_by_role("button", name="Revoke Nightly report").click()
    expect(new_row.get_by_role("button", name="Yes, revoke Nightly report")).to_be_visible()
    assert call_with(server, value).json()["data"] is not None  # not yet
    new_row.get_by_role("button", name="Yes, revoke Nightly report").click()
    expect(new_row.locator(".badge")).to_have_text("Revoked")
    body = call_with(server, value).json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_the_tokens_screen_works_by_keyboard_at_320_px(browser: Browser, server: LiveApp, admin: Admin):
    context = browser.new_context(base_url=server.url, viewport={"width": 320, "height": 640}, locale="en-GB")
    try:
        page = context.new_page()
        sign_in(page, admin)
        tab_until(page, "a[href='#/tokens']")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="API tokens")).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#api-token-name")
        page.keyboard.type("A token with a rather long name, for a narrow screen")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("created$"))).to_be_focused()
        assert_fits(page, 320)
        row = page.locator("#api-tokens-body tr", has_text="A token with a rather long name")
        tab_until(page, "#api-tokens-body button")  # the newest token's, first in the list
        expect(row.get_by_role("button")).to_be_focused()
        page.keyboard.press("Enter")
        expect(row.get_by_role("button", name=re.compile("^Yes, revoke"))).to_be_focused()
        page.keyboard.press("Enter")
        expect(row.locator(".badge")).to_have_text("Revoked")
        assert_fits(page, 320)
    finally:
        context.close()
