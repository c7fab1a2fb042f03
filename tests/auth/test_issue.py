"""`ticker token` signs what the server verifies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ticker.auth.grants import Grant
from ticker.auth.issue import sign, token_claims
from ticker.auth.keys import secret_key
from ticker.auth.verify import TokenRules, Verifier
from ticker.cli import main
from ticker.errors import ConfigError

from .keyring import SECRET, ec_pair


def test_a_signed_token_verifies() -> None:
    now = time.time()
    claims = token_claims("alice", "quote.*, book.BTC-USD", 60, now, aud="t", publish="trade.*")
    principal = Verifier([secret_key(SECRET)], TokenRules(audience="t")).verify(
        sign(claims, None, SECRET), now
    )
    assert principal.subject == "alice"
    assert principal.topics == (Grant("quote", "*"), Grant("book", "BTC-USD"))
    assert principal.publish == (Grant("trade", "*"),)


def test_a_key_file_signs_with_its_algorithm() -> None:
    pair = ec_pair("k1")
    pem = pair.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = time.time()
    token = sign(token_claims("bob", "*.*", 60, now), pem, "", "k1")
    assert Verifier([pair.verify_key()], TokenRules()).verify(token, now).subject == "bob"
    odd = ec.generate_private_key(ec.SECP521R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="P-256"):
        sign({}, odd, "")
    with pytest.raises(ConfigError, match="PEM private key"):
        sign({}, b"nope", "")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="TICKER_AUTH_SECRET"):
        sign({}, None, "short")
    with pytest.raises(ConfigError, match="entitlement"):
        token_claims("a", "nope", 60, 0)
    with pytest.raises(ConfigError, match="ttl"):
        token_claims("a", "*.*", 0, 0)
    with pytest.raises(ConfigError, match="sub"):
        token_claims("", "*.*", 60, 0)


def test_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TICKER_AUTH_SECRET", SECRET)
    assert main(["token", "--sub", "carol", "--topics", "trade.*", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert Verifier([secret_key(SECRET)], TokenRules()).verify(token, time.time()).subject == (
        "carol"
    )
    monkeypatch.delenv("TICKER_AUTH_SECRET")
    assert main(["token", "--sub", "carol"]) == 2
    assert "TICKER_AUTH_SECRET" in capsys.readouterr().err
    assert main(["token", "--sub", "carol", "--key-file", str(tmp_path / "none")]) == 2
