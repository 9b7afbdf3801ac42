"""Settings, read from ``KEYRELEASE_*`` environment variables and validated when read.

Each setting is declared once, in :data:`SETTINGS`: its variable, default, parser with its
bounds, help, and whether it is secret. :meth:`Settings.from_env`, ``repr()``, ``keyrelease
settings`` and the documentation test (tests/test_config_docs.py) all loop over those
declarations. A bad value fails at start-up with one line naming the variable
(:class:`ConfigError`), never at first use.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyrelease import expiry, files, oidc, validation
from keyrelease.client_address import IPNetwork, parse_networks
from keyrelease.db import PoolSettings
from keyrelease.exceptions import ConfigError, TemplateError
from keyrelease.graphql import limits as graphql_limits
from keyrelease.mail import dispatcher as delivery
from keyrelease.mail.templates import MailTemplates, load_templates
from keyrelease.policy import VerificationPolicy
from keyrelease.secret_scanning.public_keys import PublicKeysError, ScanningKeys, load_keys
from keyrelease.service import api_tokens, rotation, sessions, sso
from keyrelease.service.admins import DEFAULT_TTL_DAYS, MAX_TTL_DAYS
from keyrelease.service.ratelimit import Rate, RateLimits

PREFIX = "KEYRELEASE_"
_MIN_SECRET_LENGTH = 32
#: Transports for development and tests only, and why ``KEYRELEASE_ENV=production`` refuses them.
DEVELOPMENT_TRANSPORTS = {
    "console": "prints every code and one-time password to standard output, i.e. into the log collector",
    "memory": "is a test double that keeps mail in memory and delivers nothing",
}
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_VAR_DIR = Path("var")
_DATABASE_FILE = "keyrelease.sqlite3"
_SECRET_FILE = "secret_key"

#: The settings read so far, by field (``policy.code_ttl_seconds`` for a member of a group).
Values = Mapping[str, Any]


@dataclass(frozen=True)
class Setting:
    """One ``KEYRELEASE_*`` variable: everything keyrelease says about it is said here."""

    #: The variable without the prefix.
    name: str
    #: The heading of docs/configuration.md whose table documents it.
    section: str
    #: What it sets, in one line (``keyrelease settings`` prints it).
    help: str
    #: The value when the variable is unset or blank.
    default: Any
    #: The variable's text (stripped, not empty) to the value. A ValueError's message is the
    #: problem as the error line states it, after the variable's name.
    parse: Callable[[str], Any]
    #: Where :meth:`Settings.from_env` puts the value: the field of :class:`Settings` (the
    #: name in lower case unless given), or ``group.member`` for a member of ``policy``,
    #: ``database_pool`` or ``rate_limits``.
    field: str = ""
    #: A default computed from the settings read before this one, instead of ``default``.
    derive: Callable[[Values], Any] | None = None
    #: The default as docs/configuration.md and ``keyrelease settings`` state it, where it is
    #: not the value itself.
    shown: str | None = None
    #: What the value must satisfy given the settings read before it (raises ValueError).
    check: Callable[[Any, Values], None] | None = None
    #: Not None: unset is refused when KEYRELEASE_ENV=production; the text is added to the error.
    required_in_production: str | None = None
    #: Never shown: ``repr()`` says ``<hidden>``.
    secret: bool = False
    #: How ``repr()`` shows the value (the database URL masks its password).
    show: Callable[[Any], str] = repr
    #: Off: the text is parsed as it is (``" "`` is not unset).
    strip: bool = True

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.name.lower())

    @property
    def variable(self) -> str:
        return PREFIX + self.name

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        value = self.default
        if value is None or value == ():
            return "none"
        if isinstance(value, bool):
            assert isinstance(self.parse, Switch), self.name
            return self.parse.word(value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    @property
    def accepts(self) -> str:
        """The bounds or the choices, where the parser has them (``at least 30``)."""
        return getattr(self.parse, "accepts", "")

    def read(self, environ: Mapping[str, str], values: Values) -> Any:
        """The value in ``environ``, or the default; ConfigError naming the variable if bad."""
        raw = environ.get(self.variable, "")
        if self.strip:
            raw = raw.strip()
        try:
            if raw:
                value = self.parse(raw)
            elif self.required_in_production is not None and values.get("env") == "production":
                raise ValueError(f"is required when KEYRELEASE_ENV=production{self.required_in_production}")
            else:
                value = self.derive(values) if self.derive is not None else self.default
            if self.check is not None:
                self.check(value, values)
        except ValueError as err:  # the parser's own cause, if it gave one (a TemplateError)
            raise ConfigError(self.variable, str(err)) from err.__cause__
        return value


# --- parsers: the variable's text to the value, or ValueError with the problem ------------------


@dataclass(frozen=True)
class Whole:
    """A whole number within bounds."""

    minimum: int
    maximum: int | None = None

    @property
    def accepts(self) -> str:
        return f"between {self.minimum} and {self.maximum}" if self.maximum is not None else f"at least {self.minimum}"

    def __call__(self, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, not {raw!r}") from None
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"must be {self.accepts}, not {value}")
        return value


@dataclass(frozen=True)
class OneOf:
    """One of a few words."""

    options: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return f"one of {', '.join(self.options)}"

    def __call__(self, raw: str) -> str:
        if raw not in self.options:
            raise ValueError(f"must be {self.accepts}, not {raw!r}")
        return raw


@dataclass(frozen=True)
class Switch:
    """On or off; ``accepts`` names the two words the docs use for it."""

    accepts: str = "true or false"

    def word(self, value: bool) -> str:
        return self.accepts.split(" or ")[0 if value else 1]

    def __call__(self, raw: str) -> bool:
        word = raw.lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"must be {self.accepts}, not {word!r}")


@dataclass(frozen=True)
class Matching:
    """Text that ``pattern`` matches whole, after ``trim`` is stripped from its end."""

    pattern: re.Pattern[str]
    #: The problem, ``{!r}`` standing for the text.
    problem: str
    trim: str = ""

    def __call__(self, raw: str) -> str:
        text = raw.rstrip(self.trim) if self.trim else raw
        if not self.pattern.fullmatch(text):
            raise ValueError(self.problem.format(text))
        return text


#: A JWT string claim (issuer, audience): printable, no spaces.
_CLAIM = Matching(re.compile(r"[\x21-\x7e]{1,200}"), "must be 1 to 200 printable characters without spaces, not {!r}")
_PUBLIC_URL = Matching(
    re.compile(r"https?://[\x21-\x7e]{1,190}"), "must be an http:// or https:// URL without spaces, not {!r}", trim="/"
)
_REGION = Matching(re.compile(r"[a-z0-9-]{1,32}"), "not a region name: {!r}")


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw)


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
        raise ValueError("must start with sqlite:// or postgres://")
    return raw


def _secret_key(raw: str) -> bytes:
    if len(raw) < _MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {_MIN_SECRET_LENGTH} characters")
    return raw.encode()


def _mail_from(raw: str) -> str:
    if (found := validation.control_character(raw)) is not None:
        raise ValueError(f"must not contain control characters (found {validation.code_point(found)})")
    if not validation.is_email_address(_address_of(raw)):
        raise ValueError(f"not an email address: {raw!r}")
    return raw


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _templates(raw: str) -> MailTemplates:
    try:
        return load_templates(Path(raw))
    except TemplateError as err:
        raise ValueError(str(err)) from err


def _scope(raw: str) -> str:
    """An OAuth scope (RFC 6749 3.3): space-separated tokens."""
    value = " ".join(raw.split())
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in value.split(" ")):
        raise ValueError(f"must be scope tokens separated by spaces (no quotes, no backslashes): {value!r}")
    return value


def _file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"no such file: {raw}")
    return path


def _files(raw: str) -> tuple[Path, ...]:
    """A comma-separated list of existing files."""
    paths = tuple(Path(item) for item in _names(raw))
    for path in paths:
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
    return paths


def _scanning_keys(raw: str) -> ScanningKeys:
    """GitHub's secret-scanning public keys, read and checked now."""
    try:
        return load_keys(_file(raw))
    except PublicKeysError as err:
        raise ValueError(str(err)) from None


@dataclass(frozen=True)
class Rated:
    """A rate limit, or ``off``."""

    accepts: str = "N/second, N/minute, N/hour or N/day, or off"

    def __call__(self, raw: str) -> Rate | None:
        try:
            return Rate.parse(raw)
        except ValueError as err:
            raise ValueError(f"{err}, not {raw!r}") from None


def _origins(raw: str) -> tuple[str, ...]:
    """A comma-separated list of exact web origins (scheme://host[:port]), normalised."""
    found: list[str] = []
    for item in _names(raw):
        if "*" in item:
            raise ValueError("lists exact origins; '*' is refused because requests carry credentials")
        if not _ORIGIN.fullmatch(item):
            raise ValueError(f"not an origin (scheme://host[:port], no path): {item!r}")
        if item.lower() not in found:
            found.append(item.lower())
    return tuple(found)


# --- what a value must agree with -------------------------------------------------------------


def _within_the_window(value: int, values: Values) -> None:
    if value > values["policy.verification_window_seconds"]:
        raise ValueError("must not exceed KEYRELEASE_VERIFICATION_WINDOW_SECONDS")


def _not_below_the_grace(value: int, values: Values) -> None:
    if value < values["rotation_grace_seconds"]:
        raise ValueError("must not be less than KEYRELEASE_ROTATION_GRACE_SECONDS")


def _not_below_the_first_delay(value: int, values: Values) -> None:
    if value < values["mail_retry_first_seconds"]:
        raise ValueError("must not be less than KEYRELEASE_MAIL_RETRY_FIRST_SECONDS")


def _not_below_the_idle_timeout(value: int, values: Values) -> None:
    if value < values["session_idle_seconds"]:
        raise ValueError("must not be less than KEYRELEASE_SESSION_IDLE_SECONDS")


def _allowed_in_this_environment(value: str, values: Values) -> None:
    if values["env"] == "production" and value in DEVELOPMENT_TRANSPORTS:
        raise ValueError(
            f"{value} {DEVELOPMENT_TRANSPORTS[value]}: not allowed when KEYRELEASE_ENV=production "
            "(use smtp, sendgrid or a plugin's transport)"
        )


def _hidden_password(url: str) -> str:
    return repr(redact_url(url))


# --- the declarations -------------------------------------------------------------------------

#: The headings of docs/configuration.md, in its order; ``keyrelease settings`` follows them.
SECTIONS = (
    "Core", "Verification policy", "An admin's budget", "Mail", "Access tokens", "Database and request bounds",
    "Connections", "GraphQL", "Secret scanning", "Rate limits, admin tokens and logs", "Sign-in and sessions",
)
CORE, POLICY, BUDGET, MAIL, TOKENS, DATABASE, CONNECTIONS, GRAPHQL, SCANNING, LIMITS, SIGN_IN = SECTIONS
_MAX_PER_ADMIN = Whole(1, 100_000)


def _policy(number: str, section: str, help: str, parse: Whole, **options: Any) -> Setting:
    """KEYRELEASE_<NUMBER>: ``policy.<number>``, by default the one :class:`VerificationPolicy` states."""
    return Setting(number.upper(), section, help, getattr(VerificationPolicy, number), parse, field=f"policy.{number}", **options)


def _rate_limit(rule: str, help: str) -> Setting:
    """KEYRELEASE_RATE_LIMIT_<RULE>: ``rate_limits.<rule>``, by default the one :class:`RateLimits` states."""
    return Setting(f"RATE_LIMIT_{rule.upper()}", LIMITS, help, getattr(RateLimits, rule), Rated(), field=f"rate_limits.{rule}")


#: Every setting, in the order they are read: a default or a check may use those before it.
SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", CORE, "development or production; production refuses development defaults",
            "development", OneOf(("development", "production"))),
    Setting("VAR_DIR", CORE, "where the development database, secret and keys are generated (mode 0700)",
            _VAR_DIR, _path),
    Setting("DATABASE_URL", CORE, "sqlite://PATH or postgres://user:pass@host:port/db",
            None, _database_url, derive=lambda values: f"sqlite://{values['var_dir'] / _DATABASE_FILE}",
            shown=f"sqlite://{_VAR_DIR / _DATABASE_FILE}", show=_hidden_password),
    Setting("SECRET_KEY", CORE, f"the server secret (at least {_MIN_SECRET_LENGTH} characters) codes are derived from",
            None, _secret_key, derive=lambda values: _development_secret(values["var_dir"]).encode(),
            shown=f"generated into {_VAR_DIR / _SECRET_FILE} (0600) in development", required_in_production="", secret=True),
    Setting("MAIL_FROM", MAIL, "the From address (Name <addr> or addr)",
            "keyrelease <no-reply@keyrelease.localhost>", _mail_from),
    Setting("PLUGINS", MAIL, "comma-separated allowlist of plugin names to load",
            None, _names, shown="all installed", strip=False),
    _policy("verification_window_seconds", POLICY, "from creation to verification; then LOCKED for ever", Whole(60)),
    _policy("code_ttl_seconds", POLICY,
            "a code is valid this long from issue (never past the window)", Whole(30), check=_within_the_window),
    _policy("max_resends", POLICY, "new codes per key", Whole(0)),
    _policy("max_attempts", POLICY, "failed verifications per key, all codes together", Whole(1)),
    _policy("partner_otp_ttl_seconds", POLICY, "the partner's one-time password validity", Whole(60)),
    _policy("max_partner_attempts", POLICY, "wrong one-time passwords before partner retrieval locks", Whole(1)),
    _policy("max_pending_keys_per_admin", POLICY, "keys awaiting verification per admin at once", Whole(1)),
    _policy("max_key_lifetime_days", POLICY, "the latest expiresAt a key may have", Whole(1)),
    _policy("max_keys_per_admin_per_day", BUDGET,
            "keys one admin may create in any day, whatever became of them", _MAX_PER_ADMIN),
    _policy("max_locked_keys_per_admin_per_day", BUDGET,
            "an admin's keys locked by wrong codes in 24 hours before createKey is suspended", _MAX_PER_ADMIN),
    _policy("max_code_emails_per_admin_per_hour", BUDGET,
            "verification codes emailed to one admin in any hour", _MAX_PER_ADMIN),
    _policy("failure_floor_ms", POLICY, "every verification failure is answered no sooner than this", Whole(0, 5000)),
    Setting("ROTATION_GRACE_SECONDS", POLICY,
            "a rotated key's old secret keeps working this long after the new one's first use",
            rotation.DEFAULT_GRACE_SECONDS, Whole(rotation.MIN_GRACE_SECONDS)),
    Setting("ROTATION_MAX_OVERLAP_SECONDS", POLICY,
            "and never longer than this after the new secret's release",
            rotation.DEFAULT_MAX_OVERLAP_SECONDS, Whole(rotation.MIN_GRACE_SECONDS), check=_not_below_the_grace),
    Setting("JWT_PRIVATE_KEY_FILE", TOKENS, "PEM key that signs tokens (Ed25519 or RSA of 2048 bits or more)",
            None, _file, shown=f"a development key generated into {_VAR_DIR}/", required_in_production=""),
    Setting("MAIL_TRANSPORT", MAIL, "the transport that sends mail (smtp, sendgrid, a plugin's, console)",
            "console", _text, check=_allowed_in_this_environment),
    Setting("PUBLIC_URL", CORE, "base of links in emails and the default token issuer",
            "http://127.0.0.1:8000", _PUBLIC_URL, shown="the address keyrelease serve listens on",
            required_in_production=" (the address partners and clients reach)"),
    Setting("MAIL_TEMPLATES_DIR", MAIL, "a folder of operator templates, checked at start-up",
            None, _templates, field="mail_templates", derive=lambda values: load_templates(),
            shown="built-in templates"),
    Setting("MAIL_RETRY_FIRST_SECONDS", MAIL, "first retry delay after a transient failure (doubles, with jitter)",
            delivery.FIRST_RETRY_SECONDS, Whole(1, 60)),
    Setting("MAIL_RETRY_MAX_SECONDS", MAIL, "the cap on the retry delay",
            delivery.MAX_RETRY_SECONDS, Whole(1, 86400), check=_not_below_the_first_delay),
    Setting("REGION", CORE, "prefix of client IDs (<region>#<uuid>)", "us-east-1", _REGION),
    Setting("GRAPHQL_INTROSPECTION", GRAPHQL, "schema introspection (GraphiQL needs it)", graphql_limits.INTROSPECTION, Switch()),
    Setting("GRAPHIQL", GRAPHQL, "GraphiQL at GET /graphql for a browser", True, Switch("on or off")),
    Setting("GRAPHQL_MAX_DEPTH", GRAPHQL, "deepest selection allowed", graphql_limits.MAX_DEPTH, Whole(3, 50)),
    Setting("GRAPHQL_MAX_TOKENS", GRAPHQL, "largest document allowed", graphql_limits.MAX_TOKENS, Whole(100, 100_000)),
    Setting("GRAPHQL_MAX_UNAUTHENTICATED_BYTES", GRAPHQL,
            "largest document (bytes) accepted without an admin token, refused before parsing",
            2048, Whole(256, 1024 * 1024)),
    Setting("GRAPHQL_MAX_COST", GRAPHQL, "the most values one answer may hold, refused before execution",
            graphql_limits.MAX_COST, Whole(1000, 10_000_000)),
    Setting("MAX_BODY_BYTES", GRAPHQL, "larger request bodies get 413 before parsing", 64 * 1024, Whole(1024)),
    Setting("DISPATCHER", MAIL, "run the mail dispatcher inside keyrelease serve",
            True, Switch(), field="dispatcher_enabled"),
    Setting("JWT_ISSUER", TOKENS, "the iss claim", "", _CLAIM, shown="KEYRELEASE_PUBLIC_URL"),
    Setting("JWT_AUDIENCE", TOKENS, "the aud claim", "data-platform", _CLAIM),
    Setting("TOKEN_TTL_SECONDS", TOKENS, "access-token lifetime (expires_in)", 3600, Whole(60, 86400)),
    Setting("TOKEN_SCOPE", TOKENS, "the scope granted", "data:read", _scope),
    Setting("JWT_PUBLIC_KEY_FILES", TOKENS, "comma-separated PEM keys also published in the JWKS (rotation)",
            (), _files),
    Setting("LAST_USED_FLUSH_SECONDS", TOKENS, "how often the last use of each key is written to the database",
            60, Whole(1, 3600)),
    Setting("MAIL_MAX_ATTEMPTS", MAIL, "attempts before a message is dead-lettered (FAILED)", delivery.MAX_ATTEMPTS, Whole(1, 100)),
    Setting("EXPIRY_NOTICES", MAIL,
            "before a key's expiry, when its admin (and partner) are told: durations in d, h or m",
            expiry.parse_thresholds(expiry.DEFAULT_THRESHOLDS), expiry.parse_thresholds,
            shown=expiry.DEFAULT_THRESHOLDS, show=lambda value: repr(",".join(map(expiry.format_duration, value)))),
    Setting("MAIL_LEASE_SECONDS", MAIL, "how long a dispatcher holds a claimed message", delivery.LEASE_SECONDS, Whole(2, 3600)),
    Setting("DATABASE_POOL_SIZE", DATABASE, "connections per process (PostgreSQL)",
            PoolSettings.size, Whole(1, 500), field="database_pool.size"),
    Setting("DATABASE_CONNECT_TIMEOUT_SECONDS", DATABASE, "the longest wait for a new connection",
            PoolSettings.connect_timeout, Whole(1, 120), field="database_pool.connect_timeout"),
    Setting("DATABASE_COMMAND_TIMEOUT_SECONDS", DATABASE, "the longest a statement may run",
            PoolSettings.command_timeout, Whole(1, 3600), field="database_pool.command_timeout"),
    Setting("REQUEST_TIMEOUT_SECONDS", DATABASE, "every HTTP request is answered within this (503 otherwise)",
            10, Whole(1, 600)),
    Setting("HEADER_TIMEOUT_SECONDS", CONNECTIONS, "a connection must deliver a request's headers within this",
            5, Whole(1, 300)),
    Setting("KEEP_ALIVE_SECONDS", CONNECTIONS, "how long an idle connection is kept open after a response",
            5, Whole(1, 3600)),
    Setting("MAX_CONNECTIONS", CONNECTIONS, "open connections per process beyond which requests get 503",
            1000, Whole(10, 1_000_000)),
    Setting("LISTEN_BACKLOG", CONNECTIONS, "connections the kernel queues before serve accepts them",
            2048, Whole(16, 65535)),
    Setting("MAX_HEADER_BYTES", CONNECTIONS, "the largest request line plus headers (431 beyond it)",
            16 * 1024, Whole(4096, 1024 * 1024)),
    _rate_limit("token_ip", "token requests per client address"),
    _rate_limit("token_client", "token requests per client address and client ID"),
    _rate_limit("partner_ip", "partner revealKey calls per client address"),
    _rate_limit("partner_key", "partner revealKey calls per key ID, from anywhere"),
    _rate_limit("admin", "GraphQL mutations per admin"),
    _rate_limit("admin_query", "authenticated GraphQL query requests per admin"),
    _rate_limit("secret_scanning_ip", "secret-scanning reports per client address"),
    _rate_limit("sign_in_ip", "sign-ins started and provider answers received per client address"),
    Setting("RATE_LIMIT_STORE", LIMITS, "where rate-limit counters live (auto: memory on SQLite, else database)",
            "auto", OneOf(("auto", "database", "memory"))),
    Setting("TRUSTED_PROXIES", LIMITS, "comma-separated addresses or CIDR networks whose X-Forwarded-For is read",
            (), parse_networks),
    Setting("CORS_ORIGINS", GRAPHQL, "comma-separated exact origins whose pages may call /graphql", (), _origins),
    Setting("SECRET_SCANNING_PUBLIC_KEYS_FILE", SCANNING,
            "GitHub's secret-scanning signing keys (JSON); unset, the endpoint is not served",
            None, _scanning_keys, field="secret_scanning_keys"),
    Setting("SECRET_SCANNING_MAX_BODY_BYTES", SCANNING, "larger reports get 413 before they are read in full",
            256 * 1024, Whole(1024, 16 * 1024 * 1024)),
    Setting("ADMIN_TOKEN_TTL_DAYS", LIMITS, "lifetime of a new admin token (--expires-days overrides)",
            DEFAULT_TTL_DAYS, Whole(1, MAX_TTL_DAYS)),
    Setting("API_TOKEN_MAX_LIFETIME_DAYS", LIMITS, "the longest expiry an API token created in the console may have",
            api_tokens.DEFAULT_MAX_LIFETIME_DAYS, Whole(1, MAX_TTL_DAYS)),
    Setting("LOG_FORMAT", LIMITS, "text for people, json (one object per line) for log collectors",
            "text", OneOf(("text", "json"))),
    Setting("SESSION_IDLE_SECONDS", SIGN_IN, "a console session ends after this long without a request",
            sessions.DEFAULT_IDLE_SECONDS, Whole(60, 86400)),
    Setting("SESSION_LIFETIME_SECONDS", SIGN_IN, "and this long after sign-in, however active",
            sessions.DEFAULT_LIFETIME_SECONDS, Whole(300, 30 * 86400), check=_not_below_the_idle_timeout),
    Setting("SSO_TIMEOUT_SECONDS", SIGN_IN, "the longest wait for an identity provider's answer",
            oidc.DEFAULT_TIMEOUT_SECONDS, Whole(1, 60)),
    Setting("SSO_DISCOVERY_TTL_SECONDS", SIGN_IN, "how long a provider's discovery document and keys are reused",
            oidc.DEFAULT_DISCOVERY_TTL_SECONDS, Whole(0, 86400)),
    Setting("SSO_REQUEST_TTL_SECONDS", SIGN_IN, "how long a sign-in at the provider may take",
            sso.DEFAULT_REQUEST_TTL_SECONDS, Whole(60, 3600)),
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}
_BY_FIELD = {setting.field: setting for setting in SETTINGS}
#: The settings that are members of an object rather than fields of :class:`Settings`.
GROUPS: dict[str, Callable[..., Any]] = {
    "policy": VerificationPolicy, "database_pool": PoolSettings, "rate_limits": RateLimits,
}


def setting(name: str) -> Setting:
    """The declaration of ``KEYRELEASE_<name>``."""
    return _BY_NAME[name]


@dataclass(frozen=True)
class Settings:
    """What :meth:`from_env` read. Each field, and each member of ``policy``, ``database_pool``
    and ``rate_limits``, is filled by one declaration of :data:`SETTINGS` (its help says what
    it is); ``public_url_configured`` and ``environ`` are derived."""

    env: str
    var_dir: Path
    database_url: str
    secret_key: bytes
    mail_transport: str
    mail_from: str
    #: None: every installed plugin.
    plugins: tuple[str, ...] | None
    policy: VerificationPolicy
    region: str
    #: Unset, ``keyrelease serve`` derives it from the address it listens on (:meth:`served_at`).
    public_url: str
    public_url_configured: bool
    graphql_introspection: bool
    graphiql: bool
    graphql_max_depth: int
    graphql_max_tokens: int
    graphql_max_unauthenticated_bytes: int
    graphql_max_cost: int
    max_body_bytes: int
    dispatcher_enabled: bool
    #: Empty: ``public_url`` (:attr:`token_issuer`).
    jwt_issuer: str
    jwt_audience: str
    token_ttl_seconds: int
    token_scope: str
    #: None: a development key under ``var_dir``.
    jwt_private_key_file: Path | None
    jwt_public_key_files: tuple[Path, ...]
    last_used_flush_seconds: int
    rotation_grace_seconds: int
    rotation_max_overlap_seconds: int
    mail_templates: MailTemplates = field(repr=False)
    mail_retry_first_seconds: int
    mail_retry_max_seconds: int
    mail_max_attempts: int
    mail_lease_seconds: int
    #: Largest first (:func:`keyrelease.expiry.parse_thresholds`).
    expiry_notices: tuple[timedelta, ...]
    database_pool: PoolSettings
    request_timeout_seconds: int
    header_timeout_seconds: int
    keep_alive_seconds: int
    max_connections: int
    listen_backlog: int
    max_header_bytes: int
    rate_limits: RateLimits
    rate_limit_store: str
    trusted_proxies: tuple[IPNetwork, ...]
    cors_origins: tuple[str, ...]
    #: None: ``POST /secret-scanning/github`` is not served.
    secret_scanning_keys: ScanningKeys | None
    secret_scanning_max_body_bytes: int
    admin_token_ttl_days: int
    api_token_max_lifetime_days: int
    log_format: str
    session_idle_seconds: int
    session_lifetime_seconds: int
    sso_timeout_seconds: int
    sso_discovery_ttl_seconds: int
    sso_request_ttl_seconds: int
    #: Environment the settings were read from; transports read their own variables from it.
    environ: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        """Every setting but the secrets: the server secret is left out and the database
        password masked, so a settings object in a log line or a traceback leaks neither."""
        shown = []
        for item in fields(self):
            if item.repr:
                declared = _BY_FIELD.get(item.name)
                value = getattr(self, item.name)
                text = "<hidden>" if declared and declared.secret else (declared.show if declared else repr)(value)
                shown.append(f"{item.name}={text}")
        return f"Settings({', '.join(shown)})"

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
        values: dict[str, Any] = {}
        for declared in SETTINGS:
            values[declared.field] = declared.read(env, values)
        members: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for name in [name for name in values if "." in name]:
            group, _, member = name.partition(".")
            members[group][member] = values.pop(name)
        for group, make in GROUPS.items():
            values[group] = make(**members[group])
        configured = bool(env.get(setting("PUBLIC_URL").variable, "").strip())
        return cls(**values, public_url_configured=configured, environ=env)


def log_format(environ: Mapping[str, str]) -> str:
    """KEYRELEASE_LOG_FORMAT, readable before the rest of the settings (logging starts first)."""
    value: str = setting("LOG_FORMAT").read(environ, {})
    return value


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


def _development_secret(var_dir: Path) -> str:
    """The development server secret, generated into ``var/`` on first run (mode 0600)."""
    path = var_dir / _SECRET_FILE
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
