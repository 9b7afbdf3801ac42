"""Settings, read from ``KEYRELEASE_*`` environment variables and validated when read.

A bad value fails at start-up with one line naming the variable (:class:`ConfigError`), never
at first use.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from keyrelease.exceptions import ConfigError
from keyrelease.policy import VerificationPolicy

PREFIX = "KEYRELEASE_"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_MIN_SECRET_LENGTH = 32


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
    public_url: str = "http://127.0.0.1:8000"
    graphql_introspection: bool = True
    graphql_max_depth: int = 10
    graphql_max_tokens: int = 2000
    max_body_bytes: int = 64 * 1024
    dispatcher_enabled: bool = True
    #: Environment the settings were read from; transports read their own variables from it.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_policy(self, **changes: object) -> Settings:
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
        if not _EMAIL.match(_address_of(mail_from)):
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
            failure_floor_ms=reader.integer("FAILURE_FLOOR_MS", 50, minimum=0, maximum=5000),
        )
        if policy.code_ttl_seconds > policy.verification_window_seconds:
            raise ConfigError(PREFIX + "CODE_TTL_SECONDS", "must not exceed KEYRELEASE_VERIFICATION_WINDOW_SECONDS")
        region = reader.text("REGION", "us-east-1")
        if not re.fullmatch(r"[a-z0-9-]{1,32}", region):
            raise ConfigError(PREFIX + "REGION", f"not a region name: {region!r}")
        return cls(
            env=mode,
            var_dir=var_dir,
            database_url=database_url,
            secret_key=secret_key,
            mail_transport=reader.text("MAIL_TRANSPORT", "console"),
            mail_from=mail_from,
            plugins=plugins,
            policy=policy,
            region=region,
            public_url=reader.text("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            graphql_introspection=reader.boolean("GRAPHQL_INTROSPECTION", True),
            graphql_max_depth=reader.integer("GRAPHQL_MAX_DEPTH", 10, minimum=3, maximum=50),
            graphql_max_tokens=reader.integer("GRAPHQL_MAX_TOKENS", 2000, minimum=100, maximum=100_000),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            dispatcher_enabled=reader.boolean("DISPATCHER", True),
            environ=env,
        )


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

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(PREFIX + name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(PREFIX + name, f"must be true or false, not {raw!r}")

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
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process started at the same moment and won
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
