"""The ``smtp`` transport: sends each message to an SMTP server with aiosmtplib.

Settings (read once, at start-up, by :meth:`SmtpTransport.from_env`):

``KEYRELEASE_SMTP_HOST``             required.
``KEYRELEASE_SMTP_TLS``              ``starttls`` (default), ``ssl`` (implicit TLS) or ``none``.
                                     ``starttls`` is required, not opportunistic: a server
                                     that does not offer it is a permanent failure.
``KEYRELEASE_SMTP_PORT``             default 587 for starttls, 465 for ssl, 25 for none.
``KEYRELEASE_SMTP_USERNAME``,
``KEYRELEASE_SMTP_PASSWORD``         both or neither.
``KEYRELEASE_SMTP_TIMEOUT_SECONDS``  deadline for the whole send (connect to QUIT), default 10.
``KEYRELEASE_SMTP_CA_FILE``          a CA bundle to trust instead of the system's.

Failures are classified the way SMTP classifies them: a 5xx reply (rejected recipient, refused
credentials, refused content) is permanent; a 4xx reply, a refused connection or a timeout is
transient. Error messages carry the server's reply, never the body nor a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.utils
import ssl
from collections.abc import Mapping
from typing import Literal, cast

import aiosmtplib

from keyrelease.exceptions import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail.hookspecs import hookimpl
from keyrelease.mail.transport import DeliveryResult, EmailMessage, Transport, check_headers

TlsMode = Literal["starttls", "ssl", "none"]

DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_TIMEOUT_SECONDS = 10.0

# Headers the transport writes itself; a caller's extra header may not replace them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in ("From", "To", "Subject", "Message-ID", "Date", "MIME-Version", "Content-Type", "Content-Transfer-Encoding")
)


class SmtpTransport(Transport):
    """Delivers through one SMTP server, one connection per message."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        *,
        port: int | None = None,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[tls]
        self.tls: TlsMode = tls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._tls_context = tls_context or ssl.create_default_context()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpTransport:
        host = _optional(env, "KEYRELEASE_SMTP_HOST")
        if host is None:
            raise ConfigError("KEYRELEASE_SMTP_HOST", "required when KEYRELEASE_MAIL_TRANSPORT is smtp")

        tls = (_optional(env, "KEYRELEASE_SMTP_TLS") or "starttls").lower()
        if tls not in DEFAULT_PORTS:
            raise ConfigError("KEYRELEASE_SMTP_TLS", f"must be starttls, ssl or none, not {tls!r}")

        port = None
        if (raw_port := _optional(env, "KEYRELEASE_SMTP_PORT")) is not None:
            if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
                raise ConfigError("KEYRELEASE_SMTP_PORT", f"must be a port number (1-65535), not {raw_port!r}")
            port = int(raw_port)

        username = _optional(env, "KEYRELEASE_SMTP_USERNAME")
        password = _optional(env, "KEYRELEASE_SMTP_PASSWORD")
        if username is not None and password is None:
            raise ConfigError("KEYRELEASE_SMTP_PASSWORD", "required when KEYRELEASE_SMTP_USERNAME is set")
        if password is not None and username is None:
            raise ConfigError("KEYRELEASE_SMTP_USERNAME", "required when KEYRELEASE_SMTP_PASSWORD is set")

        timeout = DEFAULT_TIMEOUT_SECONDS
        if (raw_timeout := _optional(env, "KEYRELEASE_SMTP_TIMEOUT_SECONDS")) is not None:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                timeout = float("nan")
            if not 0 < timeout < float("inf"):
                raise ConfigError("KEYRELEASE_SMTP_TIMEOUT_SECONDS", f"must be a positive number, not {raw_timeout!r}")

        ca_file = _optional(env, "KEYRELEASE_SMTP_CA_FILE")
        try:
            tls_context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError("KEYRELEASE_SMTP_CA_FILE", f"cannot load {ca_file!r}: {err}") from err

        return cls(
            host,
            port=port,
            tls=cast(TlsMode, tls),
            username=username,
            password=password,
            timeout=timeout,
            tls_context=tls_context,
        )

    async def send(self, message: EmailMessage) -> DeliveryResult:
        mime = build_mime(message)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "ssl",
            start_tls=False,  # done by hand in _deliver, so that "not offered" is ours to judge
            tls_context=self._tls_context,
            timeout=self.timeout,
        )
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                reply = await self._deliver(client, mime)
            await _quit_quietly(client, deadline.when())
        except TimeoutError as err:
            # Also covers aiosmtplib's own per-command timeouts (SMTPTimeoutError is a TimeoutError).
            raise TransientDeliveryError(f"SMTP {self._where()} did not finish within {self.timeout:g}s") from err
        except aiosmtplib.SMTPException as err:
            raise self._classify(err) from err
        except ssl.SSLCertVerificationError as err:
            raise PermanentDeliveryError(f"SMTP {self._where()}: TLS certificate rejected: {err.verify_message}") from err
        except ValueError as err:  # aiosmtplib: an address it cannot send safely
            raise PermanentDeliveryError(f"SMTP {self._where()}: cannot send: {err}") from err
        except (OSError, ssl.SSLError) as err:
            raise TransientDeliveryError(f"SMTP {self._where()}: {type(err).__name__}: {err}") from err
        finally:
            client.close()
        return DeliveryResult(transport=self.name, provider_message_id=message.message_id, detail=reply)

    async def _deliver(self, client: aiosmtplib.SMTP, mime: email.message.EmailMessage) -> str:
        """Connect, secure, authenticate and send; return the server's reply to DATA."""
        await client.connect()
        if self.tls == "starttls":
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise PermanentDeliveryError(
                    f"SMTP {self._where()} does not offer STARTTLS, which KEYRELEASE_SMTP_TLS=starttls requires"
                )
            await client.starttls()
        if self.username is not None and self._password is not None:
            await client.login(self.username, self._password)
        _refused, reply = await client.send_message(mime)
        return reply

    def _classify(self, err: aiosmtplib.SMTPException) -> DeliveryError:
        """Turn an aiosmtplib error into ours: a 5xx reply or a missing capability is permanent."""
        where = self._where()
        if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
            replies = "; ".join(f"{r.recipient}: {r.code} {self._scrub(r.message)}" for r in err.recipients)
            permanent = any(r.code >= 500 for r in err.recipients)
            return (PermanentDeliveryError if permanent else TransientDeliveryError)(
                f"SMTP {where} refused the recipient: {replies}"
            )
        if isinstance(err, aiosmtplib.SMTPResponseException):
            what = "refused the credentials" if isinstance(err, aiosmtplib.SMTPAuthenticationError) else "replied"
            return (PermanentDeliveryError if err.code >= 500 else TransientDeliveryError)(
                f"SMTP {where} {what}: {err.code} {self._scrub(err.message)}"
            )
        if isinstance(err.__cause__, ssl.SSLCertVerificationError):
            return PermanentDeliveryError(f"SMTP {where}: TLS certificate rejected: {err.__cause__.verify_message}")
        if isinstance(err, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
            return TransientDeliveryError(f"SMTP {where}: {self._scrub(err.message)}")
        # Anything else is a capability the server lacks (AUTH, SMTPUTF8): retrying will not help.
        return PermanentDeliveryError(f"SMTP {where}: {self._scrub(err.message)}")

    def _scrub(self, text: str) -> str:
        """Remove the password from a server reply, in case a server echoes it back."""
        if self._password:
            text = text.replace(self._password, "***")
        return text.strip()

    def _where(self) -> str:
        return f"server {self.host}:{self.port}"


def build_mime(message: EmailMessage) -> email.message.EmailMessage:
    """The MIME form of ``message``: text/plain, plus a text/html alternative when there is HTML.

    Raise :class:`PermanentDeliveryError` for a header that cannot be sent (a reserved name, a
    CR, LF or NUL anywhere in a header): the same message would fail the same way on every retry.
    """
    check_headers(message)
    for name in message.headers:
        if name.lower() in RESERVED_HEADERS:
            raise PermanentDeliveryError(f"header {name!r} is set by the smtp transport and cannot be overridden")
    headers = {
        "From": message.sender,
        "To": message.to,
        "Subject": message.subject,
        "Message-ID": f"<{message.message_id}>",
        "Date": email.utils.formatdate(usegmt=True),
        **message.headers,
    }
    mime = email.message.EmailMessage()
    for name, value in headers.items():
        try:
            mime[name] = value
        except (ValueError, TypeError) as err:
            # Name the header and the kind of problem, never the value (it may be the subject line).
            raise PermanentDeliveryError(f"header {name!r} cannot be sent: {type(err).__name__}") from err
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


async def _quit_quietly(client: aiosmtplib.SMTP, deadline: float | None) -> None:
    """Say QUIT once the message is accepted; a failure here must not turn success into an error."""
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        async with asyncio.timeout_at(deadline):
            await client.quit()


def _optional(env: Mapping[str, str], variable: str) -> str | None:
    """The variable's value, or ``None`` when it is unset or empty."""
    value = env.get(variable)
    return value if value else None


@hookimpl
def register_transports(register):
    register(SmtpTransport)
