"""keyrelease-webhook: a keyrelease mail transport that POSTs each message as JSON to a URL.

Settings (read once, at start-up, by :meth:`WebhookTransport.from_env`):

``KEYRELEASE_WEBHOOK_URL``              required; an ``http://`` or ``https://`` URL.
``KEYRELEASE_WEBHOOK_TOKEN``            optional; sent as ``Authorization: Bearer <token>``.
``KEYRELEASE_WEBHOOK_TIMEOUT_SECONDS``  deadline for one request, default 10.

The body is ``{"message_id", "from", "to", "subject", "text", "html", "headers"}`` and the
``Idempotency-Key`` header carries ``message_id``, which keyrelease keeps the same on every
retry of a message. Answers map as: 2xx accepted; 408, 429 and 5xx transient (``Retry-After``
in seconds is passed on); any other status permanent; no answer at all transient.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import httpx

from keyrelease.exceptions import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.hookspecs import hookimpl
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport

DEFAULT_TIMEOUT_SECONDS = 10.0
TRANSIENT_STATUSES = frozenset({408, 429})


class WebhookTransport(Transport):
    """Delivers by POSTing JSON to one URL, over one pooled HTTP client."""

    name = "webhook"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookTransport:
        url = env.get("KEYRELEASE_WEBHOOK_URL", "").strip()
        if not url:
            raise ConfigError("KEYRELEASE_WEBHOOK_URL", "required when KEYRELEASE_MAIL_TRANSPORT is webhook")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError("KEYRELEASE_WEBHOOK_URL", f"must be an http(s) URL, not {url!r}")

        token = env.get("KEYRELEASE_WEBHOOK_TOKEN", "").strip() or None
        if token is not None and any(c.isspace() or not c.isprintable() for c in token):
            # Name the problem, never the value: it is a credential.
            raise ConfigError("KEYRELEASE_WEBHOOK_TOKEN", "contains whitespace or control characters")

        timeout = DEFAULT_TIMEOUT_SECONDS
        if raw := env.get("KEYRELEASE_WEBHOOK_TIMEOUT_SECONDS", "").strip():
            try:
                timeout = float(raw)
            except ValueError:
                timeout = math.nan
            if not 0 < timeout < math.inf:
                raise ConfigError("KEYRELEASE_WEBHOOK_TIMEOUT_SECONDS", f"must be a positive number, not {raw!r}")

        return cls(url, token=token, timeout=timeout)

    async def send(self, message: EmailMessage) -> DeliveryResult:
        body = {
            "message_id": message.message_id,
            "from": message.sender,
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "headers": dict(message.headers),
        }
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    self.url, json=body, headers={"Idempotency-Key": message.message_id}
                )
        except (TimeoutError, httpx.TimeoutException) as err:
            raise TransientDeliveryError(f"webhook did not answer within {self.timeout:g}s") from err
        except httpx.RequestError as err:  # refused, reset, DNS, TLS
            raise TransientDeliveryError(f"webhook request failed: {type(err).__name__}") from err

        if response.is_success:
            return DeliveryResult(
                transport=self.name,
                provider_message_id=_id_in(response),
                detail=f"{response.status_code} {response.reason_phrase}",
            )
        raise _error_for(response)

    async def close(self) -> None:
        await self._client.aclose()


def _id_in(response: httpx.Response) -> str | None:
    try:
        found = response.json().get("id")
    except (ValueError, AttributeError):
        return None
    return str(found) if found is not None else None


def _error_for(response: httpx.Response) -> DeliveryError:
    # The status only: a response body might echo the message, and error texts end up in
    # keyrelease's database and logs.
    said = f"webhook answered {response.status_code} {response.reason_phrase}"
    if response.status_code in TRANSIENT_STATUSES or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After", "").strip()
        return TransientDeliveryError(said, retry_after=float(retry_after) if retry_after.isdigit() else None)
    return PermanentDeliveryError(said)


@hookimpl
def register_transports(register):
    register(WebhookTransport)
