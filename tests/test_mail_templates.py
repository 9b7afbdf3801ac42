"""The code and partner emails: what they say, their HTML, operator templates, and templates
that are broken failing at start-up rather than at send time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError, TemplateError
from keyrelease.mail.templates import KINDS, PARTS, load_templates

PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}
TRICKY_NAME = '<b>Payroll</b> & "exports"'


class HtmlOutline(HTMLParser):
    """The tags and the text of an HTML document, to check it is a document and what it says."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.declarations: list[str] = []
        self.links: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.declarations.append(decl.lower())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name == "href" and value]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @classmethod
    def of(cls, document: str) -> HtmlOutline:
        outline = cls()
        outline.feed(document)
        outline.close()
        return outline

    @property
    def plain(self) -> str:
        return " ".join("".join(self.text).split())


async def activate(api, admin, **fields):
    key, code = await api.create_key_with_code(admin, **fields)
    verified = await api.verify(admin, key["id"], code)
    assert verified["status"] == "ACTIVE", verified
    return verified


# --- the default emails ----------------------------------------------------------------------


async def test_the_code_email_has_a_text_and_an_html_part_saying_the_code_and_its_expiry(api):
    ada = await api.admin()
    await api.create_key(ada, name=TRICKY_NAME)
    [mail] = await api.mails_to(ada.email)
    code = await api.code_for(ada)

    assert f"\nVerification code: {code}\n" in mail.text
    assert "The code expires at 2030-01-01 12:05:00 (UTC)." in mail.text
    assert "If you did not ask for this key" in mail.text
    assert f"“{TRICKY_NAME}”" in mail.text and f"“{TRICKY_NAME}”" in mail.subject
    outline = HtmlOutline.of(mail.html)
    assert outline.declarations == ["doctype html"]
    assert outline.tags[:4] == ["html", "head", "meta", "meta"] and "body" in outline.tags
    assert f"Verification code: {code}" in outline.plain
    assert "The code expires at 2030-01-01 12:05:00 (UTC)." in outline.plain
    assert f"“{TRICKY_NAME}”" in outline.plain  # shown as typed ...
    assert "&lt;b&gt;Payroll&lt;/b&gt; &amp; &quot;exports&quot;" in mail.html  # ... because it was escaped
    assert "<b>Payroll" not in mail.html


async def test_the_code_email_for_a_partner_key_names_the_partner_and_where_the_password_will_go(api):
    ada = await api.admin()
    await api.create_key(ada, name="Feed", **PARTNER)
    [mail] = await api.mails_to(ada.email)
    sentence = (
        f"When you verify, a one-time password goes to {PARTNER['partnerName']} at {PARTNER['partnerEmail']}, "
        "who retrieves the key with it. If that is not the right recipient, do not enter the code."
    )
    assert sentence in " ".join(mail.text.split())
    assert sentence in " ".join(HtmlOutline.of(mail.html).plain.split())


async def test_the_code_email_for_an_institutional_key_says_it_is_revealed_to_the_admin(api):
    ada = await api.admin()
    await api.create_key(ada, name="Pipeline")
    [mail] = await api.mails_to(ada.email)
    assert "you can reveal the key's credentials once" in mail.text
    assert "one-time password" not in mail.text


async def test_the_partner_email_carries_the_key_id_the_password_and_the_link(api, settings):
    ada = await api.admin()
    key = await activate(api, ada, **PARTNER)
    [mail] = await api.mails_to(PARTNER["partnerEmail"])
    otp = await api.otp_for(PARTNER["partnerEmail"])
    link = settings.public_url + "/partner"

    assert f"\nKey ID: {key['id']}\n" in mail.text
    assert f"\nOne-time password: {otp}\n" in mail.text
    assert link in mail.text
    assert "Hello Acme Analytics," in mail.text
    assert "Example University" in mail.subject
    outline = HtmlOutline.of(mail.html)
    assert outline.declarations == ["doctype html"]
    assert f"Key ID: {key['id']}" in outline.plain
    assert f"One-time password: {otp}" in outline.plain
    assert outline.links == [link]


async def test_no_email_carries_key_material_and_no_subject_carries_a_code(api):
    ada = await api.admin()
    institutional = await activate(api, ada)
    secret = (await api.reveal(ada, institutional["id"]))["clientSecret"]
    partner = await activate(api, ada, **PARTNER)
    otp = await api.otp_for(PARTNER["partnerEmail"])
    partner_secret = (await api.reveal(None, partner["id"], otp))["clientSecret"]

    mails = api.mailbox.messages
    assert len(mails) == 3
    for mail in mails:
        for part in (mail.subject, mail.text, mail.html):
            for material in (institutional["clientId"], partner["clientId"], secret, partner_secret):
                assert material not in part
        for code in re.findall(r"^Verification code: (\d{6})$", mail.text, re.MULTILINE):
            assert code not in mail.subject
        assert otp not in mail.subject


def test_the_default_templates_ship_as_package_data():
    folder = resources.files("keyrelease.mail").joinpath("default_templates")
    names = {entry.name for entry in folder.iterdir()}

    assert names == {f"{kind}.{part}" for kind in KINDS for part in PARTS}
    assert load_templates().overrides == ()


# --- operator templates ----------------------------------------------------------------------


class TestOperatorTemplates:
    @pytest.fixture
    def templates_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "mail-templates"
        folder.mkdir()
        (folder / "verification_code.txt").write_text(
            "Bonjour,\n\nCode de vérification : $code\nValable jusqu'à $expires_at (UTC), clé « $key_name ».\n"
        )
        (folder / "verification_code.subject").write_text("Votre code pour « $key_name »\n")
        (folder / "README.md").write_text("Our mail templates; see docs/mail.md.\n")  # not a template: ignored
        return folder

    @pytest.fixture
    def env_overrides(self, templates_dir: Path) -> dict[str, str]:
        return {"KEYRELEASE_MAIL_TEMPLATES_DIR": str(templates_dir)}

    async def test_files_in_the_templates_folder_replace_the_defaults(self, api, templates_dir):
        ada = await api.admin()
        key = await api.create_key(ada, name="Export")
        [mail] = await api.mails_to(ada.email)

        assert mail.subject == "Votre code pour « Export »"
        assert mail.text.startswith("Bonjour,\n\nCode de vérification : ")
        assert "Valable jusqu'à 2030-01-01 12:05:00 (UTC)" in mail.text
        assert "Verification code:" in mail.html  # no HTML override: the default stays
        code = mail.text.split("Code de vérification : ")[1][:6]
        assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"

    def test_the_settings_name_the_overriding_files(self, settings, templates_dir):
        assert settings.mail_templates.overrides == (
            str(templates_dir / "verification_code.subject"),
            str(templates_dir / "verification_code.txt"),
        )


# --- broken templates fail at start-up -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("verification_code.txt", "Your code expires at $expires_at.\n", "missing placeholder $code"),
        ("verification_code.html", "<p>$code</p>", "missing placeholder $expires_at"),
        ("partner_otp.txt", "One-time password: $otp, until $expires_at at $partner_url\n", "missing placeholder $key_id"),
        ("partner_otp.html", "<p>$key_id $expires_at $partner_url</p>", "missing placeholder $otp"),
        ("verification_code.txt", "$code $expires_at for $client_secret\n", "unknown placeholder $client_secret"),
        ("partner_otp.subject", "Your key ${client_id}\n", "unknown placeholder $client_id"),
        ("verification_code.txt", "$code until $expires_at, costs $5\n", "line 1: a $ that starts no placeholder"),
        ("verification_code.subject", "Your code is $code\n", "the subject must not contain $code"),
        ("partner_otp.subject", "Password: $otp\n", "the subject must not contain $otp"),
        ("verification_code.subject", "\n", "the subject is empty"),
        ("verification_code.subject", "One\nTwo\n", "the subject must be one line"),
        ("verification_cod.txt", "$code $expires_at", "unknown template file"),
        ("partner_otp.txt", b"\xff\xfe not utf-8", "not UTF-8 text"),
        ("expiry_notice.txt", "$key_name ($client_id) expires at $expires_at.\n", "missing placeholder $renewal"),
        ("expiry_notice.html", "<p>$key_name expires at $expires_at. $renewal</p>", "missing placeholder $client_id"),
        ("expiry_notice.txt", "$key_name $client_id $expires_at $renewal $client_secret\n", "unknown placeholder $client_secret"),
    ],
)
def test_a_broken_template_is_a_config_error_naming_the_file(tmp_path, settings, name, content, problem):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**settings.environ, "KEYRELEASE_MAIL_TEMPLATES_DIR": str(tmp_path)})

    assert caught.value.variable == "KEYRELEASE_MAIL_TEMPLATES_DIR"
    assert caught.value.problem.startswith(f"{path}: ")
    assert problem in caught.value.problem
    assert isinstance(caught.value.__cause__, TemplateError)


def test_an_unreadable_template_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "verification_code.html").mkdir()  # a name that cannot be read as a file

    with pytest.raises(TemplateError, match=rf"^{tmp_path / 'verification_code.html'}: cannot read"):
        load_templates(tmp_path)


def test_a_templates_folder_that_does_not_exist_is_an_error(tmp_path, settings):
    with pytest.raises(ConfigError, match="not a directory"):
        Settings.from_env({**settings.environ, "KEYRELEASE_MAIL_TEMPLATES_DIR": str(tmp_path / "nowhere")})


def test_the_service_refuses_to_start_with_a_broken_template(tmp_path):
    (tmp_path / "verification_code.txt").write_text("Your code expires at $expires_at.\n")
    env = {
        **os.environ,
        "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
        "KEYRELEASE_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "KEYRELEASE_SECRET_KEY": "test-server-secret-0123456789abcdef-0123456789",
        "KEYRELEASE_MAIL_TEMPLATES_DIR": str(tmp_path),
    }

    done = subprocess.run(
        [str(Path(sys.executable).parent / "keyrelease"), "serve", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"configuration error: KEYRELEASE_MAIL_TEMPLATES_DIR: {tmp_path / 'verification_code.txt'}: missing placeholder $code"
    ]
    assert "serving" not in done.stdout
