"""Production safety: KEYRELEASE_ENV=production refuses the development transports, the
settings object never shows a secret, and the files keyrelease creates are private."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyrelease import db
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.models import Institution
from keyrelease.oauth.signing_keys import generate_private_key_pem
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Everything production requires, so that only what a test changes can be refused."""
    key_file = tmp_path / "jwt.pem"
    key_file.write_bytes(generate_private_key_pem())
    settings = {
        "KEYRELEASE_ENV": "production",
        "KEYRELEASE_JWT_PRIVATE_KEY_FILE": str(key_file),
        "KEYRELEASE_MAIL_TRANSPORT": "smtp",
        "KEYRELEASE_SMTP_HOST": "smtp.example.org",
        "KEYRELEASE_PUBLIC_URL": "https://keys.uni.example",
    }
    return base_env(tmp_path, **{**settings, **overrides})


# --- development transports ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["console", "memory"])
def test_production_refuses_to_serve_with_a_development_transport_in_one_line(tmp_path, transport):
    done = run_cli(production_env(tmp_path, KEYRELEASE_MAIL_TRANSPORT=transport), "serve", "--port", "1")

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("configuration error")]
    assert line.startswith(f"configuration error: KEYRELEASE_MAIL_TRANSPORT: {transport} ")
    assert line.endswith("not allowed when KEYRELEASE_ENV=production (use smtp, sendgrid or a plugin's transport)")
    assert "serving on" not in done.stdout


def test_production_refuses_the_console_transport_when_none_is_chosen(tmp_path):
    env = production_env(tmp_path)
    del env["KEYRELEASE_MAIL_TRANSPORT"]

    done = run_cli(env, "serve", "--port", "1")

    assert done.returncode == 2
    assert "configuration error: KEYRELEASE_MAIL_TRANSPORT: console prints every code" in done.stderr


def test_production_accepts_a_real_transport_and_development_still_takes_the_console(tmp_path):
    assert Settings.from_env(production_env(tmp_path)).mail_transport == "smtp"
    assert Settings.from_env(base_env(tmp_path, KEYRELEASE_MAIL_TRANSPORT="console")).mail_transport == "console"


# --- the settings object ---------------------------------------------------------------------


def test_the_settings_repr_shows_neither_the_secret_key_nor_the_database_password(tmp_path):
    settings = Settings.from_env(
        base_env(tmp_path, KEYRELEASE_DATABASE_URL="postgres://keyrelease:Pa55-w0rd-xyz@db.internal:5432/keyrelease")
    )

    for shown in (repr(settings), str(settings), f"{settings!r}", repr([settings])):
        assert SECRET_KEY not in shown
        assert "Pa55-w0rd-xyz" not in shown
        assert "secret_key=<hidden>" in shown
        assert "database_url='postgres://keyrelease:***@db.internal:5432/keyrelease'" in shown
        assert "mail_transport='memory'" in shown  # the rest is still there to debug with


def test_the_development_secret_is_not_in_the_settings_repr_either(tmp_path):
    settings = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path / "var")})

    assert settings.secret_key.decode() not in repr(settings)


# --- file modes ------------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_var_is_0700_and_the_database_with_its_wal_and_shm_0600_even_under_a_permissive_umask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the defaults: ./var and ./var/keyrelease.sqlite3
    var = Path("var")

    async def migrate_and_write() -> dict[str, int]:
        await db.apply_migrations(settings.database_url)
        async with db.connected(settings.database_url):
            await Institution.create(name="Example University", created_at=datetime.now(UTC))
            # While a connection is open in WAL mode, the -wal and -shm files exist.
            return {path.name: mode(path) for path in sorted(var.iterdir())}

    with umask(0):
        settings = Settings.from_env({})
        modes = asyncio.run(migrate_and_write())

    assert mode(var) == 0o700
    assert modes == {
        "keyrelease.sqlite3": 0o600,
        "keyrelease.sqlite3-shm": 0o600,
        "keyrelease.sqlite3-wal": 0o600,
        "secret_key": 0o600,
    }


def test_a_database_in_a_new_directory_of_its_own_gets_0700_and_0600(tmp_path):
    url = f"sqlite://{tmp_path / 'data' / 'kr.sqlite3'}"

    with umask(0o002):
        asyncio.run(db.apply_migrations(url))

    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "kr.sqlite3") == 0o600


def test_the_cli_creates_private_files_under_a_permissive_umask(tmp_path):
    env = {**base_env(tmp_path), "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
           "KEYRELEASE_DATABASE_URL": f"sqlite://{tmp_path / 'var' / 'keyrelease.sqlite3'}"}

    with umask(0):
        done = run_cli(env, "admin", "create", "--institution", "Example University", "--email", "ada@uni.example")

    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "keyrelease.sqlite3") == 0o600


def test_production_requires_the_public_url(tmp_path):
    """Derived from the address served, each instance would put its own host in tokens' iss and
    partner links; production names it once."""
    env = production_env(tmp_path)
    del env["KEYRELEASE_PUBLIC_URL"]
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == "KEYRELEASE_PUBLIC_URL"
    assert Settings.from_env(production_env(tmp_path)).public_url == "https://keys.uni.example"
