"""keyrelease keys import-legacy: keys from before verified release, all or nothing."""

from __future__ import annotations

import io
import json
import os
import pty
import sqlite3
import subprocess
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import jwt
import pytest

from keyrelease.cli import ProgressBar
from keyrelease.credentials import hash_secret
from keyrelease.models import ApiKey, Institution, KeyEvent
from keyrelease.service.legacy import ImportDone, ImportRejected, import_legacy
from keyrelease.testing.processes import KEYRELEASE, run_cli
from keyrelease.testing.settings import base_env
from keyrelease.testing.tokens import request_token

KEYS_QUERY = "{ keys(first: 50) { edges { node { id name clientId status legacy revealed lastUsedAt verificationDeadline } } } }"


def client_id() -> str:
    return f"us-east-1#{uuid.uuid4()}"


def record(**fields) -> dict:
    fields.setdefault("institution", "Example University")
    fields.setdefault("name", "Old nightly export")
    fields.setdefault("client_id", client_id())
    if "secret" not in fields and "secret_sha256" not in fields:
        fields["secret_sha256"] = hash_secret("legacy-" + fields["client_id"])
    fields.setdefault("created_at", "2024-03-01T09:00:00Z")
    fields.setdefault("expires_at", None)
    return fields


def jsonl(*records: dict | str) -> list[bytes]:
    return [(r if isinstance(r, str) else json.dumps(r)).encode() for r in records]


@pytest.fixture
def good_file() -> tuple[list[bytes], dict[str, str]]:
    """Three keys: a hashed secret, a plain one, one for a new institution; and their secrets."""
    first, second, third = client_id(), client_id(), client_id()
    secrets = {first: "legacy-" + first, second: "s3cret+with/odd%chars==", third: "legacy-" + third}
    lines = jsonl(
        record(client_id=first, name="Warehouse sync"),
        record(client_id=second, secret=secrets[second], expires_at="2031-01-01T00:00:00+00:00"),
        "",
        record(client_id=third, institution="Old College", created_at="2023-05-05T10:00:00+02:00"),
    )
    return lines, secrets


async def counts() -> tuple[int, int, int]:
    return await ApiKey.all().count(), await Institution.all().count(), await KeyEvent.all().count()


async def test_a_good_file_imports_active_legacy_keys_that_get_tokens(api, client, clock, good_file):
    lines, secrets = good_file
    ada = await api.admin()

    result = await import_legacy(clock, lines)

    assert result == ImportDone(imported=3, unchanged=0)
    assert await Institution.filter(name="Old College").exists()
    nodes = [e["node"] for e in (await api.data(KEYS_QUERY, token=ada.token))["keys"]["edges"]]
    assert len(nodes) == 2 and all(n["legacy"] and n["status"] == "ACTIVE" and n["revealed"] for n in nodes)
    assert all(n["verificationDeadline"] is None for n in nodes)
    row = await ApiKey.get(client_id=next(iter(secrets)))
    assert row.created_by_id is None and row.verified_at == row.created_at == row.revealed_at
    assert row.created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for cid, secret in secrets.items():
        response = await request_token(client, cid, secret)
        assert response.status_code == 200, (cid, response.text)
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["institution"] == "Old College"


async def test_a_legacy_secret_with_plus_or_percent_works_raw_or_form_encoded(api, client, clock, good_file):
    lines, secrets = good_file
    await import_legacy(clock, lines)
    cid, secret = list(secrets.items())[1]
    assert (await request_token(client, cid, secret)).status_code == 200
    assert (await request_token(client, quote(cid, safe=""), quote(secret, safe=""))).status_code == 200
    assert (await request_token(client, cid, secret.replace("+", " "))).status_code == 401


async def test_importing_the_same_file_again_changes_nothing(api, clock, good_file):
    lines, _ = good_file
    await import_legacy(clock, lines)
    before = await counts()
    rows_before = await ApiKey.all().order_by("client_id").values()
    clock.advance(days=1)

    again = await import_legacy(clock, lines)

    assert again == ImportDone(imported=0, unchanged=3)
    assert await counts() == before
    assert await ApiKey.all().order_by("client_id").values() == rows_before


async def test_an_expired_legacy_key_is_imported_but_refused(api, client, clock):
    cid = client_id()
    await import_legacy(clock, jsonl(record(client_id=cid, secret="old-secret", expires_at="2025-01-01T00:00:00Z")))
    response = await request_token(client, cid, "old-secret")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_an_exact_repeat_within_the_file_is_imported_once(api, clock):
    line = record()
    assert await import_legacy(clock, jsonl(line, line)) == ImportDone(imported=1, unchanged=0)


BAD_LINES = {
    "broken JSON": ('{"institution": "X", ', "not valid JSON"),
    "not an object": ("[1, 2, 3]", "not a JSON object"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "missing field": (json.dumps({k: v for k, v in record().items() if k != "client_id"}), "missing field client_id"),
    "missing expires_at": (json.dumps({k: v for k, v in record().items() if k != "expires_at"}), "missing field expires_at"),
    "unknown field": (json.dumps(record(owner="bob")), "unknown field owner"),
    "bad client_id": (json.dumps(record(client_id="not-a-client-id")), "client_id must look like"),
    "client_id without region": (json.dumps(record(client_id=str(uuid.uuid4()))), "client_id must look like"),
    "no secret": (json.dumps({k: v for k, v in record().items() if k != "secret_sha256"}), "exactly one of"),
    "both secrets": (json.dumps(record(secret="a", secret_sha256=hash_secret("a"))), "exactly one of"),
    "bad hash": (json.dumps(record(secret_sha256="abc")), "64 hexadecimal"),
    "krs_ secret failing its checksum": (json.dumps(record(secret="krs_" + "a" * 49)), "reserved for secrets keyrelease mints"),
    "naive time": (json.dumps(record(created_at="2024-03-01T09:00:00")), "time zone"),
    "not a time": (json.dumps(record(created_at="yesterday")), "ISO 8601"),
    "future": (json.dumps(record(created_at="2099-01-01T00:00:00Z")), "in the future"),
    "expires before created": (json.dumps(record(expires_at="2020-01-01T00:00:00Z")), "after created_at"),
    "empty name": (json.dumps(record(name="  ")), "name must be a non-empty string"),
    "long name": (json.dumps(record(name="n" * 101)), "name must be at most 100"),
    "not UTF-8": (b'{"institution": "\xff"}', "not UTF-8"),
}


@pytest.mark.parametrize("kind", BAD_LINES)
async def test_a_bad_line_is_reported_by_number_and_nothing_is_imported(api, clock, kind):
    bad, problem = BAD_LINES[kind]
    before = await counts()
    lines = jsonl(record(), record(institution="Brand New College"), "")
    lines.append(bad if isinstance(bad, bytes) else bad.encode())
    lines.append(json.dumps(record()).encode())

    result = await import_legacy(clock, lines)

    assert isinstance(result, ImportRejected)
    assert len(result.problems) == 1 and result.problems[0].startswith("line 4: "), result.problems
    assert problem in result.problems[0]
    assert await counts() == before
    assert not await Institution.filter(name="Brand New College").exists()


async def test_a_duplicate_client_id_with_another_secret_in_the_file_names_both_lines(api, clock):
    cid = client_id()
    lines = jsonl(record(client_id=cid, secret="one"), record(), record(client_id=cid, secret="two"))
    result = await import_legacy(clock, lines)
    assert result == ImportRejected([f"line 3: client_id {cid} also on line 1 with a different secret"])
    assert await ApiKey.all().count() == 0


async def test_a_client_id_already_in_the_database_with_another_secret_rejects_the_file(api, clock):
    cid = client_id()
    await import_legacy(clock, jsonl(record(client_id=cid, secret="one")))
    before = await counts()
    result = await import_legacy(clock, jsonl(record(), record(institution="Brand New College"), record(client_id=cid, secret="two")))
    assert result == ImportRejected([f"line 3: client_id {cid} already exists with a different secret"])
    assert await counts() == before


async def test_a_key_minted_by_verified_release_cannot_be_overwritten_by_an_import(api, clock):
    ada = await api.admin()
    key = await api.create_key(ada)
    result = await import_legacy(clock, jsonl(record(client_id=key["clientId"], secret="guess")))
    assert result == ImportRejected([f"line 1: client_id {key['clientId']} already exists with a different secret"])


async def test_every_bad_line_is_reported_not_only_the_first(api, clock):
    result = await import_legacy(clock, jsonl("{", record(), "[]", "nope"))
    assert [p.split(":")[0] for p in result.problems] == ["line 1", "line 3", "line 4"]


async def test_problems_never_repeat_a_secret(api, clock):
    cid = client_id()
    result = await import_legacy(clock, jsonl(record(client_id=cid, secret="hunter2-secret"), record(client_id=cid, secret="other-secret")))
    assert "hunter2" not in "".join(result.problems) and "other-secret" not in "".join(result.problems)


# -- the command ---------------------------------------------------------------------------


def cli_env(tmp_path) -> dict[str, str]:
    return base_env(tmp_path, KEYRELEASE_MAIL_TRANSPORT="console")


def test_the_cli_imports_reports_and_is_idempotent(tmp_path):
    env = cli_env(tmp_path)
    assert run_cli(env, "migrate").returncode == 0
    good = tmp_path / "legacy.jsonl"
    good.write_bytes(b"\n".join(jsonl(record(), record(institution="Old College"))) + b"\n")

    first = run_cli(env, "keys", "import-legacy", str(good))
    assert first.returncode == 0, first.stderr
    assert "imported 2 legacy keys; 0 already present" in first.stdout
    again = run_cli(env, "keys", "import-legacy", str(good))
    assert again.returncode == 0 and "imported 0 legacy keys; 2 already present" in again.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(jsonl(record(), "{broken", record(client_id="nope"))))
    rejected = run_cli(env, "keys", "import-legacy", str(bad))
    assert rejected.returncode == 1
    assert f"{bad}: line 2: not valid JSON" in rejected.stderr
    assert f"{bad}: line 3: client_id must look like" in rejected.stderr
    assert "nothing imported" in rejected.stderr and "Traceback" not in rejected.stderr
    with sqlite3.connect(tmp_path / "keyrelease.sqlite3") as conn:
        rows = conn.execute("SELECT legacy, verified_at IS NOT NULL, revealed_at IS NOT NULL FROM api_key").fetchall()
    assert rows == [(1, 1, 1), (1, 1, 1)]

    missing = run_cli(env, "keys", "import-legacy", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_the_cli_shows_a_progress_bar_on_a_terminal_for_a_large_file(tmp_path):
    env = cli_env(tmp_path)
    assert run_cli(env, "migrate").returncode == 0
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"\n".join(jsonl(*(record() for _ in range(ProgressBar.MIN_TOTAL)))))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [KEYRELEASE, "keys", "import-legacy", str(big)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    stdout, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    assert f"imported {ProgressBar.MIN_TOTAL} legacy keys".encode() in stdout
    assert b"checking" in terminal and b"importing" in terminal and b"100%" in terminal


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    env = cli_env(tmp_path)
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"\n".join(jsonl(*(record() for _ in range(ProgressBar.MIN_TOTAL)))))
    result = run_cli(env, "keys", "import-legacy", str(big))
    assert result.returncode == 0, result.stderr
    assert "%" not in result.stderr


def test_the_progress_bar_redraws_only_when_the_percentage_moves():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for done in range(1, 2001):
        bar.update("checking", done, 2000)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 101 and text.endswith("100% 2000/2000\n")

