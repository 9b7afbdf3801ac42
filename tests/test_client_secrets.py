"""Client secrets are recognisable: ``krs_`` + 43 base62 characters + a CRC32 checksum in
base62. Scanner rules built from the pattern in docs/tokens.md find real secrets and almost
never a random look-alike; a mistyped secret is refused before any database work with the
same ``invalid_client``; secrets without the prefix (imported or minted before) keep working."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

from keyrelease import credentials
from keyrelease.db import fastpath
from keyrelease.models import ApiKey
from keyrelease.testing.api import released_key
from keyrelease.testing.tokens import request_token

DOCS = Path(__file__).parent.parent / "docs" / "tokens.md"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
INVALID_CLIENT = b'{"error": "invalid_client", "error_description": "Client authentication failed."}'


def documented(fence: str) -> str:
    """The first ```<fence> block of docs/tokens.md."""
    match = re.search(rf"```{fence}\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match, f"docs/tokens.md has no {fence} block"
    return match.group(1)


def gitleaks_rule() -> re.Pattern[str]:
    """The regex of the gitleaks rule in the docs (TOML, single-quoted literal string)."""
    match = re.search(r"^regex = '''(.*)'''$", documented("toml"), re.MULTILINE)
    assert match, "no regex in the gitleaks rule"
    return re.compile(match.group(1))


def trufflehog_rule() -> re.Pattern[str]:
    """The regex of the trufflehog custom detector in the docs (YAML, single-quoted)."""
    match = re.search(r"^\s+keyrelease_secret: '(.*)'$", documented("yaml"), re.MULTILINE)
    assert match, "no regex in the trufflehog detector"
    return re.compile(match.group(1).replace("''", "'"))


def found(rule: re.Pattern[str], text: str) -> list[str]:
    """What a scanner reports: the match's first group, kept only if the checksum holds (the
    step docs/tokens.md tells scanners to add)."""
    return [m.group(1) for m in rule.finditer(text) if credentials.is_client_secret(m.group(1))]


def test_a_new_secret_has_the_prefix_256_random_bits_and_a_valid_checksum():
    minted = [credentials.new_client_secret() for _ in range(2000)]
    assert len(set(minted)) == len(minted)
    for secret in minted:
        assert len(secret) == 53 and secret.startswith("krs_") and credentials.is_client_secret(secret)
        assert set(secret[4:]) <= set(BASE62)
    assert 43 * __import__("math").log2(62) >= 256
    # Every base62 character shows up in the random bodies, in every position range.
    bodies = "".join(s[4:47] for s in minted)
    assert set(bodies) == set(BASE62)


def test_changing_any_one_character_breaks_the_checksum():
    secret = credentials.new_client_secret()
    for position in range(4, len(secret)):
        for replacement in "0aZ":
            if secret[position] != replacement:
                typo = secret[:position] + replacement + secret[position + 1 :]
                assert not credentials.is_client_secret(typo) and credentials.is_mistyped_secret(typo)
    assert credentials.is_mistyped_secret(secret[:-1]) and credentials.is_mistyped_secret(secret + "0")
    assert not credentials.is_mistyped_secret("y" * 43)  # no prefix: not ours to judge


def test_scanner_rules_from_the_docs_find_real_secrets_in_context():
    secrets = [credentials.new_client_secret() for _ in range(5)]
    text = "\n".join(
        [
            f"KEYRELEASE_CLIENT_SECRET={secrets[0]}",
            f'{{"client_secret": "{secrets[1]}"}}',
            f"client_secret: '{secrets[2]}'",
            f"curl -u 'us-east-1#0b5e:{secrets[3]}' https://keys.example/ids/auth/login",
            f"secret = `{secrets[4]}`;",
        ]
    )
    for rule in (gitleaks_rule(), trufflehog_rule()):
        assert found(rule, text) == secrets
        # a secret inside a longer word is not a secret of ours
        assert found(rule, "x" + secrets[0] + "Z") == []


def test_random_strings_of_the_same_shape_almost_never_pass_the_checksum():
    """200,000 candidates shaped like a secret: the rules match every one, the checksum
    passes at most 1 in 10,000 (CRC32 in six base62 digits: expected 1 in 5.7×10¹⁰)."""
    rng = random.Random(18)
    n = 200_000
    rules = (gitleaks_rule(), trufflehog_rule())
    passed = 0
    for index in range(n):
        candidate = "krs_" + "".join(rng.choices(BASE62, k=49))
        if index % 1000 == 0:
            assert all(rule.search(f"token={candidate}\n") for rule in rules)
        passed += credentials.is_client_secret(candidate)
    assert passed <= n // 10_000
    print(f"random candidates passing the checksum: {passed} of {n}")
    # Same length without the prefix: the rules do not even match.
    for _ in range(1000):
        other = "".join(rng.choices(BASE62 + "_", k=53))
        if not other.startswith("krs_"):
            assert not any(rule.search(other) for rule in rules)


async def test_a_mistyped_secret_is_refused_without_a_lookup_and_with_the_same_answer(api, client, monkeypatch):
    ada = await api.admin()
    _, creds = await released_key(api, ada)
    secret = creds["clientSecret"]
    assert credentials.is_client_secret(secret)
    lookups: list[str] = []
    point_read, hit_and_read = fastpath.point_read, fastpath.hit_counters_and_read

    async def counted(read):  # type: ignore[no-untyped-def]  # the lookup on its own (SQLite)
        lookups.append(read.params[0])
        return await point_read(read)

    async def counted_carried(buckets, read):  # type: ignore[no-untyped-def]  # carried by the counters (PostgreSQL)
        counts, row = await hit_and_read(buckets, read)
        if row is not fastpath.NOT_READ:
            lookups.append(read.params[0])
        return counts, row

    monkeypatch.setattr(fastpath, "point_read", counted)
    monkeypatch.setattr(fastpath, "hit_counters_and_read", counted_carried)
    mistyped = secret[:10] + ("b" if secret[10] != "b" else "c") + secret[11:]
    typo = await request_token(client, creds["clientId"], mistyped)
    assert lookups == []
    wrong = await request_token(client, creds["clientId"], credentials.new_client_secret())
    assert lookups == [creds["clientId"]]
    for response in (typo, wrong):
        assert (response.status_code, response.content) == (401, INVALID_CLIENT)
        assert response.headers["www-authenticate"] == 'Basic realm="keyrelease"'
    assert {k: v for k, v in typo.headers.items() if k != "x-request-id"} == {
        k: v for k, v in wrong.headers.items() if k != "x-request-id"
    }
    assert (await request_token(client, creds["clientId"], secret)).status_code == 200


async def test_a_secret_minted_before_the_prefix_keeps_working(api, client):
    ada = await api.admin()
    key, creds = await released_key(api, ada)
    old_style = "Jx3q" + "-" * 2 + "k" * 37  # URL-safe base64 of 32 bytes, as secrets used to be
    await ApiKey.filter(id=key["id"]).update(secret_hash=credentials.hash_secret(old_style))
    assert (await request_token(client, creds["clientId"], old_style)).status_code == 200
    assert (await request_token(client, creds["clientId"], creds["clientSecret"])).status_code == 401
