"""Token verification: every bad token is refused with `Unauthorized`, never anything
else, and the message never quotes the token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.budget import RANDOM
from ticker.auth.grants import Grant
from ticker.auth.keys import VerifyKey, secret_key
from ticker.auth.verify import TokenRules, Verifier
from ticker.errors import Unauthorized

from .keyring import (
    AUDIENCE,
    ISSUER,
    NOW,
    OTHER_SECRET,
    SECRET,
    KeyPair,
    claims,
    ec_pair,
    ed_pair,
    hs_confused,
    hs_token,
    other_rsa_pair,
    rsa_pair,
    signed,
    tamper_payload,
    tamper_signature,
    unsigned,
)

AUTH_PROPERTIES = settings(max_examples=100, derandomize=not RANDOM, database=None)

RULES = TokenRules(audience=AUDIENCE, issuer=ISSUER, leeway_s=30)


def hs_verifier(rules: TokenRules = RULES) -> Verifier:
    return Verifier([secret_key(SECRET)], rules)


def refused(verifier: Verifier, token: str, match: str) -> None:
    with pytest.raises(Unauthorized, match=match) as caught:
        verifier.verify(token, NOW)
    assert token not in str(caught.value)
    assert caught.value.http_status == 401


def test_a_valid_hs256_token_gives_its_principal() -> None:
    principal = hs_verifier().verify(hs_token(claims(publish=["trade.*"])), NOW)
    assert principal.subject == "alice" and principal.jti == "t-1"
    assert principal.topics == (Grant("quote", "*"),)
    assert principal.publish == (Grant("trade", "*"),)
    assert principal.expires_at_s == NOW + 3600 + 30  # exp plus the leeway


@pytest.mark.parametrize(
    ("make", "other"), [(rsa_pair, other_rsa_pair), (ec_pair, ec_pair), (ed_pair, ed_pair)]
)
def test_asymmetric_keys_verify_their_own_algorithm(
    make: Callable[[], KeyPair], other: Callable[[], KeyPair]
) -> None:
    pair = make()
    verifier = Verifier([pair.verify_key()], RULES)
    assert verifier.verify(signed(pair, claims()), NOW).subject == "alice"
    refused(verifier, signed(other(), claims()), "signature")  # another key of the kind


def test_time_window_with_leeway() -> None:
    verifier = hs_verifier()
    assert verifier.verify(hs_token(claims(exp=NOW - 29)), NOW)  # inside the leeway
    refused(verifier, hs_token(claims(exp=NOW - 30)), "expired")
    assert verifier.verify(hs_token(claims(nbf=NOW + 29)), NOW)
    refused(verifier, hs_token(claims(nbf=NOW + 31)), "not valid yet")
    refused(verifier, hs_token(claims(exp=None)), "no exp")
    refused(verifier, hs_token(claims(exp="soon")), "not a number")
    refused(verifier, hs_token(claims(exp=True)), "not a number")


def test_audience_issuer_and_claim_shapes() -> None:
    verifier = hs_verifier()
    refused(verifier, hs_token(claims(aud="other")), "aud")
    refused(verifier, hs_token(claims(aud=None)), "aud")
    refused(verifier, hs_token(claims(iss="https://evil.test")), "iss")
    refused(verifier, hs_token(claims(iss=None)), "iss")
    refused(verifier, hs_token(claims(sub=None)), "no sub")
    refused(verifier, hs_token(claims(sub=5)), "sub")
    refused(verifier, hs_token(claims(topics="quote.*")), "not a list")
    refused(verifier, hs_token(claims(topics=["nope.*"])), "topics claim")
    # Unchecked when not configured.
    assert Verifier([secret_key(SECRET)], TokenRules()).verify(
        hs_token(claims(aud=None, iss=None)), NOW
    )


def test_algorithm_is_never_the_tokens_choice() -> None:
    pair = rsa_pair()
    verifier = Verifier([pair.verify_key()], RULES)
    refused(verifier, unsigned(claims()), "algorithm")
    refused(verifier, hs_confused(pair, claims()), "key is not known")
    # An HS key is never used for RS256 either, even if the allowlist has both.
    both = Verifier([secret_key(SECRET), pair.verify_key()], RULES)
    refused(both, hs_confused(pair, claims()), "signature")
    limited = Verifier([pair.verify_key()], TokenRules(algorithms=("ES256",)))
    refused(limited, signed(pair, claims()), "algorithm")


def test_keys_are_chosen_by_kid() -> None:
    old, new = ec_pair("old"), ec_pair("new")
    verifier = Verifier([old.verify_key(), new.verify_key()], RULES)
    assert verifier.verify(signed(old, claims()), NOW)
    assert verifier.verify(signed(new, claims()), NOW)
    refused(verifier, signed(ec_pair("gone"), claims()), "key is not known")
    refused(verifier, signed(ec_pair(None), claims()), "key is not known")
    # The right kid on another key's signature.
    impostor = ec_pair("new")
    refused(verifier, signed(impostor, claims()), "signature")


def test_tampering_and_size() -> None:
    verifier = hs_verifier(TokenRules(audience=AUDIENCE, issuer=ISSUER, max_token_bytes=400))
    good = hs_token(claims())
    refused(verifier, tamper_payload(good, topics=["*.*"]), "signature")
    refused(verifier, tamper_signature(good), "signature")
    refused(verifier, hs_token(claims(pad="x" * 400)), "longer than 400")
    refused(verifier, hs_token(claims(), secret=OTHER_SECRET), "signature")
    for garbage in ("", "abc", "a.b.c", "....", "é.é.é", good + "x", good[:-5]):
        with pytest.raises(Unauthorized):
            verifier.verify(garbage, NOW)


@AUTH_PROPERTIES
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_is_refused_with_unauthorized_only(text: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        hs_verifier().verify(text, NOW)
    assert len(str(caught.value)) < 100


def test_verifier_needs_a_key() -> None:
    with pytest.raises(ValueError):
        Verifier([], RULES)
    assert isinstance(secret_key(SECRET), VerifyKey)
