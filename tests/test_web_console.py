"""The admin console and the partner page in a real browser (console_browser.py says how:
Playwright, Debian's Chromium, the real app under uvicorn with the memory mail transport and a
frozen clock in 2030 while the browser's runs today): sign in, create, verify, reveal, the
locks, the list, the partner page, the keyboard and 320 px, and the screenshots.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

import console_browser  # isort: skip  (first: skips this module without Chromium or Playwright)
from playwright.sync_api import Browser, Page, expect

from console_browser import (
    SCREENSHOTS,
    Admin,
    LiveApp,
    assert_fits,
    countdown_seconds,
    create_key,
    enter_code,
    sign_in,
    tab_until,
    wrong,
)
from keyrelease.models import KeyKind
from keyrelease.service.offboarding import disable_admin
from keyrelease.service.results import GENERIC_VERIFICATION_ERROR
from keyrelease.testing.api import OTP_LINE
from keyrelease.testing.tokens import basic_auth

# The shared fixtures: one server and one browser for the module; an admin and a browser context per test.
server, browser, admin, page = console_browser.server, console_browser.browser, console_browser.admin, console_browser.page


# -- sign in ---------------------------------------------------------------------------


def test_a_wrong_token_is_refused_with_a_clear_message_and_the_right_one_signs_in(page: Page, admin: Admin):
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    page.get_by_label("Admin token").fill("kra_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_have_text(re.compile("That admin token was not accepted"))
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Admin token").fill(admin.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()
    expect(page.get_by_role("navigation", name="Console")).to_contain_text(f"Ada · {admin.institution}")
    # The token is kept for this tab only: never in localStorage, a cookie or the address.
    assert page.evaluate("sessionStorage.getItem('keyrelease.adminToken')") == admin.token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert admin.token not in page.url

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


# -- create, verify, reveal ------------------------------------------------------------


def test_create_an_institutional_key_and_verify_it_after_a_wrong_code(page: Page, admin: Admin, server: LiveApp):
    sign_in(page, admin)
    create_key(page, "Reporting pipeline")
    code = admin.code("Reporting pipeline")

    # Both clocks run by the server's time (2030), whatever the browser's clock says.
    assert 280 <= countdown_seconds(page, "code-clock") <= 300
    assert 880 <= countdown_seconds(page, "lock-clock") <= 900
    expect(page.locator("#attempts-left")).to_have_text("5")
    field = page.get_by_label("Verification code")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("autocomplete", "one-time-code")

    enter_code(page, wrong(code))
    expect(page.locator("#code-error")).to_have_text(GENERIC_VERIFICATION_ERROR)
    expect(page.locator("#attempts-left")).to_have_text("4")

    enter_code(page, f"{code[:3]} {code[3:]}")  # as pasted from some mail clients
    expect(page.get_by_role("heading", name="“Reporting pipeline” is verified")).to_be_focused()
    expect(page.get_by_role("button", name="Reveal credentials")).to_be_visible()


def test_credentials_are_revealed_once_and_never_again(page: Page, admin: Admin, server: LiveApp):
    sign_in(page, admin)
    key_id = create_key(page, "Nightly export")
    enter_code(page, admin.code("Nightly export"))
    page.get_by_role("button", name="Reveal credentials").click()

    client_id = page.get_by_label("Client ID", exact=True)
    secret = page.get_by_label("Client secret", exact=True)
    expect(client_id).to_have_value(re.compile(r"^us-east-1#"))
    expect(secret).not_to_have_value("")
    expect(client_id).not_to_be_editable()
    expect(secret).not_to_be_editable()
    expect(page.get_by_role("button", name="Copy client ID")).to_be_visible()
    expect(page.get_by_role("button", name="Copy client secret")).to_be_visible()
    expect(page.locator("#credentials-warning")).to_contain_text("It will not be shown again")
    expect(page.get_by_role("heading", name="Credentials")).to_be_focused()
    credentials = (client_id.input_value(), secret.input_value())

    # The revealed credentials are the real thing: they get an access token.
    token = httpx.post(
        server.url + "/ids/auth/login",
        content="grant_type=client_credentials",
        headers={"Authorization": basic_auth(*credentials), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert token.status_code == 200, token.text

    # Away and back: the secret is gone from the page and cannot be asked for again.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Keys", exact=True).click()
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()
    assert credentials[1] not in page.content()
    page.go_back()
    expect(page.get_by_role("heading", name="“Nightly export” is verified")).to_be_focused()
    expect(page.get_by_role("button", name="Reveal credentials")).to_have_count(0)
    expect(page.locator("#key-message")).to_contain_text("cannot be shown again")
    assert credentials[1] not in page.content()

    page.reload()
    expect(page.get_by_role("heading", name="“Nightly export” is verified")).to_be_visible()
    expect(page.get_by_role("button", name="Reveal credentials")).to_have_count(0)
    assert page.url.endswith(f"#/keys/{key_id}")


def test_a_key_whose_secret_leaked_shows_compromised_with_where_it_was_found(page: Page, admin: Admin, server: LiveApp):
    sign_in(page, admin)
    key_id = create_key(page, "Leaky export")
    enter_code(page, admin.code("Leaky export"))
    page.get_by_role("button", name="Reveal credentials").click()
    secret = page.get_by_label("Client secret", exact=True).input_value()
    leak_url = "https://github.com/octo-org/octo-repo/blob/1234567/config.yml"
    outcome = server.run(server.app.state.services.leaks.report(secret, url=leak_url, source="GitHub secret scanning (content)"))
    assert outcome.true_positive

    page.reload()
    expect(page.get_by_role("heading", name="“Leaky export” was found in public")).to_be_visible()
    expect(page.locator("#key-details")).to_contain_text("Compromised")
    expect(page.locator("#key-details")).to_contain_text(leak_url)
    expect(page.locator("#key-message")).to_contain_text("no longer works")
    expect(page.get_by_role("button", name="Revoke key")).to_be_hidden()
    assert page.url.endswith(f"#/keys/{key_id}")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Keys", exact=True).click()
    page.get_by_label("Show", exact=True).select_option("COMPROMISED")
    row = page.get_by_role("row", name=re.compile("Leaky export"))
    expect(row).to_contain_text("Compromised")
    expect(row).to_contain_text("Leaked")


def test_resend_until_none_are_left(page: Page, admin: Admin):
    sign_in(page, admin)
    create_key(page, "Resend me")
    resend = page.get_by_role("button", name=re.compile("^Resend code"))
    expect(resend).to_have_text("Resend code (3 left)")
    for left in (2, 1, 0):
        resend.click()
        expect(resend).to_have_text(f"Resend code ({left} left)")
        expect(page.get_by_label("Verification code")).to_be_focused()
    expect(resend).to_be_disabled()
    expect(page.locator("#resend-hint")).to_have_text("No resends are left for this key.")

    # Four emails in all; only the newest code works.
    newest = admin.code("Resend me", nth=4)
    enter_code(page, newest)
    expect(page.get_by_role("heading", name="“Resend me” is verified")).to_be_focused()


def test_a_key_reaching_its_window_shows_the_lock(page: Page, admin: Admin, server: LiveApp):
    page.clock.install()
    sign_in(page, admin)
    create_key(page, "Too late")
    expect(page.locator("#lock-clock")).to_have_text(re.compile(r"^1[45]:\d\d$"))

    # The countdowns are announced, politely, at whole minutes.
    server.clock.advance(60)
    page.clock.fast_forward(60_000)
    expect(page.locator("#clock-status")).to_have_text("The code expires in 4 minutes.")
    expect(page.locator("#clock-status")).to_have_attribute("aria-live", "polite")

    window = server.app.state.services.settings.policy.verification_window_seconds
    server.clock.advance(window - 60)
    page.clock.fast_forward((window - 60) * 1000)

    expect(page.get_by_role("heading", name="This key is locked")).to_be_focused()
    expect(page.locator("#locked-reason")).to_contain_text("“Too late” is locked: it was not verified in time")
    page.get_by_role("link", name="Create a new key").click()
    expect(page.get_by_role("heading", name="Create key")).to_be_focused()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Too late")


def test_wrong_codes_until_none_are_left_lock_the_key(page: Page, admin: Admin):
    sign_in(page, admin)
    create_key(page, "Guessed")
    right = admin.code("Guessed")
    for left in (4, 3, 2, 1):
        enter_code(page, wrong(right))
        expect(page.locator("#attempts-left")).to_have_text(str(left))
    enter_code(page, wrong(right))
    expect(page.get_by_role("heading", name="This key is locked")).to_be_focused()
    expect(page.locator("#locked-reason")).to_contain_text("a wrong code was entered too many times")


def test_a_pending_key_of_a_disabled_admin_shows_why_it_locked_to_a_colleague(page: Page, admin: Admin, server: LiveApp):
    sign_in(page, admin)
    key_id = create_key(page, "Left behind")
    server.run(disable_admin(server.clock, admin.email))
    colleague = Admin(server, institution=admin.institution, name="Bob")
    sign_in(page, colleague)
    page.goto(f"/#/keys/{key_id}")
    expect(page.get_by_role("heading", name="This key is locked")).to_be_focused()
    expect(page.locator("#locked-reason")).to_have_text(
        "“Left behind” is locked: the admin who created it was disabled before it was verified."
    )


def test_a_code_is_tried_on_the_key_on_screen_alone(page: Page, admin: Admin):
    """The verification screen of an earlier key, left in the same tab, no longer answers the
    form: a wrong code on the second key's screen costs the first key nothing."""
    sign_in(page, admin)
    first = create_key(page, "First of two")
    create_key(page, "Second of two")
    enter_code(page, wrong(admin.code("Second of two")))
    expect(page.locator("#attempts-left")).to_have_text("4")

    page.goto(f"/#/keys/{first}")
    expect(page.get_by_role("heading", name="Verify “First of two”")).to_be_visible()
    expect(page.locator("#attempts-left")).to_have_text("5")


# -- create form -----------------------------------------------------------------------


def test_validation_errors_from_the_api_appear_next_to_their_fields(page: Page, admin: Admin):
    sign_in(page, admin)
    page.goto("/#/new")
    expect(page.get_by_label("Partner name")).to_be_hidden()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#name-error")).to_have_text("Name must not be empty.")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()

    page.get_by_label("Partner", exact=True).check()
    page.get_by_label("Name", exact=True).fill("Acme feed")
    page.get_by_label("Partner email").fill("not an address")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#partner-email-error")).to_have_text("A partner key needs a valid partner email address.")
    expect(page.get_by_label("Partner email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_have_text("")

    page.get_by_label("Partner email").fill("keys@acme.example")
    page.get_by_label("Expires").fill("2026-01-01T00:00")  # the server's clock says 2030
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#expires-error")).to_have_text("The expiry date must be in the future.")


# -- the keys list ---------------------------------------------------------------------


def test_the_keys_list_is_newest_first_paginated_and_filtered(page: Page, admin: Admin, server: LiveApp):
    keys = server.app.state.services.keys
    lister = Admin(server)
    made = []
    for n in range(1, 13):
        server.clock.advance(1)
        made.append(server.run(keys.create_key(lister.model, name=f"Key {n:02d}", kind=KeyKind.INSTITUTIONAL)))
    server.run(keys.revoke_key(lister.model, str(made[4].id)))

    sign_in(page, lister)
    rows = page.locator("#keys-body tr")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("Key 12")
    expect(rows.first).to_contain_text("Pending verification")
    expect(rows.first.get_by_role("link", name="Verify Key 12")).to_be_visible()
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("Key 01")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(10)

    page.get_by_label("Show", exact=True).select_option("REVOKED")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Key 05")
    expect(rows.first).to_contain_text("Revoked")

    page.get_by_label("Show", exact=True).select_option("PENDING_VERIFICATION")
    expect(rows).to_have_count(10)
    rows.first.get_by_role("link", name="Verify Key 12").click()
    expect(page.get_by_role("heading", name="Verify “Key 12”")).to_be_focused()


def test_the_keys_list_shows_the_keys_expiring_soon(page: Page, server: LiveApp):
    keys = server.app.state.services.keys
    owner = Admin(server)
    for name, days in [("Nightly export", 12), ("Billing sync", 3), ("Yearly audit", 90), ("No end", None)]:
        expires = server.clock.now() + timedelta(days=days) if days else None
        key = server.run(keys.create_key(owner.model, name=name, kind=KeyKind.INSTITUTIONAL, expires_at=expires))
        assert server.run(keys.verify_key(owner.model, str(key.id), owner.code(name))).verified_at is not None
    server.run(keys.create_key(owner.model, name="Unverified", kind=KeyKind.INSTITUTIONAL, expires_at=server.clock.now() + timedelta(days=2)))

    sign_in(page, owner)
    soon = page.get_by_role("region", name="Expiring soon")
    expect(soon).to_be_visible()
    links = soon.get_by_role("link")
    expect(links).to_have_text(["Billing sync", "Nightly export"])  # soonest first; only usable keys
    expect(soon).to_contain_text("rotate it with a new expiry date")
    expect(soon).to_contain_text("These keys stop working within 30 days.")  # the first of KEYRELEASE_EXPIRY_NOTICES
    for name, marked in [("Billing sync", True), ("Nightly export", True), ("Yearly audit", False), ("Unverified", False)]:
        row = page.get_by_role("row", name=re.compile(name))
        expect(row.get_by_text("Expiring soon", exact=True)).to_have_count(1 if marked else 0)
    links.first.click()
    expect(page.get_by_role("heading", name=re.compile("Billing sync"))).to_be_visible()


def test_the_expiring_soon_list_is_hidden_when_nothing_expires_soon(page: Page, admin: Admin, server: LiveApp):
    keys = server.app.state.services.keys
    server.run(keys.create_key(admin.model, name="Far off", kind=KeyKind.INSTITUTIONAL, expires_at=server.clock.now() + timedelta(days=60)))
    sign_in(page, admin)
    expect(page.locator("#keys-body tr")).to_have_count(1)
    expect(page.get_by_role("region", name="Expiring soon")).to_be_hidden()


# -- the partner's page ----------------------------------------------------------------


def test_the_partner_page_reveals_once_with_the_emailed_one_time_password(page: Page, admin: Admin, server: LiveApp):
    sign_in(page, admin)
    partner_email = f"keys-{uuid.uuid4().hex[:6]}@acme.example"
    key_id = create_key(page, "Acme feed", partner=("Acme", partner_email))
    enter_code(page, admin.code("Acme feed"))
    expect(page.get_by_role("heading", name="“Acme feed” is verified")).to_be_focused()
    expect(page.locator("#key-message")).to_contain_text(f"The partner Acme ({partner_email}) has been emailed")
    expect(page.get_by_role("button", name="Reveal credentials")).to_have_count(0)

    # The partner reads the email: a link to the page, the Key ID and the one-time password.
    mail = server.mails(lambda m: m.to == partner_email)[0]
    otp = OTP_LINE.search(mail.text).group(1)
    assert re.search(rf"^Key ID: {key_id}$", mail.text, re.MULTILINE), mail.text
    link = re.search(r"(http://\S+/partner)\b", mail.text).group(1)
    assert link == server.url + "/partner"

    partner = page.context.browser.new_context(locale="en-GB", viewport={"width": 800, "height": 800})
    try:
        tab = partner.new_page()
        tab.goto(link)
        expect(tab.get_by_role("heading", name="Retrieve your API key")).to_be_focused()
        tab.get_by_label("Key ID").fill(key_id)
        tab.get_by_label("One-time password").fill("AAAA-BBBB-CCCC-DDDD")
        tab.get_by_role("button", name="Reveal credentials").click()
        expect(tab.locator("#retrieve-error")).to_have_text(GENERIC_VERIFICATION_ERROR)

        tab.get_by_label("One-time password").fill(otp.lower())  # case does not matter
        tab.get_by_role("button", name="Reveal credentials").click()
        expect(tab.get_by_role("heading", name="Your API key")).to_be_focused()
        expect(tab.get_by_label("Client ID", exact=True)).to_have_value(re.compile(r"^us-east-1#"))
        secret = tab.get_by_label("Client secret", exact=True).input_value()
        assert secret
        expect(tab.locator("#credentials-warning")).to_contain_text("It will not be shown again")

        tab.get_by_role("button", name="I have stored the secret").click()
        expect(tab.get_by_role("heading", name="Credentials retrieved")).to_be_focused()
        assert secret not in tab.content()

        tab.goto(link)
        tab.get_by_label("Key ID").fill(key_id)
        tab.get_by_label("One-time password").fill(otp)
        tab.get_by_role("button", name="Reveal credentials").click()
        expect(tab.locator("#retrieve-error")).to_have_text(GENERIC_VERIFICATION_ERROR)
    finally:
        partner.close()

    page.reload()
    expect(page.locator("#key-message")).to_have_text("The partner has retrieved the credentials.")


# -- keyboard and small screens --------------------------------------------------------


def test_the_whole_flow_works_by_keyboard_at_320_px(browser: Browser, server: LiveApp, admin: Admin):
    context = browser.new_context(base_url=server.url, viewport={"width": 320, "height": 640}, locale="en-GB")
    try:
        page = context.new_page()
        page.goto("/")
        assert_fits(page, 320)
        tab_until(page, "#token")
        page.keyboard.type(admin.token)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()
        assert_fits(page, 320)

        tab_until(page, "a[href='#/new']")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Create key")).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#kind-institutional")
        page.keyboard.press("ArrowDown")  # radio buttons: arrows move the choice
        expect(page.get_by_label("Partner email")).to_be_visible()
        page.keyboard.press("ArrowUp")
        expect(page.get_by_label("Partner email")).to_be_hidden()
        tab_until(page, "#name")
        page.keyboard.type("A key with a rather long name, for a narrow screen")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("^Verify"))).to_be_focused()
        assert_fits(page, 320)

        tab_until(page, "#code")
        page.keyboard.type(admin.code("A key with a rather long name, for a narrow screen"))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("is verified$"))).to_be_focused()
        tab_until(page, "#reveal-button")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Credentials")).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#client-secret")
        tab_until(page, "#stored-button")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_focused()
        assert_fits(page, 320)

        page.goto("/partner")
        expect(page.get_by_role("heading", name="Retrieve your API key")).to_be_focused()
        assert_fits(page, 320)
    finally:
        context.close()


def test_an_expired_code_clock_fits_its_card_at_320_px(browser: Browser, server: LiveApp, admin: Admin):
    context = browser.new_context(base_url=server.url, viewport={"width": 320, "height": 640}, locale="en-GB")
    try:
        page = context.new_page()
        page.clock.install()
        sign_in(page, admin)
        create_key(page, "Narrow")
        ttl = server.app.state.services.settings.policy.code_ttl_seconds
        server.clock.advance(ttl + 1)
        page.clock.fast_forward((ttl + 1) * 1000)
        expect(page.locator("#code-clock")).to_have_text("Expired")
        assert_fits(page, 320)
        for clock_id in ("code-clock", "lock-clock", "attempts-left"):
            inside = page.evaluate(
                """(id) => {
                    const text = document.getElementById(id);
                    const card = text.closest(".clock");
                    const range = document.createRange();
                    range.selectNodeContents(text);
                    const a = range.getBoundingClientRect(), b = card.getBoundingClientRect();
                    return a.left >= b.left && a.right <= b.right;
                }""",
                clock_id,
            )
            assert inside, f"#{clock_id} overflows its card at 320 px"
    finally:
        context.close()


def test_the_verification_screen_of_a_partner_key_names_the_partner_and_the_address(page: Page, admin: Admin):
    sign_in(page, admin)
    create_key(page, "Acme feed", partner=("Acme Analytics", "keys@acme.example"))
    expect(page.locator("#verify-recipient")).to_be_visible()
    expect(page.locator("#verify-recipient")).to_contain_text(
        "When you verify, a one-time password goes to Acme Analytics at keys@acme.example."
    )
    create_key(page, "Institutional one")
    expect(page.locator("#verify-recipient")).to_be_hidden()


# -- screenshots -----------------------------------------------------------------------


def test_screenshots_of_every_screen(browser: Browser, server: LiveApp, tmp_path: Path):
    """Renders every screen into a PNG. With KEYRELEASE_UPDATE_SCREENSHOTS=1 they replace
    the ones in docs/screenshots/ (see docs/console.md)."""
    out = SCREENSHOTS if os.environ.get("KEYRELEASE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    ada = Admin(server, institution="Example University", email="ada@uni.example", name="Ada Lovelace")
    window = server.app.state.services.settings.policy.verification_window_seconds
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1000, "height": 720}, locale="en-GB", timezone_id="UTC"
    )
    try:
        page = context.new_page()

        def shot(name: str, target: Page | None = None) -> None:
            (target or page).screenshot(path=str(out / f"{name}.png"), full_page=True)

        page.goto("/")
        page.get_by_label("Admin token").fill("kra_this-is-not-it")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#token-error")).not_to_be_empty()
        shot("sign-in")
        page.get_by_label("Admin token").fill(ada.token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()

        create_key(page, "Old dashboard")  # left to lock
        server.clock.advance(window)

        create_key(page, "Reporting pipeline")
        server.clock.advance(41)  # the clocks have been running for a while
        enter_code(page, "000000")
        expect(page.locator("#attempts-left")).to_have_text("4")
        page.get_by_role("button", name=re.compile("^Resend code")).click()
        expect(page.get_by_role("button", name=re.compile("^Resend code"))).to_have_text("Resend code (2 left)")
        page.get_by_label("Verification code").fill("407")
        shot("verify")
        page.set_viewport_size({"width": 320, "height": 640})
        shot("verify-320px")
        page.set_viewport_size({"width": 1000, "height": 720})

        enter_code(page, ada.code("Reporting pipeline", nth=2))
        expect(page.get_by_role("button", name="Reveal credentials")).to_be_visible()
        shot("verified")
        page.get_by_role("button", name="Reveal credentials").click()
        expect(page.get_by_label("Client secret", exact=True)).not_to_have_value("")
        shot("reveal")
        page.get_by_role("button", name="I have stored the secret").click()

        create_key(page, "Acme data feed", partner=("Acme Analytics", "keys@acme.example"))
        enter_code(page, ada.code("Acme data feed"))
        expect(page.get_by_role("heading", name="“Acme data feed” is verified")).to_be_visible()
        shot("verified-partner")
        create_key(page, "Billing export")  # left pending

        page.goto("/#/new")
        page.get_by_label("Partner", exact=True).check()
        page.get_by_label("Name", exact=True).fill("Second Acme feed")
        page.get_by_label("Partner name").fill("Acme Analytics")
        page.get_by_label("Partner email").fill("keys@acme")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#partner-email-error")).not_to_be_empty()
        shot("create")

        page.goto("/#/keys")
        expect(page.locator("#keys-body tr")).to_have_count(4)
        shot("keys")
        page.set_viewport_size({"width": 320, "height": 640})
        shot("keys-320px")
        page.set_viewport_size({"width": 1000, "height": 720})
        page.locator("#keys-body").get_by_role("link", name="Old dashboard").click()
        expect(page.get_by_role("heading", name="This key is locked")).to_be_visible()
        shot("locked")

        mail = server.mails(lambda m: m.to == "keys@acme.example" and "“Acme data feed”" in m.subject)[-1]
        key_id = re.search(r"^Key ID: (\S+)$", mail.text, re.MULTILINE).group(1)
        partner = context.new_page()
        partner.goto("/partner")
        partner.get_by_label("Key ID").fill(key_id)
        partner.get_by_label("One-time password").fill(OTP_LINE.search(mail.text).group(1))
        shot("partner", partner)
        partner.get_by_role("button", name="Reveal credentials").click()
        expect(partner.get_by_label("Client secret", exact=True)).not_to_have_value("")
        shot("partner-revealed", partner)
    finally:
        context.close()
    for name in SCREENS:
        assert (out / f"{name}.png").stat().st_size > 1000, name


SCREENS = (
    "sign-in", "keys", "keys-320px", "create", "verify", "verify-320px", "verified", "reveal",
    "verified-partner", "locked", "partner", "partner-revealed",
)
