"""The mail templates: for each kind of message a subject, a plain-text and an HTML part.

The defaults ship as files in ``keyrelease/mail/default_templates/``. An operator overrides any
of them with a folder named by ``KEYRELEASE_MAIL_TEMPLATES_DIR`` holding files of the same
names (``verification_code.txt``, ``partner_otp.html``, ``verification_code.subject``, …); a
file that is absent there keeps its default. Templates are :class:`string.Template` text
(``$code``, ``${key_name}``; ``$$`` is a literal dollar sign).

Every template is checked when it is loaded, at start-up, so a broken one fails before the
service listens, never at send time: an unreadable file, a malformed ``$``, an unknown
placeholder, a missing required one (the code, the one-time password, the key id, when it
expires) each raise :class:`~keyrelease.exceptions.TemplateError` naming the file.

There is no placeholder for a secret, so no template can put one in an email; the client ID
(an identifier, not a secret) has a placeholder only in the expiry notice, which must say which
key it is about. Subjects may not carry the code or the one-time password: subjects show in inbox
previews, notifications and mail logs.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from keyrelease.exceptions import TemplateError

PARTS = ("subject", "txt", "html")
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Placeholders:
    """What a kind of message may say. ``required`` must appear in the text and HTML parts;
    ``secret`` must not appear in the subject."""

    required: frozenset[str]
    optional: frozenset[str]
    secret: frozenset[str]

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


KINDS: Mapping[str, Placeholders] = {
    "verification_code": Placeholders(
        required=frozenset({"code", "expires_at"}),
        optional=frozenset({"key_name", "key_kind", "partner_name", "partner_email", "release_to"}),
        secret=frozenset({"code"}),
    ),
    "passkey_code": Placeholders(
        required=frozenset({"code", "expires_at"}),
        optional=frozenset(),
        secret=frozenset({"code"}),
    ),
    "partner_otp": Placeholders(
        required=frozenset({"otp", "key_id", "partner_url", "expires_at"}),
        optional=frozenset({"key_name", "partner_name", "institution_name"}),
        secret=frozenset({"otp"}),
    ),
    "creation_suspended": Placeholders(
        required=frozenset({"admin_email", "locked_keys", "suspended_until"}),
        optional=frozenset({"admin_name", "institution_name"}),
        secret=frozenset(),
    ),
    "secret_leaked": Placeholders(
        required=frozenset({"key_name", "key_id", "leak_url", "reported_at"}),
        optional=frozenset({"key_kind", "institution_name", "partner_name", "source", "next_steps"}),
        secret=frozenset(),
    ),
    "expiry_notice": Placeholders(
        required=frozenset({"key_name", "client_id", "expires_at", "renewal"}),
        optional=frozenset({"key_id", "key_kind", "institution_name", "partner_name", "threshold"}),
        secret=frozenset(),
    ),
}


@dataclass(frozen=True)
class MailTemplate:
    subject: Template
    text: Template
    html: Template

    def render(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """Subject (one line), text, and HTML with every value escaped."""
        subject = " ".join(self.subject.substitute(values).split())
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        return subject, self.text.substitute(values), self.html.substitute(escaped)


@dataclass(frozen=True)
class MailTemplates:
    verification_code: MailTemplate
    passkey_code: MailTemplate
    partner_otp: MailTemplate
    creation_suspended: MailTemplate
    secret_leaked: MailTemplate
    expiry_notice: MailTemplate
    #: Which files were overridden, by path (empty: all defaults).
    overrides: tuple[str, ...] = ()


def load_templates(directory: Path | None = None) -> MailTemplates:
    """The templates: defaults, with the files found in ``directory`` taking their place.

    Raise :class:`TemplateError` naming the file for anything that would fail at send time.
    """
    found: dict[str, Path] = {}
    if directory is not None:
        found = _template_files(directory)
    loaded: dict[str, MailTemplate] = {}
    for kind, placeholders in KINDS.items():
        parts = {}
        for part in PARTS:
            name = f"{kind}.{part}"
            if name in found:
                parts[part] = _check(str(found[name]), _read(found[name]), part, placeholders)
            else:
                parts[part] = _default(name)
        loaded[kind] = MailTemplate(subject=parts["subject"], text=parts["txt"], html=parts["html"])
    return MailTemplates(**loaded, overrides=tuple(str(found[name]) for name in sorted(found)))


def _template_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise TemplateError(f"{directory}: not a directory")
    known = {f"{kind}.{part}" for kind in KINDS for part in PARTS}
    found = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as err:
        raise TemplateError(f"{directory}: cannot list: {err.strerror or err}") from err
    for path in entries:
        if path.name.startswith(".") or path.suffix.lstrip(".") not in PARTS:
            continue  # a README, an editor's backup: not ours to judge
        if path.name not in known:
            raise TemplateError(f"{path}: unknown template file (known: {', '.join(sorted(known))})")
        found[path.name] = path
    return found


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise TemplateError(f"{path}: larger than {MAX_BYTES // 1024} KiB")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TemplateError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except OSError as err:
        raise TemplateError(f"{path}: cannot read: {err.strerror or err}") from err


@functools.cache
def _default(name: str) -> Template:
    kind, _, part = name.partition(".")
    text = resources.files("keyrelease.mail").joinpath("default_templates", name).read_text(encoding="utf-8")
    return _check(f"default template {name}", text, part, KINDS[kind])


def _check(source: str, text: str, part: str, placeholders: Placeholders) -> Template:
    if part == "subject":
        text = text.strip()
        if not text:
            raise TemplateError(f"{source}: the subject is empty")
        if "\n" in text:
            raise TemplateError(f"{source}: the subject must be one line")
    template = Template(text)
    if not template.is_valid():
        for match in template.pattern.finditer(text):
            if match.group("invalid") is not None:
                line = text.count("\n", 0, match.start()) + 1
                raise TemplateError(f"{source}: line {line}: a $ that starts no placeholder (write $$ for a dollar sign)")
    used = set(template.get_identifiers())
    if unknown := sorted(used - placeholders.allowed):
        raise TemplateError(
            f"{source}: unknown placeholder {', '.join('$' + n for n in unknown)} "
            f"(known: {', '.join('$' + n for n in sorted(placeholders.allowed))})"
        )
    if part == "subject":
        if leaked := sorted(used & placeholders.secret):
            raise TemplateError(f"{source}: the subject must not contain {', '.join('$' + n for n in leaked)}")
    elif missing := sorted(placeholders.required - used):
        raise TemplateError(f"{source}: missing placeholder {', '.join('$' + n for n in missing)}")
    return template
