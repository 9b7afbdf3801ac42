"""Configuration is validated when read: a bad value fails at start-up, naming the variable."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import base_env
from liveserver import run_cli

from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError


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
        ("KEYRELEASE_DATABASE_URL", "mysql://localhost/x"),
        ("KEYRELEASE_SECRET_KEY", "too-short"),
        ("KEYRELEASE_MAIL_FROM", "not an address"),
        ("KEYRELEASE_ENV", "staging"),
        ("KEYRELEASE_GRAPHQL_INTROSPECTION", "maybe"),
        ("KEYRELEASE_GRAPHIQL", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(base_env(tmp_path, **{variable: value}))
    assert str(caught.value).startswith(variable)
    assert "\n" not in str(caught.value)


def test_defaults_match_the_documented_policy(tmp_path):
    policy = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path)}).policy
    assert (policy.code_ttl_seconds, policy.max_resends, policy.max_attempts) == (300, 3, 5)
    assert (policy.verification_window_seconds, policy.partner_otp_ttl_seconds) == (900, 259200)
    assert policy.max_pending_keys_per_admin == 5


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
