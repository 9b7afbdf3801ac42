"""Settings, read from ``KEYRELEASE_*`` environment variables and validated when read.

A bad value fails at start-up with one line naming the variable (:class:`ConfigError`), never
at first use.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from keyrelease import files, validation
from keyrelease.client_address import IPNetwork, parse_networks
from keyrelease.db import PoolSettings
from keyrelease.exceptions import ConfigError, TemplateError
from keyrelease.mail.templates import MailTemplates, load_templates
from keyrelease.policy import VerificationPolicy
from keyrelease.secret_scanning.public_keys import PublicKeysError, ScanningKeys, load_keys
from keyrelease.service.ratelimit import Rate, RateLimits

PREFIX = "KEYRELEASE_"
_MIN_SECRET_LENGTH = 32
#: Transports for development and tests only, and why ``KEYRELEASE_ENV=production`` refuses them.
DEVELOPMENT_TRANSPORTS = {
    "console": "prints every code and one-time password to standard output, i.e. into the log collector",
    "memory": "is a test double that keeps mail in memory and delivers nothing",
}
_CLAIM = re.compile(r"[\x21-\x7e]{1,200}")
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_PUBLIC_URL = re.compile(r"https?://[\x21-\x7e]{1,190}")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    secret_key: bytes = b""
    mail_transport: str = "console"
    mail_from: str = "keyrelease <no-reply@keyrelease.localhost>"
    plugins: tuple[str, ...] | None = None
    policy: VerificationPolicy = field(default_factory=VerificationPolicy)
    region: str = "us-east-1"
    #: Base of links in emails and the default token issuer. Unset, ``keyrelease serve``
    #: derives it from the address it listens on (:meth:`served_at`).
    public_url: str = DEFAULT_PUBLIC_URL
    public_url_configured: bool = False
    graphql_introspection: bool = True
    #: GraphiQL at GET /graphql for a browser (its bundle under /static/graphiql/).
    graphiql: bool = True
    graphql_max_depth: int = 10
    graphql_max_tokens: int = 2000
    #: The largest GraphQL document (bytes) accepted without an admin token; refused before parsing.
    graphql_max_unauthenticated_bytes: int = 2048
    #: The most field values one answer may hold (docs/api.md#limits): refused before execution.
    graphql_max_cost: int = 12_000
    max_body_bytes: int = 64 * 1024
    dispatcher_enabled: bool = True
    #: Access tokens (see docs/tokens.md). ``jwt_issuer`` empty means ``public_url``.
    jwt_issuer: str = ""
    jwt_audience: str = "data-platform"
    token_ttl_seconds: int = 3600
    token_scope: str = "data:read"
    #: PEM private key that signs new tokens; None: a development key under ``var_dir``.
    jwt_private_key_file: Path | None = None
    #: PEM keys published in the JWKS beside the signing key (the previous key until its
    #: tokens have expired, the next key before it starts signing).
    jwt_public_key_files: tuple[Path, ...] = ()
    #: How often the remembered last use of each key is written to the database.
    last_used_flush_seconds: int = 60
    #: Mail templates, checked when read (see docs/mail.md); KEYRELEASE_MAIL_TEMPLATES_DIR overrides.
    mail_templates: MailTemplates = field(default_factory=load_templates, repr=False)
    #: Mail dispatcher: first retry delay, the cap on the delay, attempts before FAILED.
    mail_retry_first_seconds: int = 2
    mail_retry_max_seconds: int = 300
    mail_max_attempts: int = 8
    #: How long a claimed outbox message stays claimed; a dispatcher that dies mid-send holds
    #: it this long at most.
    mail_lease_seconds: int = 60
    #: PostgreSQL pool bounds, and the deadline within which every HTTP request is answered.
    database_pool: PoolSettings = field(default_factory=PoolSettings)
    request_timeout_seconds: int = 10
    #: Connections (docs/configuration.md, "Connections"): the deadline for a request's
    #: headers, the idle time allowed between requests, the open connections per process
    #: beyond which requests get 503, the kernel's queue of connections not yet accepted, and
    #: the largest request line plus headers.
    header_timeout_seconds: int = 5
    keep_alive_seconds: int = 5
    max_connections: int = 1000
    listen_backlog: int = 2048
    max_header_bytes: int = 16 * 1024
    #: Rate limits (docs/configuration.md): the rules, where counters live (``database``:
    #: shared by every instance; ``memory``: this process only; ``auto``: memory on SQLite,
    #: database on PostgreSQL), and the proxies whose X-Forwarded-For is believed.
    rate_limits: RateLimits = field(default_factory=RateLimits)
    rate_limit_store: str = "auto"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    #: Exact origins (``https://portal.uni.example``) whose pages may call /graphql (CORS).
    cors_origins: tuple[str, ...] = ()
    #: GitHub's secret-scanning signing keys (KEYRELEASE_SECRET_SCANNING_PUBLIC_KEYS_FILE); None:
    #: ``POST /secret-scanning/github`` is not served. The largest report body accepted.
    secret_scanning_keys: ScanningKeys | None = None
    secret_scanning_max_body_bytes: int = 256 * 1024
    #: Lifetime of a new admin token (``keyrelease admin create/token --expires-days`` overrides).
    admin_token_ttl_days: int = 90
    #: ``text`` for people, ``json`` (one object per line, with the request id) for collectors.
    log_format: str = "text"
    #: Environment the settings were read from; transports read their own variables from it.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        """Every setting but the secrets: the server secret is left out and the database
        password masked, so a settings object in a log line or a traceback leaks neither."""
        shown = {item.name: repr(getattr(self, item.name)) for item in fields(self) if item.repr}
        shown["secret_key"] = "<hidden>"
        shown["database_url"] = repr(redact_url(self.database_url))
        return f"Settings({', '.join(f'{name}={value}' for name, value in shown.items())})"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def rate_limits_in_memory(self) -> bool:
        """Counters in process memory: asked for, or ``auto`` on SQLite (one instance, and no
        database write per token request)."""
        if self.rate_limit_store == "auto":
            return self.database_url.startswith("sqlite://")
        return self.rate_limit_store == "memory"

    @property
    def token_issuer(self) -> str:
        """The ``iss`` of access tokens: KEYRELEASE_JWT_ISSUER, else the public URL."""
        return self.jwt_issuer or self.public_url

    def served_at(self, url: str) -> Settings:
        """These settings for a server listening at ``url``: the public URL (and with it the
        token issuer) becomes ``url`` unless KEYRELEASE_PUBLIC_URL was set."""
        return self if self.public_url_configured else replace(self, public_url=url)

    def with_policy(self, **changes: Any) -> Settings:
        return replace(self, policy=replace(self.policy, **changes))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        reader = _Reader(env)
        mode = reader.choice("ENV", "development", ("development", "production"))
        var_dir = Path(reader.text("VAR_DIR", "var"))
        database_url = reader.text("DATABASE_URL", f"sqlite://{var_dir / 'keyrelease.sqlite3'}")
        if not database_url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise ConfigError(PREFIX + "DATABASE_URL", "must start with sqlite:// or postgres://")
        secret_key = reader.secret_key(mode, var_dir)
        mail_from = reader.text("MAIL_FROM", cls.mail_from)
        if (found := validation.control_character(mail_from)) is not None:
            raise ConfigError(PREFIX + "MAIL_FROM", f"must not contain control characters (found {validation.code_point(found)})")
        if not validation.is_email_address(_address_of(mail_from)):
            raise ConfigError(PREFIX + "MAIL_FROM", f"not an email address: {mail_from!r}")
        plugins_raw = env.get(PREFIX + "PLUGINS")
        plugins = tuple(p.strip() for p in plugins_raw.split(",") if p.strip()) if plugins_raw else None
        policy = VerificationPolicy(
            code_ttl_seconds=reader.integer("CODE_TTL_SECONDS", 300, minimum=30),
            verification_window_seconds=reader.integer("VERIFICATION_WINDOW_SECONDS", 900, minimum=60),
            max_resends=reader.integer("MAX_RESENDS", 3, minimum=0),
            max_attempts=reader.integer("MAX_ATTEMPTS", 5, minimum=1),
            partner_otp_ttl_seconds=reader.integer("PARTNER_OTP_TTL_SECONDS", 259200, minimum=60),
            max_partner_attempts=reader.integer("MAX_PARTNER_ATTEMPTS", 5, minimum=1),
            max_pending_keys_per_admin=reader.integer("MAX_PENDING_KEYS_PER_ADMIN", 5, minimum=1),
            max_key_lifetime_days=reader.integer("MAX_KEY_LIFETIME_DAYS", 365, minimum=1),
            max_keys_per_admin_per_day=reader.integer("MAX_KEYS_PER_ADMIN_PER_DAY", 20, minimum=1, maximum=100_000),
            max_locked_keys_per_admin_per_day=reader.integer(
                "MAX_LOCKED_KEYS_PER_ADMIN_PER_DAY", 3, minimum=1, maximum=100_000
            ),
            max_code_emails_per_admin_per_hour=reader.integer(
                "MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR", 10, minimum=1, maximum=100_000
            ),
            failure_floor_ms=reader.integer("FAILURE_FLOOR_MS", 50, minimum=0, maximum=5000),
        )
        if policy.code_ttl_seconds > policy.verification_window_seconds:
            raise ConfigError(PREFIX + "CODE_TTL_SECONDS", "must not exceed KEYRELEASE_VERIFICATION_WINDOW_SECONDS")
        public_url = reader.text("PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/")
        if not _PUBLIC_URL.fullmatch(public_url):
            raise ConfigError(PREFIX + "PUBLIC_URL", f"must be an http:// or https:// URL without spaces, not {public_url!r}")
        jwt_private_key_file = reader.optional_file("JWT_PRIVATE_KEY_FILE")
        if jwt_private_key_file is None and mode == "production":
            raise ConfigError(PREFIX + "JWT_PRIVATE_KEY_FILE", "is required when KEYRELEASE_ENV=production")
        mail_transport = reader.text("MAIL_TRANSPORT", "console")
        if mode == "production" and mail_transport in DEVELOPMENT_TRANSPORTS:
            raise ConfigError(
                PREFIX + "MAIL_TRANSPORT",
                f"{mail_transport} {DEVELOPMENT_TRANSPORTS[mail_transport]}: not allowed when KEYRELEASE_ENV=production "
                "(use smtp, sendgrid or a plugin's transport)",
            )
        if mode == "production" and not env.get(PREFIX + "PUBLIC_URL", "").strip():
            # Derived from the address served, it would differ per instance and per container:
            # tokens would carry a different `iss` and partner mail an internal link.
            raise ConfigError(
                PREFIX + "PUBLIC_URL", "is required when KEYRELEASE_ENV=production (the address partners and clients reach)"
            )
        templates_dir = reader.text("MAIL_TEMPLATES_DIR", "")
        try:
            mail_templates = load_templates(Path(templates_dir) if templates_dir else None)
        except TemplateError as err:
            raise ConfigError(PREFIX + "MAIL_TEMPLATES_DIR", str(err)) from err
        retry_first = reader.integer("MAIL_RETRY_FIRST_SECONDS", 2, minimum=1, maximum=60)
        retry_max = reader.integer("MAIL_RETRY_MAX_SECONDS", 300, minimum=1, maximum=86400)
        if retry_max < retry_first:
            raise ConfigError(PREFIX + "MAIL_RETRY_MAX_SECONDS", "must not be less than KEYRELEASE_MAIL_RETRY_FIRST_SECONDS")
        region = reader.text("REGION", "us-east-1")
        if not re.fullmatch(r"[a-z0-9-]{1,32}", region):
            raise ConfigError(PREFIX + "REGION", f"not a region name: {region!r}")
        return cls(
            env=mode,
            var_dir=var_dir,
            database_url=database_url,
            secret_key=secret_key,
            mail_transport=mail_transport,
            mail_from=mail_from,
            plugins=plugins,
            policy=policy,
            region=region,
            public_url=public_url,
            public_url_configured=bool(env.get(PREFIX + "PUBLIC_URL", "").strip()),
            graphql_introspection=reader.boolean("GRAPHQL_INTROSPECTION", True),
            graphiql=reader.boolean("GRAPHIQL", True, words="on or off"),
            graphql_max_depth=reader.integer("GRAPHQL_MAX_DEPTH", 10, minimum=3, maximum=50),
            graphql_max_tokens=reader.integer("GRAPHQL_MAX_TOKENS", 2000, minimum=100, maximum=100_000),
            graphql_max_unauthenticated_bytes=reader.integer(
                "GRAPHQL_MAX_UNAUTHENTICATED_BYTES", 2048, minimum=256, maximum=1024 * 1024
            ),
            graphql_max_cost=reader.integer("GRAPHQL_MAX_COST", 12_000, minimum=1000, maximum=10_000_000),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            dispatcher_enabled=reader.boolean("DISPATCHER", True),
            jwt_issuer=reader.claim("JWT_ISSUER", "") if env.get(PREFIX + "JWT_ISSUER", "").strip() else "",
            jwt_audience=reader.claim("JWT_AUDIENCE", cls.jwt_audience),
            token_ttl_seconds=reader.integer("TOKEN_TTL_SECONDS", 3600, minimum=60, maximum=86400),
            token_scope=reader.scope("TOKEN_SCOPE", cls.token_scope),
            jwt_private_key_file=jwt_private_key_file,
            jwt_public_key_files=reader.files("JWT_PUBLIC_KEY_FILES"),
            last_used_flush_seconds=reader.integer("LAST_USED_FLUSH_SECONDS", 60, minimum=1, maximum=3600),
            mail_templates=mail_templates,
            mail_retry_first_seconds=retry_first,
            mail_retry_max_seconds=retry_max,
            mail_max_attempts=reader.integer("MAIL_MAX_ATTEMPTS", 8, minimum=1, maximum=100),
            mail_lease_seconds=reader.integer("MAIL_LEASE_SECONDS", 60, minimum=2, maximum=3600),
            database_pool=PoolSettings(
                size=reader.integer("DATABASE_POOL_SIZE", 10, minimum=1, maximum=500),
                connect_timeout=reader.integer("DATABASE_CONNECT_TIMEOUT_SECONDS", 5, minimum=1, maximum=120),
                command_timeout=reader.integer("DATABASE_COMMAND_TIMEOUT_SECONDS", 10, minimum=1, maximum=3600),
            ),
            request_timeout_seconds=reader.integer("REQUEST_TIMEOUT_SECONDS", 10, minimum=1, maximum=600),
            header_timeout_seconds=reader.integer("HEADER_TIMEOUT_SECONDS", 5, minimum=1, maximum=300),
            keep_alive_seconds=reader.integer("KEEP_ALIVE_SECONDS", 5, minimum=1, maximum=3600),
            max_connections=reader.integer("MAX_CONNECTIONS", 1000, minimum=10, maximum=1_000_000),
            listen_backlog=reader.integer("LISTEN_BACKLOG", 2048, minimum=16, maximum=65535),
            max_header_bytes=reader.integer("MAX_HEADER_BYTES", 16 * 1024, minimum=4096, maximum=1024 * 1024),
            rate_limits=RateLimits(
                token_ip=reader.rate("RATE_LIMIT_TOKEN_IP", RateLimits.token_ip),
                token_client=reader.rate("RATE_LIMIT_TOKEN_CLIENT", RateLimits.token_client),
                partner_ip=reader.rate("RATE_LIMIT_PARTNER_IP", RateLimits.partner_ip),
                partner_key=reader.rate("RATE_LIMIT_PARTNER_KEY", RateLimits.partner_key),
                admin=reader.rate("RATE_LIMIT_ADMIN", RateLimits.admin),
                admin_query=reader.rate("RATE_LIMIT_ADMIN_QUERY", RateLimits.admin_query),
                secret_scanning_ip=reader.rate("RATE_LIMIT_SECRET_SCANNING_IP", RateLimits.secret_scanning_ip),
            ),
            rate_limit_store=reader.choice("RATE_LIMIT_STORE", "auto", ("auto", "database", "memory")),
            trusted_proxies=reader.networks("TRUSTED_PROXIES"),
            cors_origins=reader.origins("CORS_ORIGINS"),
            secret_scanning_keys=reader.scanning_keys("SECRET_SCANNING_PUBLIC_KEYS_FILE"),
            secret_scanning_max_body_bytes=reader.integer(
                "SECRET_SCANNING_MAX_BODY_BYTES", 256 * 1024, minimum=1024, maximum=16 * 1024 * 1024
            ),
            admin_token_ttl_days=reader.integer("ADMIN_TOKEN_TTL_DAYS", 90, minimum=1, maximum=3650),
            log_format=log_format(env),
            environ=env,
        )


def log_format(environ: Mapping[str, str]) -> str:
    """KEYRELEASE_LOG_FORMAT, readable before the rest of the settings (logging starts first)."""
    return _Reader(environ).choice("LOG_FORMAT", "text", ("text", "json"))


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and ``repr()``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _address_of(value: str) -> str:
    match = re.search(r"<([^>]*)>\s*$", value)
    return match.group(1) if match else value.strip()


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        value = self.env.get(PREFIX + name, "").strip()
        return value or default

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in options:
            raise ConfigError(PREFIX + name, f"must be one of {', '.join(options)}, not {value!r}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.env.get(PREFIX + name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(PREFIX + name, f"must be a whole number, not {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(PREFIX + name, f"must be {bound}, not {value}")
        return value

    def boolean(self, name: str, default: bool, *, words: str = "true or false") -> bool:
        raw = self.env.get(PREFIX + name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(PREFIX + name, f"must be {words}, not {raw!r}")

    def claim(self, name: str, default: str) -> str:
        """A JWT string claim (issuer, audience): printable, no spaces."""
        value = self.text(name, default)
        if not _CLAIM.fullmatch(value):
            raise ConfigError(PREFIX + name, f"must be 1 to 200 printable characters without spaces, not {value!r}")
        return value

    def scope(self, name: str, default: str) -> str:
        """An OAuth scope (RFC 6749 3.3): space-separated tokens."""
        value = " ".join(self.text(name, default).split())
        if not all(_SCOPE_TOKEN.fullmatch(token) for token in value.split(" ")):
            raise ConfigError(PREFIX + name, f"must be scope tokens separated by spaces (no quotes, no backslashes): {value!r}")
        return value

    def rate(self, name: str, default: Rate | None) -> Rate | None:
        """``N/second|minute|hour|day``, or ``off``."""
        raw = self.env.get(PREFIX + name, "").strip()
        if not raw:
            return default
        try:
            return Rate.parse(raw)
        except ValueError as err:
            raise ConfigError(PREFIX + name, f"{err}, not {raw!r}") from None

    def origins(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of exact web origins (scheme://host[:port]), normalised."""
        raw = self.env.get(PREFIX + name, "")
        found: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if item == "*" or "*" in item:
                raise ConfigError(
                    PREFIX + name, "lists exact origins; '*' is refused because requests carry credentials"
                )
            match = _ORIGIN.fullmatch(item)
            if not match:
                raise ConfigError(
                    PREFIX + name, f"not an origin (scheme://host[:port], no path): {item!r}"
                )
            origin = item.lower()
            if origin not in found:
                found.append(origin)
        return tuple(found)

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """A comma-separated list of IP addresses and CIDR networks."""
        try:
            return parse_networks(self.env.get(PREFIX + name, ""))
        except ValueError as err:
            raise ConfigError(PREFIX + name, str(err)) from None

    def optional_file(self, name: str) -> Path | None:
        raw = self.env.get(PREFIX + name, "").strip()
        if not raw:
            return None
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(PREFIX + name, f"no such file: {raw}")
        return path

    def scanning_keys(self, name: str) -> ScanningKeys | None:
        """GitHub's secret-scanning public keys, read and checked now."""
        path = self.optional_file(name)
        if path is None:
            return None
        try:
            return load_keys(path)
        except PublicKeysError as err:
            raise ConfigError(PREFIX + name, str(err)) from None

    def files(self, name: str) -> tuple[Path, ...]:
        """A comma-separated list of existing files."""
        raw = self.env.get(PREFIX + name, "")
        paths = tuple(Path(item.strip()) for item in raw.split(",") if item.strip())
        for path in paths:
            if not path.is_file():
                raise ConfigError(PREFIX + name, f"no such file: {path}")
        return paths

    def secret_key(self, mode: str, var_dir: Path) -> bytes:
        raw = self.env.get(PREFIX + "SECRET_KEY", "").strip()
        if raw:
            if len(raw) < _MIN_SECRET_LENGTH:
                raise ConfigError(PREFIX + "SECRET_KEY", f"must be at least {_MIN_SECRET_LENGTH} characters")
            return raw.encode()
        if mode == "production":
            raise ConfigError(PREFIX + "SECRET_KEY", "is required when KEYRELEASE_ENV=production")
        return _development_secret(var_dir).encode()


def _development_secret(var_dir: Path) -> str:
    """The development server secret, generated into ``var/`` on first run (mode 0600)."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    files.private_directory(var_dir)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process started at the same moment and won
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
