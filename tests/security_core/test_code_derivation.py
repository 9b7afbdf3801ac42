"""Verification codes and partner OTPs are what keyrelease.codes documents, computed here
independently (RFC 4226 by hand, HMAC-SHA256 key derivation): a code already mailed must
still work after an upgrade or on another instance, so the derivation is a contract, not an
implementation detail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid

import pytest

from keyrelease import codes

SECRET = b"server-secret-for-derivation-tests-0123456789"
KEYS = [uuid.UUID(int=0), uuid.UUID("0b7c1e8a-4f7e-4a52-9d0e-6c1b2a3f4d5e"), uuid.UUID(int=2**128 - 1)]


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 over the 8-byte counter, dynamic truncation."""
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    binary = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def derived(purpose: bytes, key_id: uuid.UUID) -> bytes:
    return hmac.new(SECRET, purpose + b"\x00" + key_id.bytes, hashlib.sha256).digest()


def test_our_hotp_matches_the_rfc_4226_test_vectors() -> None:
    secret = b"12345678901234567890"
    assert [hotp(secret, counter) for counter in range(4)] == ["755224", "287082", "359152", "969429"]


@pytest.mark.parametrize("key_id", KEYS)
@pytest.mark.parametrize("generation", [0, 1, 2, 7])
def test_a_verification_code_is_hotp_of_the_key_secret_at_its_generation(key_id: uuid.UUID, generation: int) -> None:
    expected = hotp(derived(b"verification-code", key_id), generation)
    assert codes.verification_code(SECRET, key_id, generation) == expected
    assert codes.code_matches(SECRET, key_id, generation, expected)


def test_a_code_is_six_digits_and_another_generation_or_key_does_not_match() -> None:
    key_id = KEYS[1]
    code = codes.verification_code(SECRET, key_id, 3)
    assert codes.CODE_PATTERN.match(code)
    others = {codes.verification_code(SECRET, key_id, g) for g in (2, 4)} | {codes.verification_code(SECRET, KEYS[0], 3)}
    for other in others - {code}:
        assert not codes.code_matches(SECRET, key_id, 3, other)
    assert codes.verification_code(b"another-server-secret-0123456789abcdef", key_id, 3) != code


@pytest.mark.parametrize("key_id", KEYS)
def test_a_partner_otp_is_80_bits_of_the_key_hmac_in_base32_groups_of_four(key_id: uuid.UUID) -> None:
    raw = base64.b32encode(derived(b"partner-otp", key_id)[:10]).decode()
    assert len(raw) == 16
    expected = "-".join([raw[0:4], raw[4:8], raw[8:12], raw[12:16]])
    assert codes.partner_otp(SECRET, key_id) == expected


def test_codes_and_otps_use_separate_derivations() -> None:
    key_id = KEYS[1]
    otp_bytes = base64.b32decode(codes.partner_otp(SECRET, key_id).replace("-", ""))
    assert otp_bytes == derived(b"partner-otp", key_id)[:10]
    assert otp_bytes != derived(b"verification-code", key_id)[:10]


def test_a_typed_otp_is_read_whatever_its_case_spaces_and_dashes() -> None:
    key_id = KEYS[1]
    otp = codes.partner_otp(SECRET, key_id)
    plain = otp.replace("-", "")
    for typed in (otp, plain, otp.lower(), f"  {plain[:8]} {plain[8:]} ", "-".join(plain)):
        assert codes.normalize_otp(typed) == plain
        assert codes.otp_matches(SECRET, key_id, typed)
    assert not codes.otp_matches(SECRET, KEYS[0], otp)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "ABCD-EFGH-IJKL-MNO",  # 15 characters
        "ABCD-EFGH-IJKL-MNOPQ",  # 17 characters
        "ABCD-EFGH-IJKL-MN01",  # 0 and 1 are not base32
        "ABCD-EFGH-IJKL-MN8P",  # nor is 8
        "ABCD-EFGH-IJKL-MN?P",
        "ABCD_EFGH_IJKL_MNOP",  # underscores are not separators
    ],
)
def test_what_cannot_be_an_otp_normalizes_to_nothing_and_never_matches(typed: str) -> None:
    assert codes.normalize_otp(typed) is None
    assert not codes.otp_matches(SECRET, KEYS[1], typed)
