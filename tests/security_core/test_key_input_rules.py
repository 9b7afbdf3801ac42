"""createKey and verifyKey refuse bad input with a message that names the rule broken, at the exact
boundary the docs state, and creates nothing. (The frozen clock starts 2030-01-01T12:00Z;
a key may live at most 365 days; names at most 100 characters, partner names 200.)"""

from __future__ import annotations

import pytest

NOW = "2030-01-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "   "}, "name", "Name must not be empty."),
        ({"name": " \t "}, "name", "The name must not contain control characters (found U+0009)."),
        ({"name": "x" * 101}, "name", "Name must be at most 100 characters."),
        ({"name": "tab\tinside"}, "name", "The name must not contain control characters (found U+0009)."),
        ({"name": "del\x7finside"}, "name", "The name must not contain control characters (found U+007F)."),
        ({"expiresAt": "2030-06-01T00:00:00"}, "expiresAt", "The expiry date must include a time zone, e.g. 2031-01-01T00:00:00Z."),
        ({"expiresAt": NOW}, "expiresAt", "The expiry date must be in the future."),
        ({"expiresAt": "2031-01-01T12:00:01+00:00"}, "expiresAt", "The expiry date must be at most 365 days from now."),
        ({"kind": "PARTNER"}, "partnerEmail", "A partner key needs a valid partner email address."),
        ({"kind": "PARTNER", "partnerEmail": "p@acme"}, "partnerEmail", "A partner key needs a valid partner email address."),
        (
            {"kind": "PARTNER", "partnerEmail": "p" * 242 + "@acme.example"},  # 255 characters: one too many
            "partnerEmail",
            "A partner key needs a valid partner email address.",
        ),
        (
            {"kind": "PARTNER", "partnerEmail": "p@acme.example", "partnerName": "x" * 201},
            "partnerName",
            "The partner name must be at most 200 characters.",
        ),
        (
            {"kind": "PARTNER", "partnerEmail": "p@acme.example", "partnerName": "Acme\nInc"},
            "partnerName",
            "The partner name must not contain control characters (found U+000A).",
        ),
        (
            {"kind": "INSTITUTIONAL", "partnerName": "Acme"},
            "partnerEmail",
            "Only partner keys take a partner name and email.",
        ),
    ],
)
async def test_bad_key_input_names_the_rule_it_breaks(api, fields, field, message):
    ada = await api.admin()
    result = await api.create_key(ada, **fields)
    assert result == {"__typename": "ValidationError", "message": message, "field": field}
    assert api.mailbox.messages == []


@pytest.mark.parametrize(
    "fields",
    [
        {"expiresAt": "2030-01-01T12:00:01+00:00"},  # one second from now
        {"expiresAt": "2031-01-01T12:00:00+00:00"},  # exactly the longest lifetime
        {"kind": "PARTNER", "partnerEmail": "p@acme.example", "partnerName": "x" * 200},
        {"kind": "PARTNER", "partnerEmail": "p" * 241 + "@acme.example"},  # 254 characters: the longest address
        {"kind": "PARTNER", "partnerEmail": "  p@acme.example  "},
    ],
)
async def test_input_at_the_boundary_is_accepted(api, fields):
    ada = await api.admin()
    result = await api.create_key(ada, **fields)
    assert result["__typename"] == "ApiKey", result


async def test_names_and_partner_fields_are_stored_trimmed_and_absent_ones_stay_absent(api):
    ada = await api.admin()
    key = await api.create_key(
        ada, name="  Trimmed  ", kind="PARTNER", partnerEmail="  p@acme.example ", partnerName="  Acme  "
    )
    assert (key["name"], key["partnerEmail"], key["partnerName"]) == ("Trimmed", "p@acme.example", "Acme")
    blank = await api.create_key(ada, kind="PARTNER", partnerEmail="q@acme.example", partnerName="   ")
    assert blank["partnerName"] is None
    unnamed = await api.create_key(ada, kind="PARTNER", partnerEmail="r@acme.example")
    assert unnamed["partnerName"] is None
    institutional = await api.create_key(ada)
    assert (institutional["partnerName"], institutional["partnerEmail"]) == (None, None)


async def test_a_code_that_is_not_six_digits_names_the_rule(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    result = await api.verify(ada, key["id"], "12345")
    assert result == {"__typename": "ValidationError", "message": "The code is six digits, 0-9.", "field": "code"}
