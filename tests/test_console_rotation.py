"""Rotating a key's secret in the admin console (issue 15 point 4), in a real browser
(console_browser.py says how: Playwright, Debian's Chromium, the real app under uvicorn with
the memory mail transport and a frozen clock the tests move). Every secret is tried at the
real token endpoint: the old one works until the overlap ends, the new one from its reveal.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import console_browser  # isort: skip  (first: skips this module without Chromium or Playwright)
from playwright.sync_api import Browser, Locator, Page, expect

from console_browser import SCREENSHOTS, Admin, LiveApp, assert_fits, enter_code, sign_in, tab_until, wrong
from environment import BACKENDS
from keyrelease.models import KeyKind
from keyrelease.service.offboarding import disable_admin
from keyrelease.service.results import GENERIC_VERIFICATION_ERROR, VerificationFailed
from keyrelease.testing.api import OTP_LINE
from keyrelease.testing.tokens import basic_auth

# The shared fixtures: one server and one browser for the module; an admin and a browser context per test.
server, browser, admin, page = console_browser.server, console_browser.browser, console_browser.admin, console_browser.page
# Each test on SQLite, then on PostgreSQL.
pytestmark = pytest.mark.parametrize("server", BACKENDS, indirect=True, scope="module")


# -- set-up and the token endpoint -----------------------------------------------------


class Released:
    """A key created, verified and released through the service (the console's part starts
    after that): its id, client ID and secret."""

    def __init__(self, server: LiveApp, owner: Admin, name: str, *, partner: tuple[str, str] | None = None) -> None:
        keys = server.app.state.services.keys
        self.name = name
        self.partner = partner
        fields = {"partner_name": partner[0], "partner_email": partner[1]} if partner else {}
        kind = KeyKind.PARTNER if partner else KeyKind.INSTITUTIONAL
        key = server.run(keys.create_key(owner.model, name=name, kind=kind, **fields))
        self.id = str(key.id)
        assert server.run(keys.verify_key(owner.model, self.id, owner.code(name))).verified_at is not None
        if partner:
            credentials = server.run(keys.reveal_partner_key(self.id, partner_otp(server, partner[1], name)))
        else:
            credentials = server.run(keys.reveal_key(owner.model, self.id))
        self.client_id = credentials.client_id
        self.secret = credentials.client_secret


def partner_otp(server: LiveApp, email: str, key_name: str, nth: int = 1) -> str:
    """The one-time password in the ``nth`` partner email about ``key_name``."""
    mail = server.mails(lambda m: m.to == email and f"“{key_name}”" in m.subject, count=nth)[nth - 1]
    return OTP_LINE.search(mail.text).group(1)


def token(server: LiveApp, client_id: str, secret: str) -> httpx.Response:
    """A client-credentials token request at the real token endpoint."""
    return httpx.post(
        server.url + "/ids/auth/login",
        content="grant_type=client_credentials",
        headers={"Authorization": basic_auth(client_id, secret), "Content-Type": "application/x-www-form-urlencoded"},
    )


def works(server: LiveApp, client_id: str, secret: str) -> bool:
    answer = token(server, client_id, secret)
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


# -- steps, as the admin takes them ----------------------------------------------------


def open_key(page: Page, key: Released) -> Locator:
    """The key's page; returns its "Secret rotation" region."""
    page.goto(f"/#/keys/{key.id}")
    expect(page.get_by_role("heading", name=f"“{key.name}” is verified")).to_be_focused()
    return page.get_by_role("region", name="Secret rotation")


def start_rotation(page: Page, key: Released, *, expires: str = "") -> None:
    """From the key's page: Rotate secret, confirm; lands on the rotation's verification."""
    open_key(page, key).get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name=f"Rotate the secret of “{key.name}”")).to_be_focused()
    if expires:
        page.get_by_label("New expiry (optional)", exact=True).fill(expires)
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name=f"Verify the new secret of “{key.name}”")).to_be_focused()


def shown(page: Page, term: str) -> Locator:
    """The value the rotation region shows beside ``term``."""
    return page.locator("#rotation-details > div").filter(has=page.get_by_text(term, exact=True)).locator("dd")


def local(page: Page, when) -> str:
    """``when`` as the console writes a date and time (the browser's locale and time zone)."""
    return page.evaluate(
        "(iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso))",
        when.isoformat(),
    )


# -- the whole rotation ----------------------------------------------------------------


def test_rotate_verify_reveal_the_overlap_and_the_old_secret_retired(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Reporting pipeline")
    old = key.secret
    assert works(server, key.client_id, old)
    grace = server.app.state.services.settings.rotation_grace_seconds
    renewed = server.clock.now() + timedelta(days=90)

    sign_in(page, admin)
    region = open_key(page, key)
    expect(shown(page, "Status")).to_have_count(0)  # never rotated
    region.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="Rotate the secret of “Reporting pipeline”")).to_be_focused()
    # What will happen, before anything does.
    rotate = page.locator("section[data-screen=rotate]")
    expect(rotate).to_contain_text(f"A six-digit code goes to you at {admin.email}")
    expect(rotate).to_contain_text("you reveal the new secret, once")
    # The overlap in the server's numbers (KEYRELEASE_ROTATION_GRACE_SECONDS, _MAX_OVERLAP_SECONDS).
    assert (grace, server.app.state.services.settings.rotation_max_overlap_seconds) == (86400, 604800)
    expect(rotate).to_contain_text(
        "The current secret keeps working until 1 day after the new one's first use, at most 7 days after the release."
    )
    expect(rotate).to_contain_text("The key does not expire.")
    page.get_by_label("New expiry (optional)", exact=True).fill(renewed.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Rotate secret").click()

    # The same verification screen as a new key's, about the rotation.
    expect(page.get_by_role("heading", name="Verify the new secret of “Reporting pipeline”")).to_be_focused()
    assert page.url.endswith(f"#/keys/{key.id}/rotation")
    expect(page.locator("#verify-intro")).to_contain_text(f"A six-digit code was emailed to {admin.email}")
    expect(page.locator("#lock-clock-label")).to_have_text("Rotation locks in")
    expect(page.locator("#lock-clock")).to_have_text(re.compile(r"^1[45]:\d\d$"))  # by the server's clock
    expect(page.locator("#attempts-left")).to_have_text("5")
    expect(page.get_by_role("button", name="Resend code (3 left)")).to_be_enabled()
    expect(page.get_by_role("button", name="Cancel rotation")).to_be_visible()
    assert works(server, key.client_id, old)  # pending: the old secret works

    code = admin.code("Reporting pipeline", nth=2)  # the key's own code was the first
    assert code != admin.code("Reporting pipeline")
    enter_code(page, admin.code("Reporting pipeline"))  # the key's code is no code of the rotation's
    expect(page.locator("#code-error")).to_have_text(GENERIC_VERIFICATION_ERROR)
    expect(page.locator("#attempts-left")).to_have_text("4")
    enter_code(page, wrong(code))
    expect(page.locator("#code-error")).to_have_text(GENERIC_VERIFICATION_ERROR)
    expect(page.locator("#attempts-left")).to_have_text("3")

    enter_code(page, code)
    expect(page.get_by_role("heading", name="“Reporting pipeline” is verified")).to_be_focused()
    assert page.url.endswith(f"#/keys/{key.id}")
    expect(page.locator("#key-message")).to_contain_text("Its new secret is verified. Reveal it")
    expect(shown(page, "Status")).to_have_text("Verified, not yet released")
    expect(shown(page, "Started by")).to_have_text(f"you ({admin.email})")
    expect(page.get_by_role("button", name="Rotate secret")).to_be_hidden()
    assert works(server, key.client_id, old)  # verified, not released

    # The new secret, once, exactly as a new key's credentials.
    page.get_by_role("button", name="Reveal the new secret").click()
    expect(page.get_by_role("heading", name="Credentials")).to_be_focused()
    expect(page.get_by_label("Client ID", exact=True)).to_have_value(key.client_id)  # the same client
    new = page.get_by_label("Client secret", exact=True).input_value()
    assert new.startswith("krs_") and new != old
    expect(page.locator("#credentials-warning")).to_contain_text("It will not be shown again")
    expect(page.locator("#key-message")).to_contain_text(
        "the only time the new secret is shown. The old one keeps working until 1 day after the new one's first use"
    )

    page.get_by_role("button", name="I have stored the secret").click()
    expect(page.get_by_role("heading", name="“Reporting pipeline” is verified")).to_be_focused()
    assert new not in page.content()
    expect(page.get_by_role("button", name=re.compile("^Reveal"))).to_be_hidden()
    # The overlap: both secrets' state, the new one not used yet.
    expect(shown(page, "Status")).to_have_text("Both secrets work")
    expect(shown(page, "New secret")).to_contain_text("not used yet")
    expect(shown(page, "Old secret")).to_contain_text("at the latest; 1 day after the new secret's first use if that is sooner")
    expect(page.locator("#key-details")).to_contain_text(local(page, renewed.replace(second=0, microsecond=0)))

    # Both secrets work at the token endpoint; the new one's first use starts the grace.
    first_use = server.clock.now()
    assert works(server, key.client_id, new)
    assert works(server, key.client_id, old)
    page.reload()
    expect(shown(page, "New secret")).to_contain_text(f"first used {local(page, first_use)}")
    expect(shown(page, "Old secret")).to_have_text(f"Retires {local(page, first_use + timedelta(seconds=grace))}")

    server.clock.advance(grace)
    refused = token(server, key.client_id, old)
    assert refused.status_code == 401
    assert refused.content == token(server, key.client_id, "krs_" + "x" * 49).content  # as any wrong secret
    assert works(server, key.client_id, new)
    page.reload()
    expect(shown(page, "Status")).to_have_text("Completed")
    expect(shown(page, "Old secret")).to_have_text(f"Retired {local(page, first_use + timedelta(seconds=grace))}")
    expect(page.get_by_role("button", name="Rotate secret")).to_be_visible()  # a next rotation may start


def test_the_keys_list_marks_a_key_being_rotated(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Listed")
    sign_in(page, admin)
    start_rotation(page, key)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Keys", exact=True).click()
    row = page.get_by_role("row", name=re.compile("Listed"))
    expect(row).to_contain_text("Active")
    expect(row.get_by_text("Rotation pending", exact=True)).to_be_visible()


def test_a_resent_code_replaces_the_rotations_code(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Resent")
    sign_in(page, admin)
    start_rotation(page, key)
    first = admin.code("Resent", nth=2)
    resend = page.get_by_role("button", name=re.compile("^Resend code"))
    resend.click()
    expect(resend).to_have_text("Resend code (2 left)")
    expect(page.get_by_label("Verification code", exact=True)).to_be_focused()
    newest = admin.code("Resent", nth=3)
    if newest != first:  # the earlier code no longer works
        enter_code(page, first)
        expect(page.locator("#code-error")).to_have_text(GENERIC_VERIFICATION_ERROR)
    enter_code(page, newest)
    expect(page.locator("#key-message")).to_contain_text("Its new secret is verified")


def test_a_new_expiry_in_the_past_is_refused_beside_its_field_and_starts_nothing(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Renewed badly")
    sign_in(page, admin)
    open_key(page, key).get_by_role("button", name="Rotate secret").click()
    field = page.get_by_label("New expiry (optional)", exact=True)
    field.fill("2026-01-01T00:00")  # the server's clock says 2030
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#rotate-expires-error")).to_have_text("The expiry date must be in the future.")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    page.get_by_role("link", name="Keep the current secret").click()
    expect(page.get_by_role("heading", name="“Renewed badly” is verified")).to_be_focused()
    expect(shown(page, "Status")).to_have_count(0)  # no rotation was started
    assert len(server.mails(lambda m: m.to == admin.email and "“Renewed badly”" in m.subject)) == 1


# -- cancel and lock: the key keeps its old secret -------------------------------------


def test_a_rotation_cancelled_on_its_verification_screen_or_the_key_leaves_the_old_secret(
    page: Page, admin: Admin, server: LiveApp
):
    key = Released(server, admin, "Cancelled twice")
    sign_in(page, admin)
    start_rotation(page, key)
    page.get_by_role("button", name="Cancel rotation").click()
    expect(page.get_by_role("heading", name="“Cancelled twice” is verified")).to_be_focused()
    assert page.url.endswith(f"#/keys/{key.id}")
    expect(shown(page, "Status")).to_have_text("Cancelled")
    expect(page.locator("#rotation-status")).to_contain_text("The key keeps its current secret")
    expect(page.locator("#key-details")).to_contain_text("Active")
    assert works(server, key.client_id, key.secret)

    # A pending rotation on the key's page: the code can be entered from there, or it is cancelled.
    start_rotation(page, key)
    region = open_key(page, key)
    expect(shown(page, "Status")).to_have_text("Waiting for the code")
    expect(shown(page, "Attempts left")).to_have_text("5")
    expect(region.get_by_role("button", name="Rotate secret")).to_be_hidden()
    region.get_by_role("link", name="Enter the code").click()
    expect(page.get_by_role("heading", name="Verify the new secret of “Cancelled twice”")).to_be_focused()
    page.go_back()
    region.get_by_role("button", name="Cancel rotation").click()
    expect(shown(page, "Status")).to_have_text("Cancelled")
    expect(region.get_by_role("button", name="Rotate secret")).to_be_visible()
    assert works(server, key.client_id, key.secret)
    # Its code is worth nothing now.
    verify = server.run(server.app.state.services.keys.verify_key(admin.model, key.id, admin.code(key.name, nth=3)))
    assert isinstance(verify, VerificationFailed)


def test_five_wrong_codes_lock_the_rotation_and_leave_the_key_active(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Guessed")
    sign_in(page, admin)
    start_rotation(page, key)
    right = admin.code("Guessed", nth=2)
    for left in (4, 3, 2, 1):
        enter_code(page, wrong(right))
        expect(page.locator("#attempts-left")).to_have_text(str(left))
    enter_code(page, wrong(right))
    expect(page.get_by_role("heading", name="“Guessed” is verified")).to_be_focused()
    expect(page.locator("#rotation-status")).to_have_text(
        "The rotation is locked: a wrong code was entered too many times. "
        "Nothing was released: the key keeps its current secret, which still works."
    )
    expect(shown(page, "Status")).to_have_text("Locked")
    expect(page.locator("#key-details")).to_contain_text("Active")
    expect(page.get_by_role("button", name="Rotate secret")).to_be_visible()
    assert works(server, key.client_id, key.secret)
    enter_url = f"/#/keys/{key.id}/rotation"  # the verification screen is gone for good
    page.goto(enter_url)
    expect(page.get_by_role("heading", name="“Guessed” is verified")).to_be_focused()


def test_a_rotation_not_verified_in_time_locks_on_screen(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Too late")
    page.clock.install()
    sign_in(page, admin)
    start_rotation(page, key)
    window = server.app.state.services.settings.policy.verification_window_seconds
    server.clock.advance(window)
    page.clock.fast_forward(window * 1000)
    expect(page.get_by_role("heading", name="“Too late” is verified")).to_be_focused()
    expect(page.locator("#rotation-status")).to_contain_text("The rotation is locked: it was not verified in time.")
    assert works(server, key.client_id, key.secret)


# -- a partner key ---------------------------------------------------------------------


def test_a_partner_keys_rotation_goes_to_the_partner(page: Page, admin: Admin, server: LiveApp):
    partner_email = "keys-rotation@acme.example"
    key = Released(server, admin, "Acme feed", partner=("Acme", partner_email))
    sign_in(page, admin)
    open_key(page, key).get_by_role("button", name="Rotate secret").click()
    expect(page.locator("section[data-screen=rotate]")).to_contain_text(
        f"the partner Acme ({partner_email}) is emailed a one-time password to retrieve the new secret, once"
    )
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#verify-recipient")).to_contain_text(
        f"When you verify, a one-time password for the new secret goes to Acme at {partner_email}."
    )
    enter_code(page, admin.code("Acme feed", nth=2))
    expect(page.get_by_role("heading", name="“Acme feed” is verified")).to_be_focused()
    expect(page.locator("#key-message")).to_contain_text(
        f"Its new secret is verified. The partner Acme ({partner_email}) has been emailed a one-time password"
    )
    expect(page.get_by_role("button", name=re.compile("^Reveal"))).to_be_hidden()  # not to the admin
    expect(shown(page, "Status")).to_have_text("Verified, not yet released")
    expect(page.get_by_role("button", name="Cancel rotation")).to_be_visible()

    # The partner retrieves the new secret on the partner page, with the new email's password.
    partner = page.context.browser.new_context(base_url=server.url, locale="en-GB")
    try:
        tab = partner.new_page()
        tab.goto("/partner")
        tab.get_by_label("Key ID").fill(key.id)
        tab.get_by_label("One-time password").fill(partner_otp(server, partner_email, "Acme feed", nth=2))
        tab.get_by_role("button", name="Reveal credentials").click()
        expect(tab.get_by_label("Client ID", exact=True)).to_have_value(key.client_id)
        new = tab.get_by_label("Client secret", exact=True).input_value()
    finally:
        partner.close()
    assert new != key.secret
    assert works(server, key.client_id, new) and works(server, key.client_id, key.secret)

    page.reload()
    expect(shown(page, "Status")).to_have_text("Both secrets work")
    expect(shown(page, "New secret")).to_contain_text("first used")
    expect(page.get_by_role("button", name="Cancel rotation")).to_be_hidden()


# -- who may rotate --------------------------------------------------------------------


def test_only_a_released_active_key_offers_a_rotation(page: Page, admin: Admin, server: LiveApp):
    keys = server.app.state.services.keys
    unrevealed = server.run(keys.create_key(admin.model, name="Not revealed", kind=KeyKind.INSTITUTIONAL))
    server.run(keys.verify_key(admin.model, str(unrevealed.id), admin.code("Not revealed")))
    sign_in(page, admin)
    page.goto(f"/#/keys/{unrevealed.id}")
    expect(page.get_by_role("button", name="Reveal credentials")).to_be_visible()
    expect(page.get_by_role("region", name="Secret rotation")).to_be_hidden()
    page.goto(f"/#/keys/{unrevealed.id}/rotate")  # typed in: the key's page, not the form
    expect(page.get_by_role("heading", name="“Not revealed” is verified")).to_be_focused()

    revoked = Released(server, admin, "Revoked")
    server.run(keys.revoke_key(admin.model, revoked.id))
    page.goto(f"/#/keys/{revoked.id}")
    expect(page.get_by_role("heading", name="“Revoked” is revoked")).to_be_focused()
    expect(page.get_by_role("region", name="Secret rotation")).to_be_hidden()


def test_a_colleague_sees_who_has_the_pending_rotations_code_and_may_cancel_it(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Shared")
    sign_in(page, admin)
    start_rotation(page, key)
    colleague = Admin(server, institution=admin.institution, name="Bob")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, colleague)
    region = open_key(page, key)
    expect(shown(page, "Status")).to_have_text("Waiting for the code")
    expect(shown(page, "Started by")).to_have_text(admin.email)
    expect(page.locator("#rotation-status")).to_contain_text(
        f"emailed to {admin.email}, who started the rotation: only they can enter it."
    )
    expect(region.get_by_role("link", name="Enter the code")).to_be_hidden()  # their code is not the colleague's
    page.goto(f"/#/keys/{key.id}/rotation")  # typed in: the key's page, not a screen that can only fail
    expect(page.get_by_role("heading", name="“Shared” is verified")).to_be_focused()
    region.get_by_role("button", name="Cancel rotation").click()
    expect(shown(page, "Status")).to_have_text("Cancelled")


def test_a_colleague_is_told_who_reveals_the_new_secret_and_offered_no_reveal(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Revealed by Ada")
    sign_in(page, admin)
    start_rotation(page, key)
    enter_code(page, admin.code(key.name, nth=2))
    expect(page.get_by_role("button", name="Reveal the new secret")).to_be_visible()
    colleague = Admin(server, institution=admin.institution, name="Bob")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, colleague)
    open_key(page, key)
    expect(shown(page, "Status")).to_have_text("Verified, not yet released")
    expect(page.locator("#key-message")).to_contain_text(
        f"Its new secret is verified. Only {admin.email}, who started the rotation, can reveal it, once."
    )
    expect(page.locator("#rotation-status")).to_contain_text(f"only {admin.email}, who started the rotation, can reveal")
    expect(page.get_by_role("button", name=re.compile("^Reveal"))).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel rotation")).to_be_visible()
    # The API agrees: the colleague's reveal would only fail.
    assert isinstance(server.run(server.app.state.services.keys.reveal_key(colleague.model, key.id)), VerificationFailed)


def test_a_rotation_whose_admin_was_disabled_shows_why_it_locked_to_a_colleague(page: Page, admin: Admin, server: LiveApp):
    key = Released(server, admin, "Left behind")
    sign_in(page, admin)
    start_rotation(page, key)
    server.run(disable_admin(server.clock, admin.email))
    colleague = Admin(server, institution=admin.institution, name="Bob")
    page.evaluate("sessionStorage.clear()")
    sign_in(page, colleague)
    open_key(page, key)
    expect(page.locator("#rotation-status")).to_contain_text(
        f"The rotation is locked: {admin.email}, who started it, was disabled before it was verified."
    )
    expect(page.get_by_role("button", name="Rotate secret")).to_be_visible()  # the colleague may start anew
    assert works(server, key.client_id, key.secret)


# -- keyboard and small screens --------------------------------------------------------


def test_a_rotation_works_by_keyboard_at_320_px(browser: Browser, server: LiveApp, admin: Admin):
    key = Released(server, admin, "A key with a rather long name, for a narrow screen")
    context = browser.new_context(base_url=server.url, viewport={"width": 320, "height": 640}, locale="en-GB")
    try:
        page = context.new_page()
        sign_in(page, admin)
        page.goto(f"/#/keys/{key.id}")
        expect(page.get_by_role("heading", name=re.compile("is verified$"))).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#rotate-start")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("^Rotate the secret"))).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#rotate-expires")
        tab_until(page, "#rotate-button")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("^Verify the new secret"))).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#code")
        page.keyboard.type(admin.code(key.name, nth=2))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("is verified$"))).to_be_focused()
        assert_fits(page, 320)
        tab_until(page, "#reveal-button")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Credentials")).to_be_focused()
        tab_until(page, "#stored-button")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("is verified$"))).to_be_focused()
        expect(shown(page, "Status")).to_have_text("Both secrets work")
        assert_fits(page, 320)
    finally:
        context.close()


# -- screenshots -----------------------------------------------------------------------


def test_screenshots_of_the_rotation_screens(browser: Browser, server: LiveApp, tmp_path: Path, request: pytest.FixtureRequest):
    """The rotation's screens as PNGs; with KEYRELEASE_UPDATE_SCREENSHOTS=1 they replace the
    ones in docs/screenshots/ (see docs/console.md)."""
    if request.node.callspec.params["server"] != "sqlite":
        pytest.skip("the screenshots are taken once, on SQLite")
    out = SCREENSHOTS if os.environ.get("KEYRELEASE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    ada = Admin(server, institution="Example University", email="ada-rotation@uni.example", name="Ada Lovelace")
    key = Released(server, ada, "Reporting pipeline")
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1000, "height": 720}, locale="en-GB", timezone_id="UTC"
    )
    try:
        page = context.new_page()

        def shot(name: str) -> None:
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)

        sign_in(page, ada)
        open_key(page, key).get_by_role("button", name="Rotate secret").click()
        page.get_by_label("New expiry (optional)", exact=True).fill(
            (server.clock.now() + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M")
        )
        shot("rotate")
        page.get_by_role("button", name="Rotate secret").click()
        expect(page.get_by_role("heading", name="Verify the new secret of “Reporting pipeline”")).to_be_visible()
        server.clock.advance(37)  # the clocks have been running for a while
        enter_code(page, "000000")
        expect(page.locator("#attempts-left")).to_have_text("4")
        shot("rotation-verify")
        page.set_viewport_size({"width": 320, "height": 640})
        shot("rotation-verify-320px")
        page.set_viewport_size({"width": 1000, "height": 720})
        enter_code(page, ada.code("Reporting pipeline", nth=2))
        page.get_by_role("button", name="Reveal the new secret").click()
        new = page.get_by_label("Client secret", exact=True).input_value()
        page.get_by_role("button", name="I have stored the secret").click()
        server.clock.advance(3600)
        assert works(server, key.client_id, new)
        page.reload()
        expect(shown(page, "Status")).to_have_text("Both secrets work")
        shot("rotation-overlap")
    finally:
        context.close()
    for name in ROTATION_SCREENS:
        assert (out / f"{name}.png").stat().st_size > 1000, name


ROTATION_SCREENS = ("rotate", "rotation-verify", "rotation-verify-320px", "rotation-overlap")
