"""Turning an outbox row into the email that is sent: subject, text and HTML parts.

The code or one-time password is derived here, at send time, from the server secret and the
references in the row's payload; it is never written to the database. Key material (client
id, secret) never appears in any email: no template has a placeholder for it (see
``keyrelease.mail.templates``).
"""

from __future__ import annotations

import email.utils
import uuid
from datetime import UTC, datetime

from keyrelease import codes
from keyrelease.mail.templates import MailTemplates, load_templates
from keyrelease.mail.transport import EmailMessage
from keyrelease.models import MessageKind, OutboxMessage


def release_to(payload: dict) -> str:
    """Where the key goes once verified, so the admin can catch a wrong recipient first."""
    if payload.get("partner_email"):
        partner = payload.get("partner_name") or "the partner"
        return (
            f"When you verify, a one-time password goes to {partner} at {payload['partner_email']}, "
            "who retrieves the key with it. If that is not the right recipient, do not enter the code."
        )
    return "When you verify, you can reveal the key's credentials once, on the verification screen."


def leak_next_steps(payload: dict) -> str:
    """What the recipient of a leak notice does next: an admin makes a new key; a partner asks
    the institution for one."""
    if payload.get("role") == "partner":
        return (
            f"Stop using this key now and ask {payload['institution_name']} for a new one. "
            "Remove the secret from where it was found and from its history; it will never work again."
        )
    return (
        "Create a new key for whoever used this one (it is released after verification, as every "
        "new key is), then remove the secret from where it was found and from its history. "
        "The old secret will never work again."
    )


def expiry_renewal(payload: dict) -> str:
    """How the recipient of an expiry notice keeps access (renewal is a rotation with a new
    expiry, docs/tokens.md): the one place this is said."""
    if payload.get("role") == "partner":
        return (
            f"To keep access, contact the admin at {payload['institution_name']} who gave you this key "
            "and ask them to renew it before then; you will get a new one-time password for its new secret."
        )
    return (
        "To keep access, renew it before then: rotate the key with a new expiry date (rotateKey with "
        "expiresAt). You confirm the rotation with a code, as for a new key; its new secret is released "
        "once, and the old one keeps working while your clients switch."
    )


class MailRenderer:
    def __init__(
        self, *, server_secret: bytes, mail_from: str, public_url: str, templates: MailTemplates | None = None
    ) -> None:
        self._secret = server_secret
        self._from = mail_from
        self._partner_url = public_url.rstrip("/") + "/partner"
        self._templates = templates or load_templates()
        self._id_domain = email.utils.parseaddr(mail_from)[1].rpartition("@")[2] or "keyrelease.localhost"

    def message_id(self, message: OutboxMessage) -> str:
        """The Message-ID of ``message``: the same on every attempt, so that a provider or a
        mailbox can recognise a retry after an ambiguous failure."""
        return f"{message.id}@{self._id_domain}"

    def render(self, message: OutboxMessage) -> EmailMessage:
        payload = message.payload
        if message.kind is MessageKind.CREATION_SUSPENDED:
            subject, text, html = self._templates.creation_suspended.render(
                {
                    "admin_email": payload["admin_email"],
                    "admin_name": payload.get("admin_name") or payload["admin_email"],
                    "institution_name": payload["institution_name"],
                    "locked_keys": str(payload["locked_keys"]),
                    "suspended_until": _utc(payload["suspended_until"]),
                }
            )
            return self._message(message, subject, text, html)
        if message.kind is MessageKind.SECRET_LEAKED:
            subject, text, html = self._templates.secret_leaked.render(
                {
                    **_about(payload),
                    "leak_url": payload["leak_url"] or "(not given)",
                    "source": payload.get("source") or "a report",
                    "reported_at": _utc(payload["reported_at"]),
                    "next_steps": leak_next_steps(payload),
                }
            )
            return self._message(message, subject, text, html)
        if message.kind is MessageKind.EXPIRY_NOTICE:
            subject, text, html = self._templates.expiry_notice.render(
                {
                    **_about(payload),
                    "client_id": payload["client_id"],
                    "threshold": payload["threshold"],
                    "expires_at": _iso(payload["expires_at"]),
                    "renewal": expiry_renewal(payload),
                }
            )
            return self._message(message, subject, text, html)
        if message.kind is MessageKind.PASSKEY_CODE:
            subject, text, html = self._templates.passkey_code.render(
                {
                    "code": codes.verification_code(self._secret, uuid.UUID(payload["enrollment_id"]), int(payload["generation"])),
                    "expires_at": _utc(payload["expires_at"]),
                }
            )
            return self._message(message, subject, text, html)
        key_id = uuid.UUID(payload["key_id"])
        # A rotation's code and one-time password derive from the rotation's id, not the key's.
        subject_id = uuid.UUID(payload.get("rotation_id") or payload["key_id"])
        expires_at = _utc(payload["expires_at"])
        if message.kind is MessageKind.VERIFICATION_CODE:
            template = self._templates.verification_code
            values = {
                "code": codes.verification_code(self._secret, subject_id, int(payload["generation"])),
                "expires_at": expires_at,
                "key_name": payload["key_name"],
                "key_kind": payload["key_kind"],
                "partner_name": payload.get("partner_name") or "",
                "partner_email": payload.get("partner_email") or "",
                "release_to": release_to(payload),
            }
        else:
            template = self._templates.partner_otp
            values = {
                "otp": codes.partner_otp(self._secret, subject_id),
                "key_id": str(key_id),
                "partner_url": self._partner_url,
                "expires_at": expires_at,
                "key_name": payload["key_name"],
                "partner_name": payload.get("partner_name") or "partner",
                "institution_name": payload["institution_name"],
            }
        subject, text, html = template.render(values)
        return self._message(message, subject, text, html)

    def _message(self, message: OutboxMessage, subject: str, text: str, html: str) -> EmailMessage:
        return EmailMessage(
            message_id=self.message_id(message),
            sender=self._from,
            to=message.recipient,
            subject=subject,
            text=text,
            html=html,
            headers={"X-Keyrelease-Message-Id": self.message_id(message)},
        )


def _about(payload: dict) -> dict[str, str]:
    """The values every notice about one key has (a leak, an expiry)."""
    return {
        "key_name": payload["key_name"],
        "key_id": payload["key_id"],
        "key_kind": payload["key_kind"],
        "institution_name": payload["institution_name"],
        "partner_name": payload.get("partner_name") or "the partner",
    }


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _iso(iso: str) -> str:
    """A moment as ISO 8601 in UTC to the second: ``2027-01-31T09:00:00Z``."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
