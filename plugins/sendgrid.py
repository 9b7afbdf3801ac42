"""The ``sendgrid`` transport: the SendGrid v3 Mail Send API (``POST /v3/mail/send``).

Settings (read once, at start-up, by :meth:`SendgridTransport.from_env`):

``KEYRELEASE_SENDGRID_API_KEY``          required; sent as ``Authorization: Bearer``.
``KEYRELEASE_SENDGRID_BASE_URL``         default ``https://api.sendgrid.com``.
``KEYRELEASE_SENDGRID_TIMEOUT_SECONDS``  deadline for one request, default 10.

Our ``message_id`` travels as the ``keyrelease_message_id`` custom argument (it comes back in
SendGrid's event webhooks) and as the ``X-Keyrelease-Message-Id`` header. Answers map as:
2xx accepted; 429 and 5xx transient (with ``Retry-After``); 401/403 permanent, plus one warning
log line since every later message will fail the same way; any other 4xx permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from keyrelease.exceptions import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.hookspecs import hookimpl
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport, check_headers

DEFAULT_BASE_URL = "https://api.sendgrid.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
MESSAGE_ID_ARG = "keyrelease_message_id"
MESSAGE_ID_HEADER = "X-Keyrelease-Message-Id"

logger = logging.getLogger("keyrelease.mail")


class SendgridTransport(Transport):
    """Delivers through SendGrid's HTTP API, over one pooled client per transport."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SendgridTransport:
        api_key = env.get("KEYRELEASE_SENDGRID_API_KEY", "").strip()
        if not api_key:
            raise ConfigError("KEYRELEASE_SENDGRID_API_KEY", "required when KEYRELEASE_MAIL_TRANSPORT is sendgrid")
        if any(c.isspace() or not c.isprintable() for c in api_key):
            raise ConfigError("KEYRELEASE_SENDGRID_API_KEY", "contains whitespace or control characters")

        base_url = env.get("KEYRELEASE_SENDGRID_BASE_URL") or DEFAULT_BASE_URL
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as err:
            raise ConfigError("KEYRELEASE_SENDGRID_BASE_URL", f"not a URL: {base_url!r}") from err
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError("KEYRELEASE_SENDGRID_BASE_URL", f"must be an http(s) URL, not {base_url!r}")

        timeout = DEFAULT_TIMEOUT_SECONDS
        if raw := env.get("KEYRELEASE_SENDGRID_TIMEOUT_SECONDS"):
            try:
                timeout = float(raw)
            except ValueError:
                timeout = math.nan
            if not 0 < timeout < math.inf:
                raise ConfigError("KEYRELEASE_SENDGRID_TIMEOUT_SECONDS", f"must be a positive number, not {raw!r}")

        return cls(api_key, base_url=base_url, timeout=timeout)

    async def send(self, message: EmailMessage) -> DeliveryResult:
        payload = build_payload(message)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post("/v3/mail/send", json=payload)
        except (TimeoutError, httpx.TimeoutException) as err:
            raise TransientDeliveryError(f"SendGrid did not answer within {self.timeout:g}s") from err
        except httpx.RequestError as err:  # connection refused, reset, TLS, unreadable answer
            raise TransientDeliveryError(f"SendGrid request failed: {type(err).__name__}: {err}") from err

        if response.is_success:
            return DeliveryResult(
                transport=self.name,
                provider_message_id=response.headers.get("X-Message-Id"),
                detail=f"{response.status_code} {response.reason_phrase}",
            )
        raise _error_for(response)

    async def close(self) -> None:
        await self._client.aclose()


def build_payload(message: EmailMessage) -> dict[str, Any]:
    """The Mail Send request body for ``message``. Raise :class:`PermanentDeliveryError` for a
    CR, LF or NUL in any header: SendGrid would build the headers from these fields."""
    check_headers(message)
    custom_args = {MESSAGE_ID_ARG: message.message_id}
    content = [{"type": "text/plain", "value": message.text}]
    if message.html is not None:
        content.append({"type": "text/html", "value": message.html})
    return {
        "personalizations": [{"to": [_address(message.to)], "custom_args": custom_args}],
        "from": _address(message.sender),
        "subject": message.subject,
        "content": content,
        "headers": {**message.headers, MESSAGE_ID_HEADER: message.message_id},
        "custom_args": custom_args,
    }


def _address(value: str) -> dict[str, str]:
    """``"Name <addr>"`` or ``"addr"`` as SendGrid's ``{"email", "name"}`` object."""
    name, addr = email.utils.parseaddr(value)
    if not addr or "@" not in addr:
        raise PermanentDeliveryError(f"not an email address: {value!r}")
    return {"email": addr, "name": name} if name else {"email": addr}


def _error_for(response: httpx.Response) -> DeliveryError:
    """The DeliveryError for a non-2xx answer, carrying SendGrid's own error messages."""
    status = response.status_code
    said = f"SendGrid answered {status} {response.reason_phrase}"
    if messages := _provider_messages(response):
        said = f"{said}: {messages}"
    if status in (401, 403):
        logger.warning(
            "SendGrid rejected the API key (HTTP %d): check KEYRELEASE_SENDGRID_API_KEY and its mail.send permission",
            status,
        )
        return PermanentDeliveryError(said)
    if status == 429 or status >= 500:
        return TransientDeliveryError(said, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    return PermanentDeliveryError(said)


def _provider_messages(response: httpx.Response) -> str:
    """``errors[].message`` (with ``field`` when given) from a SendGrid error body, or ``""``."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict) and error.get("message"):
            field = error.get("field")
            parts.append(f"{field}: {error['message']}" if field else str(error["message"]))
    return "; ".join(parts)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" zone: the RFC says HTTP-dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@hookimpl
def register_transports(register):
    register(SendgridTransport)
