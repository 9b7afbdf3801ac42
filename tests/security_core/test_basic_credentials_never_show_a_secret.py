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


def test_a_password_is_read_once_when_form_decoding_leaves_it_unchanged():
    parsed = parse_basic(basic("us-east-1#abc:plain-secret"))
    assert isinstance(parsed, BasicCredentials) and parsed.secrets == ("plain-secret",)


def test_a_password_may_contain_colons_the_client_id_may_not():
    parsed = parse_basic(basic("us-east-1#abc:pa:ss:word"))
    assert isinstance(parsed, BasicCredentials)
    assert (parsed.client_id, parsed.secrets) == ("us-east-1#abc", ("pa:ss:word",))


def test_a_header_of_1024_characters_is_read_and_a_longer_one_is_malformed():
    at_limit = basic("id:" + "s" * (768 - 3))  # 768 bytes -> 1024 base64 characters
    assert len(at_limit[0]) == len("Basic ") + 1024
    assert isinstance(parse_basic(at_limit), BasicCredentials)
    assert parse_basic(basic("id:" + "s" * (771 - 3))) is MALFORMED  # 1028 characters


def test_base64_with_characters_outside_its_alphabet_is_malformed():
    encoded = base64.b64encode(b"us-east-1#abc:secret").decode()
    assert parse_basic([f"Basic {encoded[:4]}*{encoded[4:]}"]) is MALFORMED


def test_a_percent_escape_that_is_not_utf_8_is_malformed_in_either_part():
    assert parse_basic(basic("us-east-1#abc:secret%FF")) is MALFORMED
    assert parse_basic(basic("us-east-1#abc%FF:secret")) is MALFORMED
