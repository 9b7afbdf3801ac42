"""The command line: migrate, admin create."""

from __future__ import annotations

import sqlite3

from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env


def test_admin_create_prints_the_token_last_and_stores_only_its_hash(tmp_path):
    env = base_env(tmp_path)
    result = run_cli(env, "admin", "create", "--institution", "Example U", "--email", "Ada@Uni.Example", "--name", "Ada")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("kra_") and len(token) > 40
    with sqlite3.connect(tmp_path / "keyrelease.sqlite3") as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump
    assert "ada@uni.example" in dump


def test_admin_create_refuses_a_duplicate_or_bad_email(tmp_path):
    env = base_env(tmp_path)
    assert run_cli(env, "admin", "create", "--institution", "U", "--email", "a@u.example").returncode == 0
    again = run_cli(env, "admin", "create", "--institution", "U", "--email", "a@u.example")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run_cli(env, "admin", "create", "--institution", "U", "--email", "nope")
    assert bad.returncode == 2 and "not an email address" in bad.stderr
    assert "Traceback" not in again.stderr + bad.stderr


def test_migrate_is_idempotent(tmp_path):
    env = base_env(tmp_path)
    assert run_cli(env, "migrate").returncode == 0
    second = run_cli(env, "migrate")
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(tmp_path / "keyrelease.sqlite3") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"api_key", "admin", "admin_token", "institution", "key_event", "outbox_message"} <= tables
