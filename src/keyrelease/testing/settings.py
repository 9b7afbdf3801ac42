"""The environment of a keyrelease under test: its own directory, a SQLite file in it by default,
a fixed server secret and the ``memory`` mail transport (:mod:`keyrelease.testing.mail`)."""

from __future__ import annotations

from pathlib import Path

SECRET_KEY = "test-server-secret-0123456789abcdef-0123456789"


def base_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """``KEYRELEASE_*`` variables for a service whose files live under ``tmp_path``;
    ``overrides`` (full variable names) replace or add to them."""
    env = {
        "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
        "KEYRELEASE_DATABASE_URL": f"sqlite://{tmp_path / 'keyrelease.sqlite3'}",
        "KEYRELEASE_SECRET_KEY": SECRET_KEY,
        "KEYRELEASE_MAIL_TRANSPORT": "memory",
    }
    env.update(overrides)
    return env
