"""Control characters in any string input are refused with a clear error, as data, and nothing
is written: createKey's names and partner email, every keyId, the code, the one-time password,
the ``key(id)`` query, and the CLI's admin email and institution.

Everything goes through the real HTTP stack (GraphQL over the ASGI app) or the real CLI, and
what rests in the database is compared row by row before and after.
"""

from __future__ import annotations

import sqlite3

import dbutil
import pytest

from keyrelease.testing.api import KEY_FIELDS
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env

PARTNER = {"kind": "PARTNER", "partnerName": "Acme Analytics", "partnerEmail": "keys@acme.example"}

#: C0 (NUL, BEL, TAB, LF, CR, ESC), DEL, C1 (NEL, CSI), a line separator, a bidi override.
CONTROLS = ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u202e"]

#: Each table the service writes, and what of it a request decides (the dispatcher goes on
#: updating the delivery columns of queued mail meanwhile).
WRITTEN = {
    "institution": "*",
    "admin": "*",
    "admin_token": "*",
    "api_key": "*",
    "key_event": "*",
    "outbox_message": "id, key_id, kind, recipient, payload",
}

RESEND = f"""
mutation($input: ResendCodeInput!) {{
  resendCode(input: $input) {{ __typename ... on ApiKey {{ {KEY_FIELDS} }} ... on Error {{ message }} ... on ValidationError {{ field }} }}
}}"""
REVEAL = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) { __typename ... on KeyCredentials { clientId } ... on Error { message } ... on ValidationError { field } }
}"""
REVOKE = f"""
mutation($input: RevokeKeyInput!) {{
  revokeKey(input: $input) {{ __typename ... on ApiKey {{ {KEY_FIELDS} }} ... on Error {{ message }} ... on ValidationError {{ field }} }}
}}"""


async def rows(database_url: str) -> dict[str, list[dict]]:
    """What the service has written, table by table (rate-limit counters aside)."""
    return {t: await dbutil.query(database_url, f"SELECT {columns} FROM {t} ORDER BY 1") for t, columns in WRITTEN.items()}


#: The words of the console's forms, which the messages use (``field`` keeps the API name).
LABELS = {
    "name": "The name",
    "partnerName": "The partner name",
    "partnerEmail": "The partner email address",
    "keyId": "The key id",
    "code": "The verification code",
    "oneTimePassword": "The one-time password",
}


def refused(result: dict, field: str, character: str) -> bool:
    return result == {
        "__typename": "ValidationError",
        "field": field,
        "message": f"{LABELS[field]} must not contain control characters (found U+{ord(character):04X}).",
    }


# --- createKey ------------------------------------------------------------------------------


async def test_a_partner_email_with_a_terminal_escape_is_refused_and_nothing_is_written(api, settings):
    ada = await api.admin()
    before = await rows(settings.database_url)

    result = await api.create_key(ada, name="Export", **{**PARTNER, "partnerEmail": "owned\x1b[2J@partner.example"})

    assert refused(result, "partnerEmail", "\x1b")
    assert await rows(settings.database_url) == before
    assert api.mailbox.messages == []


@pytest.mark.parametrize("character", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Export{}nightly"), ("partnerName", "Acme{}Analytics"), ("partnerEmail", "keys{}@acme.example")],
)
async def test_every_create_key_string_refuses_every_control_character(api, settings, field, value, character):
    ada = await api.admin()
    before = await rows(settings.database_url)

    result = await api.create_key(ada, **{"name": "Export", **PARTNER, field: value.format(character)})

    assert refused(result, field, character), result
    assert await rows(settings.database_url) == before


async def test_a_control_character_at_the_end_of_a_name_is_refused_not_trimmed_away(api, settings):
    ada = await api.admin()

    result = await api.create_key(ada, name="Export\n")

    assert refused(result, "name", "\n")
    assert await dbutil.query(settings.database_url, "SELECT id FROM api_key") == []


async def test_printable_unicode_names_are_still_accepted(api):
    ada = await api.admin()

    key = await api.create_key(ada, name="Zürich – 東京 export", kind="PARTNER", partnerName="Ærø Ltd", partnerEmail="keys@acme.example")

    assert key["__typename"] == "ApiKey" and key["name"] == "Zürich – 東京 export"


# --- the key's id, the code, the one-time password ------------------------------------------


async def test_a_correct_code_with_a_trailing_newline_is_refused_and_costs_no_attempt(api, settings):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    before = await rows(settings.database_url)

    result = await api.verify(ada, key["id"], code + "\n")

    assert refused(result, "code", "\n")
    assert await rows(settings.database_url) == before
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x9b"], ids=lambda c: f"U+{ord(c):04X}")
async def test_every_key_id_refuses_control_characters_and_changes_nothing(api, settings, character):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada)
    bad_id = key["id"] + character
    before = await rows(settings.database_url)

    verify = await api.verify(ada, bad_id, code)
    resend = (await api.data(RESEND, {"input": {"keyId": bad_id}}, ada.token))["resendCode"]
    reveal = (await api.data(REVEAL, {"input": {"keyId": bad_id}}, ada.token))["revealKey"]
    revoke = (await api.data(REVOKE, {"input": {"keyId": bad_id}}, ada.token))["revokeKey"]

    assert [refused(r, "keyId", character) for r in (verify, resend, reveal, revoke)] == [True] * 4, [verify, resend, reveal, revoke]
    assert await rows(settings.database_url) == before


async def test_a_one_time_password_with_a_nul_is_refused_and_counts_no_partner_attempt(api, settings):
    ada = await api.admin()
    key, code = await api.create_key_with_code(ada, **PARTNER)
    assert (await api.verify(ada, key["id"], code))["status"] == "ACTIVE"
    otp = await api.otp_for(PARTNER["partnerEmail"])
    before = await rows(settings.database_url)

    result = (await api.data(REVEAL, {"input": {"keyId": key["id"], "oneTimePassword": otp + "\x00"}}))["revealKey"]

    assert refused(result, "oneTimePassword", "\x00")
    assert await rows(settings.database_url) == before
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "KeyCredentials"


async def test_the_key_query_refuses_an_id_with_a_control_character_as_bad_user_input(api):
    ada = await api.admin()
    key = await api.create_key(ada)

    body = await api.gql("query($id: ID!) { key(id: $id) { id } }", {"id": key["id"] + "\x1b"}, ada.token)

    assert body["data"] == {"key": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "id must not contain control characters (found U+001B)."


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--email", "ada\x1b[2J@uni.example", "email must not contain control characters (found U+001B)"),
        ("--email", "ada@uni.example\t", "email must not contain control characters (found U+0009)"),
        ("--institution", "Example\x07 University", "institution must not contain control characters (found U+0007)"),
        ("--name", "Ada\x9b31m", "name must not contain control characters (found U+009B)"),
    ],
)
def test_admin_create_refuses_control_characters_and_creates_nothing(tmp_path, option, value, named):
    env = base_env(tmp_path)
    args = {"--institution": "Example University", "--email": "ada@uni.example", "--name": "Ada", option: value}

    done = run_cli(env, "admin", "create", *[part for pair in args.items() for part in pair])

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: {named}"
    assert "\x1b" not in done.stderr + done.stdout
    with sqlite3.connect(tmp_path / "keyrelease.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM admin").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM institution").fetchone() == (0,)


# --- lone surrogates: JSON can carry them, no encoder accepts them ----------------------------


async def test_a_lone_surrogate_in_an_anonymous_document_is_no_server_error(client):
    body = '{"query": "{ serverTime } #\\ud800"}'  # the JSON escape, as a client can send it
    response = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    [error] = response.json()["errors"]  # graphql-core's lexer refuses it: a client's error, not ours
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", error


async def test_a_name_with_a_lone_surrogate_is_refused_as_input_and_nothing_is_written(api, client, settings):
    ada = await api.admin()
    before = await rows(settings.database_url)
    body = (
        '{"query": "mutation($input: CreateKeyInput!) { createKey(input: $input) { __typename '
        '... on ValidationError { field message } } }", '
        '"variables": {"input": {"name": "Export \\ud800", "kind": "INSTITUTIONAL"}}}'
    )
    response = await client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {ada.token}"}
    )
    assert response.json()["data"]["createKey"] == {
        "__typename": "ValidationError",
        "field": "name",
        "message": "The name must not contain control characters (found U+D800).",
    }
    assert await rows(settings.database_url) == before
