"""Real local servers for the transport tests: SMTP (aiosmtpd), SendGrid (Starlette on uvicorn),
a TLS certificate authority, and the misbehaving peers (a closed port, a silent server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
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

from keyrelease.mail.transport import EmailMessage

LOCALHOST = "127.0.0.1"


@pytest.fixture
def message() -> EmailMessage:
    """A verification mail with both bodies and one extra header."""
    return EmailMessage(
        message_id="7f3c2a9e-1b2d-4c5e-9f00-123456789abc@keyrelease.test",
        sender="Keyrelease <keys@example.test>",
        to="Ada Admin <ada@example.test>",
        subject="Your verification code",
        text="Your verification code is 482913.\n",
        html="<p>Your verification code is <b>482913</b>.</p>\n",
        headers={"X-Keyrelease-Key": "key_42"},
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


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


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
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


@dataclass
class RecordingHandler:
    """aiosmtpd handler: records deliveries and AUTH attempts; replies can be scripted."""

    rcpt_reply: str | None = None
    data_reply: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    auth_attempts: list[bytes] = field(default_factory=list)

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


class _EphemeralPortController(Controller):
    """A Controller that binds port 0 and learns its port, so no two tests race for one."""

    async def _bind(self) -> asyncio.AbstractServer:
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
    username: str = SMTP_USER
    password: str = SMTP_PASSWORD


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server on 127.0.0.1; keyword arguments go to aiosmtpd's ``SMTP``."""
    controllers: list[Controller] = []

    def start(**smtp_options: Any) -> SmtpServer:
        handler = RecordingHandler()
        smtp_options.setdefault("authenticator", handler.authenticate)
        controller = _EphemeralPortController(
            handler, hostname=LOCALHOST, server_hostname="mx.example.test", ready_timeout=5, **smtp_options
        )
        controller.start()
        controllers.append(controller)
        return SmtpServer(handler=handler, port=controller.port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nobody else can take it."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def start_tcp_server() -> AsyncIterator[Callable[..., Any]]:
    """Start a raw asyncio TCP server in the test's loop; yields its port."""
    servers: list[asyncio.Server] = []

    async def start(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> int:
        server = await asyncio.start_server(handle, LOCALHOST, 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# --- SendGrid --------------------------------------------------------------------------------

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

    Without a scripted reply it answers like SendGrid: 401 for a wrong key, 202 with an
    ``X-Message-Id`` otherwise.
    """

    url: str = ""
    api_key: str = SENDGRID_KEY
    message_id: str = SENDGRID_MESSAGE_ID
    requests: list[RecordedRequest] = field(default_factory=list)
    reply: Response | None = None
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v3/mail/send", self._mail_send, methods=["POST"])])

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
        if self.reply is not None:
            return self.reply
        return Response(status_code=202, headers={"X-Message-Id": self.message_id})


@pytest.fixture
async def sendgrid_api() -> AsyncIterator[FakeSendgrid]:
    """The fake SendGrid API, served by uvicorn in this test's event loop."""
    fake = FakeSendgrid()
    sock = socket.socket()
    sock.bind((LOCALHOST, 0))
    fake.url = f"http://{LOCALHOST}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake.app(), lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started or task.done())
    if task.done():
        task.result()  # raise what stopped it
    yield fake
    fake.release.set()
    server.should_exit = True
    await task
    sock.close()
