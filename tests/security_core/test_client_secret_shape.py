"""A client secret is recognised by its whole shape (prefix, 49 base62 characters) and its
checksum: a string of the right length in another alphabet or with another prefix is not
one, even when its checksum is right, and a short or long ``krs_`` string is a mistyped
secret the token endpoint may refuse without a lookup."""

from __future__ import annotations

from keyrelease import credentials
from keyrelease.credentials import CLIENT_SECRET_LENGTH, is_client_secret, is_mistyped_secret, secret_checksum


def with_checksum(body: str) -> str:
    return body + secret_checksum(body)


def test_a_minted_secret_is_recognised():
    secret = credentials.new_client_secret()
    assert len(secret) == CLIENT_SECRET_LENGTH and is_client_secret(secret)
    assert not is_mistyped_secret(secret)


def test_the_right_length_and_checksum_in_the_wrong_alphabet_or_prefix_is_not_a_secret():
    for body in ("krs_" + "-" * 43, "krs_" + "_" * 43, "abc_" + "A" * 43, "KRS_" + "A" * 43):
        text = with_checksum(body)
        assert len(text) == CLIENT_SECRET_LENGTH
        assert not is_client_secret(text), text


def test_a_krs_string_of_the_wrong_length_is_mistyped():
    secret = credentials.new_client_secret()
    for text in ("krs_", "krs_short", secret[:-1], secret + "A", with_checksum("krs_" + "A" * 42)):
        assert not is_client_secret(text), text
        assert is_mistyped_secret(text), text
