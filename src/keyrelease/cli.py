"""The ``keyrelease`` command: serve, migrate, worker, admin, institution, keys, plugins, settings."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from keyrelease import config, db, logs, validation
from keyrelease.clock import SystemClock
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.service.admins import DEFAULT_TTL_DAYS, MAX_TTL_DAYS

if TYPE_CHECKING:
    from keyrelease.service.sso import ProviderSummary

T = TypeVar("T")


def _settings() -> Settings:
    return Settings.from_env()


def cmd_serve(args: argparse.Namespace) -> int:
    from keyrelease.serve import ServeOptions, serve

    options = ServeOptions(
        host=args.host, port=args.port, migrate=args.migrate, log_level=args.log_level, http=args.http, loop=args.loop,
        workers=args.workers,
    )
    return serve(options, _settings())


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
                SystemClock(),
                institution=args.institution,
                email=args.email,
                name=args.name or "",
                ttl_days=args.expires_days or settings.admin_token_ttl_days,
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


def _run_admin_task(settings: Settings, task: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        if db.is_sqlite(settings.database_url):
            await db.apply_migrations(settings.database_url)
        async with db.connected(settings.database_url):
            return await task()

    return asyncio.run(run())


def cmd_admin_token(args: argparse.Namespace) -> int:
    from keyrelease.service.admins import AdminInputError, issue_token_for

    settings = _settings()
    ttl = args.expires_days or settings.admin_token_ttl_days
    try:
        token = _run_admin_task(settings, lambda: issue_token_for(SystemClock(), args.email, ttl_days=ttl))
    except AdminInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"New token for {args.email.strip().lower()}, valid {ttl} days (shown once):")
    print(token)
    return 0


def cmd_admin_revoke_token(args: argparse.Namespace) -> int:
    from keyrelease.service.admins import AdminInputError, revoke_token

    settings = _settings()
    try:
        row = _run_admin_task(settings, lambda: revoke_token(SystemClock(), args.token))
    except AdminInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"token {row.id} of {row.admin.email} revoked at {_when(row.revoked_at)}")
    return 0


def _admin_outcome(task: Callable[[], Awaitable[T]]) -> T | None:
    """Run an admin command's ``task``; None, the error printed, when its input was refused."""
    from keyrelease.service.admins import AdminInputError

    try:
        return _run_admin_task(_settings(), task)
    except AdminInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def cmd_admin_disable(args: argparse.Namespace) -> int:
    from keyrelease.service.offboarding import disable_admin

    done = _admin_outcome(lambda: disable_admin(SystemClock(), args.email))
    if done is None:
        return 2
    if not done.changed:
        print(f"{done.email} was already disabled (since {_when(done.disabled_at)}); nothing changed")
        return 0
    print(f"{done.email} disabled at {_when(done.disabled_at)}: every token of theirs is refused from now on")
    print(f"{len(done.locked)} pending key(s) locked (lock reason ADMIN_DISABLED); "
          f"{len(done.active)} active key(s) keep working, managed by the institution's other admins")
    return 0


def cmd_admin_enable(args: argparse.Namespace) -> int:
    from keyrelease.service.offboarding import enable_admin

    done = _admin_outcome(lambda: enable_admin(SystemClock(), args.email))
    if done is None:
        return 2
    if not done.changed:
        print(f"{done.email} is not disabled; nothing changed")
        return 0
    print(f"{done.email} enabled (was disabled since {_when(done.was_disabled_at)}): their tokens that are "
          "neither expired nor revoked work again; keys locked by the disable stay locked")
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    from keyrelease.service.admins import list_admins

    settings = _settings()
    admins = _run_admin_task(settings, list_admins)
    now = SystemClock().now()
    if not admins:
        print("no admins; create one with: keyrelease admin create --institution NAME --email ADDRESS")
    for admin in admins:
        disabled = f"\tdisabled {_when(admin.disabled_at)}" if admin.disabled_at is not None else ""
        print(f"{admin.email}\t{admin.institution}\t{admin.name or '-'}\tcreated {_when(admin.created_at)}{disabled}")
        for token in admin.tokens:
            print(
                f"  token {token.id}\t{token.state(now)}\tcreated {_when(token.created_at)}"
                f"\texpires {_when(token.expires_at)}\trevoked {_when(token.revoked_at)}"
                f"\tlast used {_when(token.last_used_at)}\tname {validation.visible(token.name)}"
            )
    return 0


def cmd_institution_set_idp(args: argparse.Namespace) -> int:
    from keyrelease.service.sso import set_provider

    path = Path(args.client_secret_file)
    try:
        client_secret = (sys.stdin.read() if args.client_secret_file == "-" else path.read_text()).strip()
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: cannot read the client secret from {path}: {getattr(err, 'strerror', None) or type(err).__name__}",
              file=sys.stderr)
        return 2
    settings = _settings()
    done = _admin_outcome(lambda: set_provider(
        SystemClock(), settings.secret_key, institution=args.institution, issuer=args.issuer, client_id=args.client_id,
        client_secret=client_secret, admin_claim=args.admin_claim, email_domains=args.email_domain,
    ))
    if done is None:
        return 2
    print(f"identity provider set for {done.institution!r} (the client secret is stored encrypted, never shown):")
    _print_provider(done)
    print(f"register this redirect URI at the provider: {settings.public_url}/sso/callback")
    return 0


def _print_provider(provider: ProviderSummary) -> None:
    print(f"  issuer        {provider.issuer}")
    print(f"  client id     {provider.client_id}")
    print("  client secret (set; never shown)")
    print(f"  admin claim   {provider.admin_claim or '- (every user of the domains below may sign in as an admin)'}")
    print(f"  email domains {', '.join(provider.domains)}")
    print(f"  updated       {_when(provider.updated_at)}")


def cmd_institution_show_idp(args: argparse.Namespace) -> int:
    from keyrelease.service.sso import show_provider

    done = _admin_outcome(lambda: show_provider(args.institution))
    if done is None:
        return 2
    print(f"identity provider of {done.institution!r}:")
    _print_provider(done)
    return 0


def cmd_institution_remove_idp(args: argparse.Namespace) -> int:
    from keyrelease.service.sso import remove_provider

    removed = _admin_outcome(lambda: remove_provider(args.institution))
    if not removed:
        print(f"error: no identity provider is set for the institution {args.institution.strip()!r}", file=sys.stderr)
        return 2
    print(f"identity provider of {args.institution.strip()!r} removed: its admins sign in with admin tokens only; "
          "console sessions already open run to their end")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def cmd_keys_import_legacy(args: argparse.Namespace) -> int:
    from tortoise.exceptions import IntegrityError

    from keyrelease.service.legacy import ImportDone, ImportRejected, import_legacy

    settings = _settings()
    path = Path(args.file)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        print(f"error: cannot read {path}: {err.strerror or type(err).__name__}", file=sys.stderr)
        return 2
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() and len(lines) >= ProgressBar.MIN_TOTAL else None

    async def run() -> ImportDone | ImportRejected:
        if db.is_sqlite(settings.database_url):
            await db.apply_migrations(settings.database_url)
        async with db.connected(settings.database_url):
            return await import_legacy(SystemClock(), lines, bar.update if bar else None)

    try:
        result = asyncio.run(run())
    except IntegrityError:
        print("error: a key in the file was added meanwhile by someone else; nothing imported, run again",
              file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if isinstance(result, ImportRejected):
        for problem in result.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print("nothing imported", file=sys.stderr)
        return 1
    print(f"imported {result.imported} legacy keys; {result.unchanged} already present and unchanged")
    return 0


#: ``keyrelease keys report-leak`` exit codes (docs/operations.md).
LEAK_RETIRED, LEAK_NOT_LIVE, LEAK_USAGE, LEAK_ALREADY_RETIRED = 0, 1, 2, 3


def cmd_keys_report_leak(args: argparse.Namespace) -> int:
    from keyrelease.service.leaks import InvalidLeakReport, LeakService, LeakVerdict

    settings = _settings()
    path = Path(args.secret_file)
    try:
        raw = sys.stdin.buffer.read() if args.secret_file == "-" else path.read_bytes()
        secret = raw.decode("utf-8").strip()
    except OSError as err:
        print(f"error: cannot read {path}: {err.strerror or type(err).__name__}", file=sys.stderr)
        return LEAK_USAGE
    except UnicodeDecodeError:
        print(f"error: {path} is not UTF-8 text", file=sys.stderr)
        return LEAK_USAGE
    if not secret or "\n" in secret:
        print(f"error: {path} must hold exactly one secret, on one line", file=sys.stderr)
        return LEAK_USAGE
    service = LeakService(clock=SystemClock())
    try:
        outcome = _run_admin_task(
            settings, lambda: service.report(secret, url=args.url, source="operator (keyrelease keys report-leak)")
        )
    except InvalidLeakReport as err:
        print(f"error: --url: {err}", file=sys.stderr)
        return LEAK_USAGE
    keys = ", ".join(str(key_id) for key_id in outcome.key_ids)
    if outcome.verdict is LeakVerdict.RETIRED:
        print(f"retired the secret of key {keys}: status COMPROMISED, refused by the token endpoint from now on")
        print(f"{outcome.notices} notice(s) queued to the institution's admins (and the partner, for a partner key)")
        print("recovery: the admin creates a new key (verified release as usual)")
        return LEAK_RETIRED
    if outcome.verdict is LeakVerdict.ALREADY_RETIRED:
        print(f"the secret of key {keys} was already retired by an earlier report; nothing changed")
        return LEAK_ALREADY_RETIRED
    print("no key may authenticate with this secret (unknown, revoked, expired or not yet revealed); nothing changed")
    return LEAK_NOT_LIVE


class ProgressBar:
    """``checking [#######.............]  35% 3500/10000`` redrawn in place on a terminal."""

    MIN_TOTAL = 1000
    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last: tuple[str, int] | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if (stage, percent) == self._last:
            return
        self._last = (stage, percent)
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{stage:<9} [{bar}] {percent:3d}% {done}/{total}")
        self.stream.flush()

    def close(self) -> None:
        if self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


def cmd_plugins(args: argparse.Namespace) -> int:
    from keyrelease.mail.plugins import TransportRegistry

    settings = _settings()
    registry = TransportRegistry(settings.plugins)
    for info in registry.plugins():
        print(f"{info.name}\t{info.package} {info.version}\ttransports: {', '.join(info.transports) or '-'}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Every setting by section, from its declaration: variable, default, bounds, what it sets.
    Reads no environment, so it shows no value and works before anything is configured."""
    for number, section in enumerate(config.SECTIONS):
        print(("\n" if number else "") + section)
        for setting in config.SETTINGS:
            if setting.section == section:
                notes = [f"default {setting.shown_default}", setting.accepts]
                notes.append("required in production" if setting.required_in_production is not None else "")
                notes.append("secret" if setting.secret else "")
                print(f"  {setting.variable}  {'; '.join(note for note in notes if note)}")
                print(f"      {setting.help}")
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0 to 65535")
    return int(text)


_EXPIRES_DAYS_HELP = f"Token lifetime (default KEYRELEASE_ADMIN_TOKEN_TTL_DAYS, {DEFAULT_TTL_DAYS})."


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number of processes, 1 to 64")
    return int(text)


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, 1 to {MAX_TTL_DAYS}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyrelease", description="Verified key release service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="Run the HTTP service (GraphQL, token endpoint).",
        description="Run the HTTP service: the admin console at /, GraphQL at /graphql, the token endpoint. "
        "Unless KEYRELEASE_PUBLIC_URL is set, links in emails and the tokens' issuer use the address "
        "served here. Connection limits are KEYRELEASE_* settings (keyrelease settings, docs/configuration.md).",
    )
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="Address to listen on (default: %(default)s, this machine only; 0.0.0.0 for every IPv4 interface).",
    )
    serve.add_argument(
        "--port", type=_port, default=8000,
        help="TCP port to listen on (default: %(default)s; 0 picks a free one).",
    )
    serve.add_argument("--migrate", action="store_true", help="Apply migrations first (always on SQLite).")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
        help="The least severe log records shown (default: %(default)s).",
    )
    serve.add_argument(
        "--http", default="auto", choices=["auto", "httptools", "h11"],
        help="HTTP parser (auto: httptools, installed with keyrelease; h11: uvicorn's pure-Python one).",
    )
    serve.add_argument(
        "--loop", default="auto", choices=["auto", "uvloop", "asyncio"],
        help="Event loop (auto: uvloop where installed; asyncio: the standard library's).",
    )
    serve.add_argument(
        "--workers", type=_workers, default=1,
        help="Processes serving the port (default: %(default)s); more than one needs the rate-limit counters "
        "in the database (PostgreSQL). See docs/operations.md.",
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="Apply database migrations.").set_defaults(func=cmd_migrate)
    sub.add_parser("worker", help="Run a mail dispatcher without the HTTP service.").set_defaults(func=cmd_worker)
    sub.add_parser("plugins", help="List loaded plugins and their transports.").set_defaults(func=cmd_plugins)
    sub.add_parser(
        "settings",
        help="List the KEYRELEASE_* settings: default, bounds, what each sets.",
        description="List every KEYRELEASE_* setting by section with its default, its bounds and what it "
        "sets, from the declarations the service reads them by; no value is read or shown. "
        "docs/configuration.md explains each.",
    ).set_defaults(func=cmd_settings)

    admin = sub.add_parser("admin", help="Manage admins.")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="Create an admin and print its token (last line).")
    create.add_argument("--institution", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--name")
    create.add_argument("--expires-days", type=_days, help=_EXPIRES_DAYS_HELP)
    create.set_defaults(func=cmd_admin_create)
    token = admin_sub.add_parser("token", help="Issue an additional token to an admin (last line).")
    token.add_argument("--email", required=True)
    token.add_argument("--expires-days", type=_days, help=_EXPIRES_DAYS_HELP)
    token.set_defaults(func=cmd_admin_token)
    revoke = admin_sub.add_parser("revoke-token", help="Revoke an admin token at once, by its value or its id.")
    revoke.add_argument("token", metavar="TOKEN_OR_ID", help="The token (kra_...) or its id from `admin list`.")
    revoke.set_defaults(func=cmd_admin_revoke_token)
    admin_sub.add_parser("list", help="List admins and their token ids, never token values.").set_defaults(
        func=cmd_admin_list
    )
    disable = admin_sub.add_parser(
        "disable",
        help="Offboard an admin: their tokens are refused at once, their pending keys lock.",
        description="Offboard an admin, in one transaction: every token of theirs is refused from the next "
        "request (the same answer as a revoked token), their keys still waiting for verification lock "
        "(lock reason ADMIN_DISABLED), their active keys keep working and stay with the institution's other "
        "admins. Disabling twice changes nothing. See docs/operations.md.",
    )
    disable.add_argument("--email", required=True)
    disable.set_defaults(func=cmd_admin_disable)
    enable = admin_sub.add_parser(
        "enable",
        help="Let a disabled admin sign in again (never undoes a lock).",
        description="Let a disabled admin sign in again: their tokens that are neither expired nor revoked "
        "work again. Keys locked by the disable stay locked; the admin creates new ones.",
    )
    enable.add_argument("--email", required=True)
    enable.set_defaults(func=cmd_admin_enable)

    institution = sub.add_parser("institution", help="Manage an institution's sign-in (identity provider) and what releases its keys.")
    institution_sub = institution.add_subparsers(dest="institution_command", required=True)
    set_idp = institution_sub.add_parser(
        "set-idp",
        help="Set (or replace) the institution's OpenID Connect provider for console sign-in.",
        description="Set the institution's OpenID Connect provider: its admins sign in to the console with it, "
        "found by their email's domain. The client secret is read from a file and stored encrypted under the "
        "server secret, never shown. The institution is created if new. See docs/sso.md.",
    )
    set_idp.add_argument("--institution", required=True)
    set_idp.add_argument("--issuer", required=True, help="The provider's issuer URL (its discovery document's issuer).")
    set_idp.add_argument("--client-id", required=True)
    set_idp.add_argument("--client-secret-file", required=True, metavar="FILE",
                         help="File holding the client secret on one line (- for standard input).")
    set_idp.add_argument("--admin-claim", metavar="CLAIM=VALUE",
                         help="Only users whose ID token has this claim (or a list claim containing VALUE) are admins.")
    set_idp.add_argument("--email-domain", required=True, action="append", metavar="DOMAIN",
                         help="An email domain of the institution (repeat for several).")
    set_idp.set_defaults(func=cmd_institution_set_idp)
    show_idp = institution_sub.add_parser("show-idp", help="Show the institution's identity provider (never its secret).")
    show_idp.add_argument("--institution", required=True)
    show_idp.set_defaults(func=cmd_institution_show_idp)
    remove_idp = institution_sub.add_parser("remove-idp", help="Remove the institution's identity provider.")
    remove_idp.add_argument("--institution", required=True)
    remove_idp.set_defaults(func=cmd_institution_remove_idp)

    keys = sub.add_parser("keys", help="Manage API keys.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    legacy = keys_sub.add_parser(
        "import-legacy",
        help="Import keys from before verified release (JSON lines; all or nothing).",
        description="Import keys from before verified release: one JSON object per line with institution, "
        "name, client_id, secret_sha256 (or secret), created_at, expires_at (may be null). The keys are "
        "ACTIVE at once. A bad line is reported with its number and nothing is imported. See docs/tokens.md.",
    )
    legacy.add_argument("file", help="The JSON-lines file.")
    legacy.set_defaults(func=cmd_keys_import_legacy)
    leak = keys_sub.add_parser(
        "report-leak",
        help="Retire a client secret found in public (status COMPROMISED); never prints the secret.",
        description="Retire a client secret found in public, as a secret-scanning report does: the token "
        "endpoint refuses it from the next request, the key's status becomes COMPROMISED with the URL, and "
        "the institution's admins (and a partner key's partner) are emailed once. Exit status: 0 retired now, "
        "1 no key may authenticate with the secret (nothing changed), 2 usage error, 3 already retired "
        "(nothing changed).",
    )
    leak.add_argument("--secret-file", required=True, metavar="FILE", help="File holding the secret (- for standard input).")
    leak.add_argument("--url", required=True, help="Where the secret was found (recorded on the key and in the notices).")
    leak.set_defaults(func=cmd_keys_report_leak)

    policy = institution_sub.add_parser(
        "set-policy",
        help="Choose what releases the institution's keys: an emailed code, a passkey, or either.",
        description="Choose what releases the institution's new keys and rotations: email (the emailed code, "
        "the default), passkey-or-email (either), passkey (only a passkey assertion bound to the key; no code "
        "is emailed). Pending keys keep the rule they were created under. Exit status: 0 set, 2 usage error "
        "or no such institution.",
    )
    policy.add_argument("--institution", required=True, metavar="NAME")
    policy.add_argument("--verification", required=True, choices=sorted(RELEASE_PROOFS))
    policy.set_defaults(func=cmd_institution_set_policy)
    return parser


#: ``--verification`` values and what each stands for.
RELEASE_PROOFS = {"email": "EMAIL", "passkey-or-email": "PASSKEY_OR_EMAIL", "passkey": "PASSKEY"}


def cmd_institution_set_policy(args: argparse.Namespace) -> int:
    from keyrelease.models import ReleaseProof
    from keyrelease.service.passkeys import set_release_proof

    proof = ReleaseProof(RELEASE_PROOFS[args.verification])
    if not _run_admin_task(_settings(), lambda: set_release_proof(args.institution, proof)):
        print(f"error: no institution is named {args.institution!r}", file=sys.stderr)
        return 2
    print(f"{args.institution}: keys and rotations started from now on are released by {args.verification}")
    if proof is ReleaseProof.PASSKEY:
        print("Admins without a passkey add one in the console (Passkeys, then Add a passkey) before creating keys.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        log_format = config.log_format(os.environ)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    logs.configure(log_format)
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
