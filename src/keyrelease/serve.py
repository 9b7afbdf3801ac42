"""``keyrelease serve``: take the address first, then run uvicorn on it.

The listening socket is bound before anything is printed or started, so a busy port is one
line and a non-zero exit, and the public URL can be derived from the address actually bound
(``--port 0`` included). uvicorn then serves that socket with the connection settings
(header deadline, keep-alive, connection cap, backlog, header size) from :mod:`keyrelease.config`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyrelease import db
from keyrelease.access_log import access_logger
from keyrelease.config import Settings, redact_url
from keyrelease.exceptions import ConfigError
from keyrelease.http_protocols import protocol_class

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: File descriptors beyond the connections: the database pool's, log and data files, listener.
_SPARE_DESCRIPTORS = 64
_WILDCARDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    migrate: bool = False
    log_level: str = "info"
    http: str = "auto"
    loop: str = "auto"
    #: Processes serving the one listening socket (``--workers``); see :func:`_run_workers`.
    workers: int = 1


def serve(options: ServeOptions, settings: Settings) -> int:
    """Build the app (every setting and the mail transport checked), take the address, then
    announce and run. With ``--port 0`` the address is taken first, to learn the port."""
    from keyrelease.app import create_app

    if options.workers > 1 and settings.rate_limits_in_memory:
        print(
            f"keyrelease: --workers {options.workers} needs the rate-limit counters in the database "
            "(PostgreSQL, or KEYRELEASE_RATE_LIMIT_STORE=database): in memory, each process would keep "
            "its own and every limit would be multiplied by the number of workers",
            file=sys.stderr,
        )
        return 2
    sock = _listen(options, settings) if options.port == 0 else None
    if options.port == 0 and sock is None:
        return 1
    port = sock.getsockname()[1] if sock is not None else options.port
    settings = settings.served_at(public_url_for(options.host, port))
    _ensure_descriptors(settings)
    migrate = options.migrate or db.is_sqlite(settings.database_url)
    if options.workers > 1 and migrate:  # once, here, rather than in every worker at once
        import asyncio

        asyncio.run(db.apply_migrations(settings.database_url))
        migrate = False
    app = create_app(settings, migrate=migrate)
    sock = sock or _listen(options, settings)
    if sock is None:
        return 1
    try:
        _announce(options, settings, port)
        if options.workers > 1:
            return _run_workers(app, sock, options, settings)
        _run(app, sock, options, settings)
    finally:
        sock.close()
    return 0


def _run_workers(app: Starlette, sock: socket.socket, options: ServeOptions, settings: Settings) -> int:
    """``--workers N``: N forked processes serve the one listening socket (the kernel hands each
    connection to one of them), each a whole keyrelease: its own event loop, database pool and
    background loops, as N instances on one database are (docs/operations.md). This process
    only waits: SIGTERM is passed on to every worker (each finishes its requests and exits), and
    Ctrl+C in a terminal reaches the workers directly. A worker that fails stops the others."""
    print(f"{options.workers} worker processes", flush=True)
    workers: list[int] = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                _run(app, sock, options, settings)
                code = 0
            finally:
                os._exit(code)
        workers.append(pid)

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl+C reaches every worker itself
    failed = False
    running = set(workers)
    while running:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        running.discard(pid)
        if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGINT) and not failed:
            failed = True
            print(f"keyrelease: worker {pid} failed; stopping the others", file=sys.stderr, flush=True)
            stop()
    return 1 if failed else 0


def _listen(options: ServeOptions, settings: Settings) -> socket.socket | None:
    try:
        return bind(options.host, options.port, settings.listen_backlog)
    except OSError as err:
        reason = (err.strerror or type(err).__name__).lower()
        print(f"keyrelease: cannot listen on {address(options.host, options.port)}: {reason}", file=sys.stderr)
        return None


def _announce(options: ServeOptions, settings: Settings, port: int) -> None:
    print(
        f"keyrelease serving on http://{address(options.host, port)}/ (admin console; GraphQL at /graphql) "
        f"(database {redact_url(settings.database_url)}, mail transport {settings.mail_transport})",
        flush=True,
    )
    source = "KEYRELEASE_PUBLIC_URL" if settings.public_url_configured else "derived from --host/--port"
    print(
        f"Emails link to {settings.public_url}/partner and tokens carry iss {settings.token_issuer} "
        f"(public URL {source}).",
        flush=True,
    )
    if not settings.public_url_configured and options.host in _WILDCARDS:
        print(
            f"Listening on every interface: set KEYRELEASE_PUBLIC_URL to the address partners reach "
            f"if {settings.public_url} is not it.",
            flush=True,
        )
    if settings.mail_transport == "console":
        print(
            "Create an admin token in another terminal: "
            ".venv/bin/keyrelease admin create --institution 'Example University' --email you@example.org",
            flush=True,
        )


def _run(app: Starlette, sock: socket.socket, options: ServeOptions, settings: Settings) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=options.log_level,
        proxy_headers=False,
        log_config=None,  # uvicorn's loggers go through ours (text or JSON, with the request id)
        loop=options.loop,
        http=protocol_class(
            options.http,
            header_timeout=settings.header_timeout_seconds,
            max_header_bytes=settings.max_header_bytes,
            access_logger=access_logger(),  # the access line without a LogRecord, while logging is ours
        ),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        backlog=settings.listen_backlog,
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (OSError when the address is taken or invalid)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: reuse a port in TIME_WAIT, never one another socket listens on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in _WILDCARDS:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def public_url_for(host: str, port: int) -> str:
    """The URL a server listening on ``host:port`` is reached at. On a wildcard address the
    machine's name stands in (the start-up message says to set KEYRELEASE_PUBLIC_URL)."""
    name = socket.getfqdn() if host in _WILDCARDS else host
    return f"http://{address(name, port)}"


def _ensure_descriptors(settings: Settings) -> None:
    """Raise the soft limit on open files to what the connection cap needs, or refuse to start."""
    needed = settings.max_connections + settings.database_pool.size + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            "KEYRELEASE_MAX_CONNECTIONS",
            f"{settings.max_connections} connections need {needed} open files; this process may open {hard} (ulimit -Hn)",
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
