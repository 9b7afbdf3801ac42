"""uvicorn's HTTP protocols with a deadline for request headers and a bound on their size.

uvicorn (0.54) closes a connection left idle *after* a response (``timeout_keep_alive``) but has
no deadline for the headers of a request: a client that opens a connection and sends a header
byte now and then holds it, and a place under ``limit_concurrency``, for as long as it likes
(slowloris). httptools also accepts headers of any size (h11 stops at
``h11_max_incomplete_event_size``).

The subclasses below add the missing deadline and nothing else. A timer starts when a connection
opens, and when the first byte of each later request on it arrives (the idle time before that
byte is uvicorn's keep-alive timeout); it stops when the request's headers are complete. When it
fires, the connection is closed: with ``408 Request Timeout`` if the client had begun a request,
silently if it never sent a byte. A response still being written is finished first.

httptools: headers beyond ``max_header_bytes`` (request line and header lines, a line still
arriving included, give or take one read of the socket) are answered ``431``. h11 bounds what it
buffers of incomplete headers itself (``h11_max_incomplete_event_size``; uvicorn answers 400).

Both also hand their request cycles keyrelease's access logger (:mod:`keyrelease.access_log`)
in place of the ``uvicorn.access`` logger when :func:`protocol_class` is given one.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from keyrelease.access_log import AccessLogger


class _HeaderDeadline:
    """The timer shared by both protocols. Set by :func:`protocol_class`."""

    header_timeout: ClassVar[float]
    max_header_bytes: ClassVar[int]

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: asyncio.TimerHandle | None = None
    #: The client has sent bytes of a request whose headers are not complete yet.
    _request_begun: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # the uvicorn protocol after us in the MRO
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._responding():
            self._close_after_response()
        elif self._request_begun:
            self._send_error(408, "Request headers not received in time.")
        else:
            self.transport.close()

    def _send_error(self, status: int, message: str) -> None:
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()

    def _responding(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is not None and not cycle.response_complete

    def _close_after_response(self) -> None:
        self.cycle.keep_alive = False  # type: ignore[attr-defined]


class HeaderDeadlineH11Protocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline (h11 bounds the header size itself)."""

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE
        if waiting and data:
            self._request_begun = True
            self._arm_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._request_begun = False
            self._cancel_header_timer()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header deadline and the header size bound."""

        #: Bytes of the request line and complete header lines, counted exactly by the
        #: parser's callbacks, and bytes received since the last callback (a line in progress;
        #: a chunk in which a callback ran is not added, so this undercounts by one read).
        _header_bytes = 0
        _unreported_bytes = 0
        _callback_ran = False
        _headers_too_large = False

        def data_received(self, data: bytes) -> None:
            self._callback_ran = False
            super().data_received(data)
            if not self._request_begun or self.transport.is_closing():
                return
            # Headers still incomplete: the deadline runs from this read, the one in which the
            # request's first byte arrived or a later one (armed once). A request whose headers
            # arrive whole in one read never arms it, saving a timer per request.
            self._arm_header_timer()
            if not self._callback_ran:
                self._unreported_bytes += len(data)
            if self._header_bytes + self._unreported_bytes > self.max_header_bytes:
                self._cancel_header_timer()
                self._send_error(431, f"Request headers larger than {self.max_header_bytes} bytes.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = self._unreported_bytes = 0
            self._callback_ran = True
            self._request_begun = True  # the timer is armed after this read if the headers are not complete

        def on_url(self, url: bytes) -> None:
            self._count_header_bytes(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_header_bytes(len(name) + len(value))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._request_begun = False
            if self._header_timer is not None:
                self._cancel_header_timer()
            super().on_headers_complete()

        def _count_header_bytes(self, size: int) -> None:
            self._header_bytes += size
            self._unreported_bytes = 0
            self._callback_ran = True
            if self._header_bytes > self.max_header_bytes:
                self._headers_too_large = True
                raise _HeadersTooLarge  # stops the parser; uvicorn then calls send_400_response

        def send_400_response(self, msg: str) -> None:
            if self._headers_too_large:
                self._cancel_header_timer()
                self._send_error(431, f"Request headers larger than {self.max_header_bytes} bytes.")
            else:
                super().send_400_response(msg)

    return HeaderDeadlineHttpToolsProtocol


class _HeadersTooLarge(Exception):
    pass


class _AccessLines:
    """Gives the request cycles :attr:`access_lines` as their access logger, when there is one.
    (uvicorn reads ``self.access_logger`` for each request's cycle and decides whether to log
    at all from the ``uvicorn.access`` logger, in its ``__init__``.)"""

    access_lines: ClassVar[AccessLogger | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.access_lines is not None:
            self.access_logger = self.access_lines


def protocol_class(
    kind: str, *, header_timeout: float, max_header_bytes: int, access_logger: AccessLogger | None = None
) -> type[asyncio.Protocol]:
    """The protocol class for ``keyrelease serve --http KIND`` (``auto``: httptools where
    installed, as uvicorn chooses), with the given header deadline and size bound, writing its
    access lines with ``access_logger`` (``None``: uvicorn's logger)."""
    httptools = _httptools_protocol() if kind in ("auto", "httptools") else None
    if kind == "httptools" and httptools is None:
        raise RuntimeError("--http httptools: httptools is not installed")
    base: type[asyncio.Protocol] = httptools or HeaderDeadlineH11Protocol
    settings = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes, "access_lines": access_logger}
    return type(base.__name__, (_AccessLines, base), settings)
