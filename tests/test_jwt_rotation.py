"""Signing keys: from config or a development key in var/, and rotation through the JWKS."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keyrelease.app import create_app
from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.oauth.signing_keys import (
    DEVELOPMENT_KEY_NAME,
    development_key,
    generate_private_key_pem,
    public_key_pem,
    thumbprint,
)
from keyrelease.testing.api import released_key, running_app
from keyrelease.testing.settings import base_env
from keyrelease.testing.tokens import request_token


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def kid_of(private_pem: bytes) -> str:
    return thumbprint(serialization.load_pem_private_key(private_pem, password=None).public_key())


async def jwks(api) -> dict[str, jwt.PyJWK]:
    keys = (await api.client.get("/.well-known/jwks.json")).json()["keys"]
    return {key["kid"]: jwt.PyJWK(key) for key in keys}


def verify(token: str, published: dict[str, jwt.PyJWK], settings: Settings) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    if kid not in published:
        raise LookupError(kid)
    key = published[kid]
    return jwt.decode(token, key, algorithms=[key.algorithm_name], audience=settings.jwt_audience)


async def token_for(api, creds: dict) -> str:
    response = await request_token(api.client, creds["clientId"], creds["clientSecret"])
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def test_rotation_publish_then_sign_then_retire(settings, clock, tmp_path):
    old_pem, new_pem = generate_private_key_pem(), generate_private_key_pem()
    old, new = write(tmp_path / "old.pem", old_pem), write(tmp_path / "new.pem", new_pem)
    new_public = write(tmp_path / "new.pub.pem", public_key_pem(new_pem))
    old_public = write(tmp_path / "old.pub.pem", public_key_pem(old_pem))

    # Before: the old key signs and is the only key published.
    before = replace(settings, jwt_private_key_file=old)
    async with running_app(before, clock) as api:
        ada = await api.admin()
        _, creds = await released_key(api, ada)
        old_token = await token_for(api, creds)
        assert set(await jwks(api)) == {kid_of(old_pem)}

    # Step 1, publish: the next key appears in the JWKS but signs nothing yet.
    published = replace(settings, jwt_private_key_file=old, jwt_public_key_files=(new_public,))
    async with running_app(published, clock) as api:
        assert set(await jwks(api)) == {kid_of(old_pem), kid_of(new_pem)}
        assert jwt.get_unverified_header(await token_for(api, creds))["kid"] == kid_of(old_pem)

    # Step 2, sign: the new key signs; the old kid stays so tokens already issued still verify.
    signing = replace(settings, jwt_private_key_file=new, jwt_public_key_files=(old_public,))
    async with running_app(signing, clock) as api:
        new_token = await token_for(api, creds)
        assert jwt.get_unverified_header(new_token)["kid"] == kid_of(new_pem)
        published_keys = await jwks(api)
        assert verify(old_token, published_keys, settings)["sub"] == creds["clientId"]
        assert verify(new_token, published_keys, settings)["sub"] == creds["clientId"]

    # Step 3, retire once the old key's last token has expired: only the new kid remains.
    clock.advance(seconds=settings.token_ttl_seconds + 1)
    retired = replace(settings, jwt_private_key_file=new)
    async with running_app(retired, clock) as api:
        published_keys = await jwks(api)
        assert set(published_keys) == {kid_of(new_pem)}
        with pytest.raises(LookupError):
            verify(old_token, published_keys, settings)


async def test_an_rsa_key_signs_rs256(settings, clock, tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    async with running_app(replace(settings, jwt_private_key_file=write(tmp_path / "rsa.pem", pem)), clock) as api:
        _, creds = await released_key(api, await api.admin())
        token = await token_for(api, creds)
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        assert verify(token, await jwks(api), settings)["institution"] == "Example University"


async def test_issuer_audience_ttl_and_scope_come_from_the_environment(tmp_path, settings, clock):
    env = base_env(
        tmp_path,
        KEYRELEASE_DATABASE_URL=settings.database_url,
        KEYRELEASE_JWT_ISSUER="https://keys.example.org",
        KEYRELEASE_JWT_AUDIENCE="https://data.example.org",
        KEYRELEASE_TOKEN_TTL_SECONDS="600",
        KEYRELEASE_TOKEN_SCOPE="  data:read   data:export ",
    )
    settings = Settings.from_env(env)
    async with running_app(settings, clock) as api:
        _, creds = await released_key(api, await api.admin())
        response = (await request_token(api.client, creds["clientId"], creds["clientSecret"])).json()
        assert response["expires_in"] == 600 and response["scope"] == "data:read data:export"
        claims = verify(response["access_token"], await jwks(api), settings)
        assert claims["iss"] == "https://keys.example.org" and claims["aud"] == "https://data.example.org"
        assert claims["exp"] - claims["iat"] == 600


# -- the development key ---------------------------------------------------------------


def test_the_development_key_is_generated_once_into_var_with_mode_0600(settings, clock):
    key_file = settings.var_dir / DEVELOPMENT_KEY_NAME
    assert not key_file.exists()
    first = create_app(settings, clock=clock).state.services.issuer.key_ring.signing.kid
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = create_app(settings, clock=clock).state.services.issuer.key_ring.signing.kid
    assert first == second


def test_parallel_first_runs_agree_on_one_development_key(tmp_path):
    var_dir = tmp_path / "var"
    kids: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        kids.append(thumbprint(development_key(var_dir).public_key()))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1 and len(kids) == 8
    assert os.listdir(var_dir) == [DEVELOPMENT_KEY_NAME]


# -- bad configuration fails at start-up, naming the variable --------------------------


def test_production_requires_a_signing_key(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_ENV="production")
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == "KEYRELEASE_JWT_PRIVATE_KEY_FILE"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEYRELEASE_JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
        ("KEYRELEASE_JWT_PUBLIC_KEY_FILES", "/nonexistent/old.pem"),
        ("KEYRELEASE_TOKEN_TTL_SECONDS", "ten"),
        ("KEYRELEASE_TOKEN_TTL_SECONDS", "10"),
        ("KEYRELEASE_TOKEN_TTL_SECONDS", "999999"),
        ("KEYRELEASE_TOKEN_SCOPE", 'data "read"'),
        ("KEYRELEASE_JWT_ISSUER", "https://keys example.org"),
        ("KEYRELEASE_JWT_AUDIENCE", "x" * 300),
        ("KEYRELEASE_LAST_USED_FLUSH_SECONDS", "0"),
    ],
)
def test_bad_token_settings_name_their_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(base_env(tmp_path, **{variable: value}))
    assert err.value.variable == variable


@pytest.mark.parametrize(
    ("variable", "content"),
    [
        ("KEYRELEASE_JWT_PRIVATE_KEY_FILE", b"not a key"),
        ("KEYRELEASE_JWT_PRIVATE_KEY_FILE", "public"),
        ("KEYRELEASE_JWT_PRIVATE_KEY_FILE", "encrypted"),
        ("KEYRELEASE_JWT_PRIVATE_KEY_FILE", "rsa1024"),
        ("KEYRELEASE_JWT_PUBLIC_KEY_FILES", b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n"),
    ],
)
def test_an_unusable_key_file_fails_app_creation_naming_its_variable(settings, clock, tmp_path, variable, content):
    pem = generate_private_key_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    if content == "public":
        content = public_key_pem(pem)
    elif content == "encrypted":
        content = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
    elif content == "rsa1024":
        content = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    path = write(tmp_path / "bad.pem", content)
    env = base_env(tmp_path, **{variable: str(path)})
    with pytest.raises(ConfigError) as err:
        create_app(Settings.from_env(env), clock=clock)
    assert err.value.variable == variable
    assert "BEGIN" not in str(err.value)
