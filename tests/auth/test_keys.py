"""Loading verification keys: each bound to one algorithm; every mistake a ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ticker.auth.keys import MAX_KEYS, jwks_keys, load_keys, pem_keys
from ticker.auth.verify import TokenRules, Verifier
from ticker.errors import ConfigError

from .keyring import NOW, SECRET, claims, ec_pair, ed_pair, rsa_pair, signed, write_jwks

ALL = ("HS256", "RS256", "ES256", "EdDSA")


def test_a_pem_file_of_several_keys(tmp_path: Path) -> None:
    pairs = [rsa_pair(), ec_pair(), ed_pair()]
    path = tmp_path / "keys.pem"
    path.write_bytes(b"".join(p.public_pem() for p in pairs))
    keys = load_keys("", str(path), "", ALL)
    assert [k.algorithm for k in keys] == ["RS256", "ES256", "EdDSA"]
    verifier = Verifier(keys, TokenRules())
    for pair in pairs:
        assert verifier.verify(signed(pair, claims(aud=None, iss=None)), NOW).subject == "alice"


def test_a_jwks_file_selects_by_kid(tmp_path: Path) -> None:
    old, new = rsa_pair("2026-11"), ec_pair("2026-12")
    path = write_jwks(tmp_path / "jwks.json", old, new)
    keys = jwks_keys(path)
    assert [(k.kid, k.algorithm) for k in keys] == [("2026-11", "RS256"), ("2026-12", "ES256")]


def test_secret_bounds_and_sources() -> None:
    assert load_keys(SECRET, "", "", ALL)[0].algorithm == "HS256"
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        load_keys("short", "", "", ALL)
    with pytest.raises(ConfigError, match="exactly one"):
        load_keys("", "", "", ALL)
    with pytest.raises(ConfigError, match="exactly one"):
        load_keys(SECRET, "a.pem", "", ALL)
    with pytest.raises(ConfigError, match="allows only"):
        load_keys(SECRET, "", "", ("RS256",))


def test_bad_pem_files(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    with pytest.raises(ConfigError, match="cannot read"):
        pem_keys(str(path))
    path.write_text("hello")
    with pytest.raises(ConfigError, match="no PEM public key"):
        pem_keys(str(path))
    path.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        pem_keys(str(path))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    path.write_bytes(
        weak.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ConfigError, match="2048"):
        pem_keys(str(path))
    odd = ec.generate_private_key(ec.SECP521R1()).public_key()
    path.write_bytes(
        odd.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ConfigError, match="not supported"):
        pem_keys(str(path))
    path.write_bytes(b"".join(ec_pair().public_pem() for _ in range(MAX_KEYS + 1)))
    with pytest.raises(ConfigError, match="more than"):
        pem_keys(str(path))


def test_bad_jwks_files(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"

    def fails(document: object, match: str) -> None:
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        with pytest.raises(ConfigError, match=match):
            jwks_keys(str(path))

    fails("{", "not a JSON")
    fails({"keys": []}, "at least one key")
    fails([1], "at least one key")
    key = ec_pair("a").jwk()
    fails({"keys": [{**key, "kid": None}]}, "needs a kid")
    fails({"keys": [key, key]}, "appears twice")
    fails({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}, "auth_secret")
    fails({"keys": [{**key, "d": "AAAA"}]}, "private key")
    fails({"keys": [{**key, "alg": "RS256"}]}, "does not fit")
    fails({"keys": [{"kty": "nope", "kid": "x"}]}, "key 1")
