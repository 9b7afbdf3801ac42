"""A request may test one secret: a second verifyKey/resendCode/revealKey field, however many
follow, gets exactly one TOO_MANY_GUESSES error that points at it; other fields are not
counted."""

from __future__ import annotations

MESSAGE = "At most one verifyKey, resendCode or revealKey field is allowed per request."


async def test_three_guesses_get_one_error_pointing_at_the_second(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    query = """mutation($id: ID!) {
  a: verifyKey(input: {keyId: $id, code: "000000"}) { __typename }
  b: revealKey(input: {keyId: $id}) { __typename }
  c: resendCode(input: {keyId: $id}) { __typename }
}"""
    body = await api.gql(query, {"id": key["id"]}, ada.token)
    assert body.get("data") is None
    assert body["errors"] == [
        {"message": MESSAGE, "locations": [{"line": 3, "column": 3}], "extensions": {"code": "TOO_MANY_GUESSES"}}
    ]
    after = await api.key(ada, key["id"])
    assert (after["attemptsRemaining"], after["resendsRemaining"]) == (5, 3)


async def test_one_guess_beside_other_fields_runs(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    code = await api.code_for(ada)
    query = """mutation($id: ID!, $code: String!) {
  verifyKey(input: {keyId: $id, code: $code}) { __typename }
  revokeKey(input: {keyId: "not-a-key"}) { __typename }
}"""
    body = await api.gql(query, {"id": key["id"], "code": code}, ada.token)
    assert "errors" not in body, body
    assert body["data"] == {"verifyKey": {"__typename": "ApiKey"}, "revokeKey": {"__typename": "KeyNotFoundError"}}
