"""The ``keyrelease`` command: serve, migrate, worker, admin, plugins."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from keyrelease import db
from keyrelease.clock import SystemClock
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError


def _settings() -> Settings:
    return Settings.from_env()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from keyrelease.app import create_app

    settings = _settings()
    migrate = args.migrate or db.is_sqlite(settings.database_url)
    app = create_app(settings, migrate=migrate)
    print(
        f"keyrelease serving on http://{args.host}:{args.port}/graphql "
        f"(database {_redact(settings.database_url)}, mail transport {settings.mail_transport})",
        flush=True,
    )
    if settings.mail_transport == "console":
        print(
            "Create an admin token in another terminal: "
            ".venv/bin/keyrelease admin create --institution 'Example University' --email you@example.org",
            flush=True,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, proxy_headers=False)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    asyncio.run(db.apply_migrations(settings.database_url))
    print("migrations applied")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from keyrelease.worker import run_worker

    asyncio.run(run_worker(_settings()))
    return 0


def cmd_admin_create(args: argparse.Namespace) -> int:
    from keyrelease.service.admins import AdminInputError, create_admin

    settings = _settings()

    async def run() -> str:
        if db.is_sqlite(settings.database_url):
            await db.apply_migrations(settings.database_url)
        async with db.connected(settings.database_url):
            created = await create_admin(
                SystemClock(), institution=args.institution, email=args.email, name=args.name or ""
            )
        return created.token

    try:
        token = asyncio.run(run())
    except AdminInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Admin {args.email.strip().lower()} created for institution {args.institution.strip()!r}.")
    print("Admin token (shown once; send it as 'Authorization: Bearer <token>'):")
    print(token)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from keyrelease.mail.plugins import TransportRegistry

    settings = _settings()
    registry = TransportRegistry(settings.plugins)
    for info in registry.plugins():
        print(f"{info.name}\t{info.package} {info.version}\ttransports: {', '.join(info.transports) or '-'}")
    return 0


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyrelease", description="Verified key release service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Run the HTTP service (GraphQL, token endpoint).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--migrate", action="store_true", help="Apply migrations first (always on SQLite).")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="Apply database migrations.").set_defaults(func=cmd_migrate)
    sub.add_parser("worker", help="Run a mail dispatcher without the HTTP service.").set_defaults(func=cmd_worker)
    sub.add_parser("plugins", help="List loaded plugins and their transports.").set_defaults(func=cmd_plugins)

    admin = sub.add_parser("admin", help="Manage admins.")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="Create an admin and print its token (last line).")
    create.add_argument("--institution", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--name")
    create.set_defaults(func=cmd_admin_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
