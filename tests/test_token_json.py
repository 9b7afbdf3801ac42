"""The token endpoint writes its JSON by hand (:func:`keyrelease.oauth.tokens.claims_json`,
:func:`keyrelease.oauth.endpoints.granted_json`): byte for byte what
``json.dumps(..., separators=(",", ":"))`` writes, for any text a key's institution, a client
ID or the configuration can hold (control characters, quotes, backslashes, non-ASCII, astral
characters, lone surrogates)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from keyrelease.oauth.endpoints import granted_json
from keyrelease.oauth.tokens import AccessToken, claims_json

TEXT = st.text(alphabet=st.characters(codec=None), max_size=40)  # every code point, surrogates too
SECONDS = st.integers(min_value=-(2**40), max_value=2**40)


@settings(max_examples=500, deadline=None)
@given(TEXT, TEXT, TEXT, SECONDS, SECONDS, TEXT, TEXT, TEXT)
def test_claims_are_what_json_dumps_writes(iss, sub, aud, iat, exp, jti, scope, institution):  # type: ignore[no-untyped-def]
    claims = {"iss": iss, "sub": sub, "aud": aud, "iat": iat, "exp": exp, "jti": jti, "scope": scope,
              "institution": institution}
    assert claims_json(iss, sub, aud, iat, exp, jti, scope, institution) == json.dumps(claims, separators=(",", ":"))


#: What a JWS in compact form is made of (base64url parts joined by dots).
COMPACT_JWS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=400)


@settings(max_examples=300, deadline=None)
@given(COMPACT_JWS, st.integers(min_value=0, max_value=2**31), TEXT)
def test_the_granted_body_is_what_json_dumps_writes(token, expires_in, scope):  # type: ignore[no-untyped-def]
    body = {"access_token": token, "expires_in": expires_in, "scope": scope, "token_type": "Bearer"}
    assert granted_json(AccessToken(token, expires_in, scope)) == json.dumps(body, separators=(",", ":"))


def test_issued_tokens_are_base64url_and_dots_for_either_signature_algorithm():
    """``granted_json`` writes the token without escaping it: that holds only while every token
    is a JWS in compact form (three base64url parts), whichever key signs it."""
    import re
    import uuid
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from keyrelease.clock import FrozenClock
    from keyrelease.oauth.signing_keys import KeyRing, SigningKey, _published
    from keyrelease.oauth.tokens import TokenIssuer
    from keyrelease.service.clients import AuthenticatedClient

    compact = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
    client = AuthenticatedClient(uuid.uuid4(), "us-east-1#\u2028\"x\\", "Université \u00e9\U0001f600", None)
    for private_key in (ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048)):
        signing = SigningKey(published=_published(private_key.public_key()), private_key=private_key)
        issuer = TokenIssuer(KeyRing(signing, (signing.published,)), issuer="https://issuer.example/\u00e9",
                             audience="aud", ttl_seconds=3600, scope="api", clock=FrozenClock(datetime.now(UTC)))
        token = issuer.issue(client)
        assert compact.fullmatch(token.token), (type(private_key).__name__, token.token)
        assert json.loads(granted_json(token))["access_token"] == token.token
