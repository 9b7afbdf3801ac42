"""What parse_basic returns can be logged: its repr never holds the password, and an
unreadable header reads as MALFORMED."""

from __future__ import annotations

import base64

from keyrelease.oauth.basic import MALFORMED, BasicCredentials, parse_basic


def basic(user_password: str) -> list[str]:
    return ["Basic " + base64.b64encode(user_password.encode()).decode()]


def test_credentials_repr_names_the_client_and_hides_every_reading_of_the_password():
    parsed = parse_basic(basic("us-east-1#abc:p%2Bss+word"))
    assert isinstance(parsed, BasicCredentials)
    assert parsed.secrets == ("p+ss word", "p%2Bss+word")
    assert repr(parsed) == "BasicCredentials(client_id='us-east-1#abc', secrets=<hidden>)"


def test_an_unreadable_header_is_malformed_and_says_so():
    assert parse_basic(["Basic !!!"]) is MALFORMED
    assert repr(MALFORMED) == "MALFORMED" and str(MALFORMED) == "MALFORMED"
