"""Configuration is validated when read: a bad value fails at start-up, naming the variable."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path

import pytest

from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEYRELEASE_CODE_TTL_SECONDS", "five"),
        ("KEYRELEASE_CODE_TTL_SECONDS", "0"),
        ("KEYRELEASE_CODE_TTL_SECONDS", "100000"),
        ("KEYRELEASE_VERIFICATION_WINDOW_SECONDS", "-1"),
        ("KEYRELEASE_MAX_RESENDS", "1.5"),
        ("KEYRELEASE_MAX_ATTEMPTS", "0"),
        ("KEYRELEASE_PARTNER_OTP_TTL_SECONDS", "x"),
        ("KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN", "0"),
        ("KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY", "0"),
        ("KEYRELEASE_MAX_LOCKED_KEYS_PER_ADMIN_PER_DAY", "three"),
        ("KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR", "-1"),
        ("KEYRELEASE_DATABASE_URL", "mysql://localhost/x"),
        ("KEYRELEASE_SECRET_KEY", "too-short"),
        ("KEYRELEASE_MAIL_FROM", "not an address"),
        ("KEYRELEASE_ENV", "staging"),
        ("KEYRELEASE_GRAPHQL_INTROSPECTION", "maybe"),
        ("KEYRELEASE_HEADER_TIMEOUT_SECONDS", "0"),
        ("KEYRELEASE_KEEP_ALIVE_SECONDS", "soon"),
        ("KEYRELEASE_MAX_CONNECTIONS", "5"),
        ("KEYRELEASE_LISTEN_BACKLOG", "0"),
        ("KEYRELEASE_MAX_HEADER_BYTES", "100"),
        ("KEYRELEASE_GRAPHQL_MAX_UNAUTHENTICATED_BYTES", "10"),
        ("KEYRELEASE_PUBLIC_URL", "keys.uni.example"),
        ("KEYRELEASE_PUBLIC_URL", "http://keys uni.example"),
        ("KEYRELEASE_GRAPHIQL", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(base_env(tmp_path, **{variable: value}))
    assert str(caught.value).startswith(variable)
    assert "\n" not in str(caught.value)


def test_defaults_match_the_documented_policy(tmp_path):
    """Each policy number's default, as the service reads it, is the one docs/configuration.md states."""
    policy = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path)}).policy
    docs = (Path(__file__).parent.parent / "docs/configuration.md").read_text()
    documented = dict(re.findall(r"^\| `KEYRELEASE_([A-Z_]+)` \| ([^|]+?) \|", docs, re.MULTILINE))
    for field in dataclasses.fields(policy):
        assert documented.get(field.name.upper()) == str(getattr(policy, field.name)), field.name


def test_policy_values_are_configurable(tmp_path):
    settings = Settings.from_env(
        base_env(tmp_path, KEYRELEASE_CODE_TTL_SECONDS="60", KEYRELEASE_MAX_RESENDS="1", KEYRELEASE_MAX_ATTEMPTS="3")
    )
    assert (settings.policy.code_ttl_seconds, settings.policy.max_resends, settings.policy.max_attempts) == (60, 1, 3)


def test_production_refuses_to_start_without_a_secret(tmp_path):
    with pytest.raises(ConfigError, match="^KEYRELEASE_SECRET_KEY"):
        Settings.from_env({"KEYRELEASE_ENV": "production", "KEYRELEASE_VAR_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def test_development_secret_is_generated_once_and_private(tmp_path):
    first = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path)}).secret_key
    second = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600


def test_unknown_transport_fails_at_start_up_in_one_line(tmp_path):
    result = run_cli(base_env(tmp_path, KEYRELEASE_MAIL_TRANSPORT="carrier-pigeon"), "serve", "--port", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("configuration error: KEYRELEASE_MAIL_TRANSPORT")


def test_bad_value_fails_serve_at_start_up(tmp_path):
    result = run_cli(base_env(tmp_path, KEYRELEASE_MAX_ATTEMPTS="lots"), "serve", "--port", "1")
    assert result.returncode == 2
    assert "KEYRELEASE_MAX_ATTEMPTS" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_public_url_follows_the_address_served_unless_it_is_set(tmp_path):
    derived = Settings.from_env(base_env(tmp_path)).served_at("http://127.0.0.1:18080")
    assert (derived.public_url, derived.token_issuer) == ("http://127.0.0.1:18080", "http://127.0.0.1:18080")
    configured = Settings.from_env(base_env(tmp_path, KEYRELEASE_PUBLIC_URL="https://keys.uni.example/"))
    assert configured.served_at("http://127.0.0.1:18080").public_url == "https://keys.uni.example"
    issuer = Settings.from_env(base_env(tmp_path, KEYRELEASE_JWT_ISSUER="https://idp.uni.example"))
    assert issuer.served_at("http://127.0.0.1:18080").token_issuer == "https://idp.uni.example"


def test_a_connection_cap_beyond_the_open_file_limit_fails_serve_naming_the_variable(tmp_path):
    result = run_cli(base_env(tmp_path, KEYRELEASE_MAX_CONNECTIONS="1000000"), "serve", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: KEYRELEASE_MAX_CONNECTIONS: 1000000 connections need")
    assert "serving on" not in result.stdout
