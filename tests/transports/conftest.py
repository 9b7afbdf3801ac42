"""Fixtures for the transport tests: real local servers from ``tests/mailservers.py``, a TLS
certificate authority, and the misbehaving peers (a closed port, a silent server)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from mailservers import (
    LOCALHOST,
    Certificates,
    FakeSendgrid,
    SmtpServer,
    make_certificates,
    sendgrid_server,
    start_smtp_server,
)

from keyrelease.mail.transport import EmailMessage


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


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server on 127.0.0.1; keyword arguments go to aiosmtpd's ``SMTP``."""
    servers: list[SmtpServer] = []

    def start(**smtp_options: Any) -> SmtpServer:
        server = start_smtp_server(**smtp_options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


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


@pytest.fixture
async def sendgrid_api() -> AsyncIterator[FakeSendgrid]:
    """The fake SendGrid API, served by uvicorn in this test's event loop."""
    async with sendgrid_server() as fake:
        yield fake
