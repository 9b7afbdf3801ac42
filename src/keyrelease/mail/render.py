"""Turning an outbox row into the email that is sent: text and HTML parts.

The code or one-time password is derived here, at send time, from the server secret and the
references in the row's payload; it is never written to the database. Key material (client
id, secret) never appears in any email.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime
from string import Template

from keyrelease import codes
from keyrelease.mail.transport import EmailMessage
from keyrelease.models import MessageKind, OutboxMessage

CODE_SUBJECT = Template("Your keyrelease verification code for “$key_name”")
CODE_TEXT = Template(
    """Someone using your admin account asked keyrelease to create the API key “$key_name”.

Verification code: $code

The code expires at $expires_at (UTC). Enter it on the verification screen to release the key.
Until it is verified the key cannot be used.

If you did not ask for this key, do not enter the code: the key will lock by itself.
Tell your security team, and revoke any admin token you did not create.
"""
)
PARTNER_SUBJECT = Template("API key “$key_name” from $institution_name is ready for you")
PARTNER_TEXT = Template(
    """Hello $partner_name,

$institution_name has released the API key “$key_name” to you.
Retrieve its credentials once, with these two values, at $partner_url

Key ID: $key_id
One-time password: $otp

The one-time password works once and expires at $expires_at (UTC).
If you did not expect this message, ignore it; nothing happens unless the password is used.
"""
)


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.strip().split("\n\n"))
    return f'<!doctype html><html><body style="font-family: sans-serif">{paragraphs}</body></html>'


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


class MailRenderer:
    def __init__(self, *, server_secret: bytes, mail_from: str, public_url: str) -> None:
        self._secret = server_secret
        self._from = mail_from
        self._partner_url = public_url.rstrip("/") + "/partner"

    def render(self, message: OutboxMessage) -> EmailMessage:
        payload = dict(message.payload)
        key_id = uuid.UUID(payload["key_id"])
        values = {**payload, "expires_at": _when(payload["expires_at"])}
        if message.kind is MessageKind.VERIFICATION_CODE:
            values["code"] = codes.verification_code(self._secret, key_id, int(payload["generation"]))
            subject, text = CODE_SUBJECT.substitute(values), CODE_TEXT.substitute(values)
        else:
            values["otp"] = codes.partner_otp(self._secret, key_id)
            values["partner_url"] = self._partner_url
            values["partner_name"] = payload.get("partner_name") or "partner"
            subject, text = PARTNER_SUBJECT.substitute(values), PARTNER_TEXT.substitute(values)
        return EmailMessage(
            message_id=f"{message.id}@keyrelease",
            sender=self._from,
            to=message.recipient,
            subject=subject,
            text=text,
            html=_html(text),
            headers={"X-Keyrelease-Message-Id": str(message.id)},
        )
