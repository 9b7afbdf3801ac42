"""Admin tokens expire, can be revoked by value or id, and stop at once; `admin list` shows
ids and dates, never a token."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from keyrelease.models import AdminToken
from keyrelease.service.admins import AdminInputError, issue_token_for, list_admins, revoke_token
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env

ME = "{ me { email } }"


async def me(api, token: str) -> dict:
    return await api.gql(ME, token=token)


def unauthenticated(body: dict) -> bool:
    return body.get("data") is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_new_token_works_for_ninety_days_and_then_stops(api, clock):
    ada = await api.admin()
    row = await AdminToken.get(admin__email=ada.email)
    assert (row.created_at, row.expires_at) == (clock.now(), clock.now() + timedelta(days=90))
    clock.advance(days=90, seconds=-1)
    assert (await me(api, ada.token))["data"]["me"]["email"] == ada.email
    clock.advance(seconds=1)
    assert unauthenticated(await me(api, ada.token))


async def test_a_token_revoked_by_id_stops_with_the_very_next_request(api, clock):
    ada = await api.admin()
    assert (await me(api, ada.token))["data"]["me"]["email"] == ada.email
    row = await AdminToken.get(admin__email=ada.email)
    revoked = await revoke_token(clock, str(row.id))
    assert revoked.revoked_at == clock.now()
    assert unauthenticated(await me(api, ada.token))
    response = await api.post("mutation { createKey(input: {name: \"x\", kind: INSTITUTIONAL}) { __typename } }",
                              token=ada.token)
    assert unauthenticated(response.json())


async def test_a_token_revoked_by_value_stops_and_the_admins_other_tokens_keep_working(api, clock):
    ada = await api.admin()
    second = await issue_token_for(clock, "ADA@uni.example ")
    await revoke_token(clock, ada.token)
    assert unauthenticated(await me(api, ada.token))
    assert (await me(api, second))["data"]["me"]["email"] == ada.email


async def test_revoking_twice_keeps_the_first_time(api, clock):
    ada = await api.admin()
    first = await revoke_token(clock, ada.token)
    clock.advance(seconds=30)
    again = await revoke_token(clock, ada.token)
    assert again.revoked_at == first.revoked_at


async def test_revoke_refuses_what_is_not_a_token(api, clock):
    await api.admin()
    for bad in ("kra_not-a-real-token", "999999", "Bearer x", ""):
        with pytest.raises(AdminInputError):
            await revoke_token(clock, bad)


async def test_list_shows_token_ids_and_states_but_no_token(api, clock):
    ada = await api.admin()
    await issue_token_for(clock, ada.email, ttl_days=1)
    await revoke_token(clock, ada.token)
    (summary,) = await list_admins()
    assert (summary.email, summary.institution) == (ada.email, ada.institution)
    clock.advance(days=2)
    assert [t.state(clock.now()) for t in summary.tokens] == ["revoked", "expired"]
    assert ada.token not in repr(summary)


def test_the_admin_commands_from_the_shell(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_ADMIN_TOKEN_TTL_DAYS="30")
    created = run_cli(env, "admin", "create", "--institution", "Example U", "--email", "ada@uni.example")
    assert created.returncode == 0, created.stderr
    first = created.stdout.strip().splitlines()[-1]
    extra = run_cli(env, "admin", "token", "--email", "ada@uni.example", "--expires-days", "7")
    assert extra.returncode == 0, extra.stderr
    assert "valid 7 days" in extra.stdout
    second = extra.stdout.strip().splitlines()[-1]
    assert second.startswith("kra_") and second != first

    listed = run_cli(env, "admin", "list")
    assert listed.returncode == 0, listed.stderr
    assert "ada@uni.example\tExample U" in listed.stdout
    assert first not in listed.stdout and second not in listed.stdout
    token_lines = re.findall(r"token (\d+)\tactive\tcreated (\S+ \S+ UTC)\texpires (\S+ \S+ UTC)", listed.stdout)
    assert len(token_lines) == 2
    ids = [int(token_id) for token_id, _, _ in token_lines]

    by_id = run_cli(env, "admin", "revoke-token", str(ids[0]))
    assert by_id.returncode == 0, by_id.stderr
    by_value = run_cli(env, "admin", "revoke-token", second)
    assert by_value.returncode == 0, by_value.stderr
    assert run_cli(env, "admin", "list").stdout.count("\trevoked\t") == 2

    unknown = run_cli(env, "admin", "revoke-token", "424242")
    assert unknown.returncode == 2 and "no such token" in unknown.stderr
    bad_days = run_cli(env, "admin", "create", "--institution", "U", "--email", "b@u.example", "--expires-days", "0")
    assert bad_days.returncode == 2
