"""Real local mail servers for tests: SMTP (aiosmtpd), a SendGrid v3 stand-in (Starlette on
uvicorn), a generic recording HTTP endpoint, and a throw-away TLS certificate authority.

Shared by ``tests/transports`` (the transports on their own) and the tests that run the whole
service against each transport. Import it as ``import mailservers``: pytest puts ``tests/`` on
``sys.path`` (rootdir conftest, ``prepend`` import mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.message
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOCALHOST = "127.0.0.1"


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def reserve_port() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 but not listening: connections to it are
    refused (a server that is down), and nobody else can take the port until it is closed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCALHOST, 0))
    return sock


# --- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throw-away CA (what the client trusts) and a server certificate for 127.0.0.1 it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path) -> Certificates:
    now = dt.datetime.now(dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyrelease test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    certs = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certs.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    certs.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certs


# --- SMTP ------------------------------------------------------------------------------------

SMTP_USER = "keyrelease"
SMTP_PASSWORD = "c0rrect-h0rse-battery"


@dataclass
class Delivery:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    encrypted: bool
    authenticated_as: bytes | None

    def parsed(self) -> email.message.EmailMessage:
        """The message as received, with the wire's CRLF line ends made local."""
        return email.message_from_bytes(  # type: ignore[return-value]
            self.content.replace(b"\r\n", b"\n"), policy=email.policy.default
        )

    def text(self) -> str:
        """The text/plain part."""
        part = self.parsed().get_body(preferencelist=("plain",))
        assert part is not None
        return part.get_content()  # type: ignore[attr-defined]


@dataclass
class RecordingHandler:
    """aiosmtpd handler: records deliveries and AUTH attempts; replies can be scripted."""

    rcpt_reply: str | None = None
    data_reply: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    auth_attempts: list[bytes] = field(default_factory=list)

    def to(self, address: str) -> list[Delivery]:
        return [d for d in self.deliveries if address in d.rcpt_tos]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        assert server.transport is not None and envelope.mail_from is not None
        self.deliveries.append(
            Delivery(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.original_content or b"",
                encrypted=server.transport.get_extra_info("ssl_object") is not None,
                authenticated_as=session.auth_data if session.authenticated else None,
            )
        )
        return "250 2.0.0 Ok: queued as KR123"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.auth_attempts.append(auth_data.login)
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        if not ok:
            return AuthResult(success=False, handled=False)  # not handled: aiosmtpd replies 535
        return AuthResult(success=True, auth_data=auth_data.login)


class _SocketController(Controller):
    """A Controller that serves on a socket we bound (``sock``), or on an ephemeral port.

    Binding first means no two tests race for one port, and a test can hand the port to a
    service while nothing listens on it yet (the server is "down"), then start the server there.
    """

    def __init__(self, *args: Any, sock: socket.socket | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sock = sock

    async def _bind(self) -> asyncio.AbstractServer:
        if self._sock is not None:
            server = await self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)
        else:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self) -> Any:
        return self._bind()


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int
    controller: Controller
    username: str = SMTP_USER
    password: str = SMTP_PASSWORD

    def env(self) -> dict[str, str]:
        """Service settings for this server: plain SMTP, no authentication."""
        return {
            "KEYRELEASE_MAIL_TRANSPORT": "smtp",
            "KEYRELEASE_SMTP_HOST": LOCALHOST,
            "KEYRELEASE_SMTP_PORT": str(self.port),
            "KEYRELEASE_SMTP_TLS": "none",
            "KEYRELEASE_SMTP_TIMEOUT_SECONDS": "5",
        }

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_server(*, sock: socket.socket | None = None, **smtp_options: Any) -> SmtpServer:
    """Start an aiosmtpd server on 127.0.0.1, in its own thread; call ``stop()`` when done.

    ``sock``: serve on this bound socket (see :func:`reserve_port`) instead of a new port.
    Other keyword arguments go to aiosmtpd's ``SMTP``.
    """
    handler = RecordingHandler()
    smtp_options.setdefault("authenticator", handler.authenticate)
    controller = _SocketController(
        handler, hostname=LOCALHOST, server_hostname="mx.example.test", ready_timeout=5, sock=sock, **smtp_options
    )
    controller.start()
    return SmtpServer(handler=handler, port=controller.port, controller=controller)


@contextlib.contextmanager
def smtp_server(**options: Any) -> Iterator[SmtpServer]:
    server = start_smtp_server(**options)
    try:
        yield server
    finally:
        server.stop()


# --- HTTP ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_server(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free port, in the running event loop; yields its URL."""
    sock = socket.socket()
    sock.bind((LOCALHOST, 0))
    url = f"http://{LOCALHOST}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()  # raise what stopped it
        yield url
    finally:
        server.should_exit = True
        await task
        sock.close()


SENDGRID_KEY = "SG.test-key.not-a-real-secret-0123456789"
SENDGRID_MESSAGE_ID = "W0f9p2b3QbmG5rE1xkz1Aw"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class FakeSendgrid:
    """A local stand-in for ``api.sendgrid.com``: checks the key, records, replies as scripted.

    Replies, in order of precedence: the next of ``script`` (consumed), then ``reply``, then
    what SendGrid answers: 401 for a wrong key, 202 with an ``X-Message-Id`` otherwise.
    """

    url: str = ""
    api_key: str = SENDGRID_KEY
    message_id: str = SENDGRID_MESSAGE_ID
    requests: list[RecordedRequest] = field(default_factory=list)
    script: list[Response] = field(default_factory=list)
    reply: Response | None = None
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v3/mail/send", self._mail_send, methods=["POST"])])

    def env(self) -> dict[str, str]:
        """Service settings that send through this server."""
        return {
            "KEYRELEASE_MAIL_TRANSPORT": "sendgrid",
            "KEYRELEASE_SENDGRID_API_KEY": self.api_key,
            "KEYRELEASE_SENDGRID_BASE_URL": self.url,
        }

    def to(self, address: str) -> list[RecordedRequest]:
        return [
            r for r in self.requests
            if any(to["email"] == address for p in r.json["personalizations"] for to in p["to"])
        ]

    async def _mail_send(self, request: Request) -> Response:
        self.requests.append(
            RecordedRequest(request.method, request.url.path, dict(request.headers), await request.json())
        )
        if self.hang:
            await self.release.wait()
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(
                {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}]},
                status_code=401,
            )
        if self.script:
            return self.script.pop(0)
        if self.reply is not None:
            return self.reply
        return Response(status_code=202, headers={"X-Message-Id": self.message_id})


def sendgrid_text(request: RecordedRequest) -> str:
    """The text/plain content of a recorded Mail Send request."""
    return next(c["value"] for c in request.json["content"] if c["type"] == "text/plain")


@contextlib.asynccontextmanager
async def sendgrid_server() -> AsyncIterator[FakeSendgrid]:
    """The fake SendGrid API, served in the running event loop."""
    fake = FakeSendgrid()
    async with http_server(fake.app()) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.release.set()  # let a hanging request finish, so the server can stop
