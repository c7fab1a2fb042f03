"""Keys and tokens made in-process for the auth tests (never written anywhere else)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ticker.auth.keys import VerifyKey

SECRET = "s" * 40
OTHER_SECRET = "o" * 40
NOW = 1_900_000_000.0
AUDIENCE = "ticker-test"
ISSUER = "https://issuer.test"


@dataclass(frozen=True)
class KeyPair:
    algorithm: str
    private: Any
    kid: str | None = None

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def public_pem(self) -> bytes:
        pem: bytes = self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.kid, self.algorithm, self.public)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        document: dict[str, Any] = json.loads(algorithm.to_jwk(self.public))
        document["kid"] = self.kid
        return document


_CACHE: dict[str, Any] = {}


def rsa_pair(kid: str | None = None, number: int = 0) -> KeyPair:
    # RSA keys are slow to make: a few per test session, by number.
    name = f"rsa{number}"
    if name not in _CACHE:
        _CACHE[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair("RS256", _CACHE[name], kid)


def other_rsa_pair(kid: str | None = None) -> KeyPair:
    return rsa_pair(kid, 1)


def ec_pair(kid: str | None = None) -> KeyPair:
    return KeyPair("ES256", ec.generate_private_key(ec.SECP256R1()), kid)


def ed_pair(kid: str | None = None) -> KeyPair:
    return KeyPair("EdDSA", ed25519.Ed25519PrivateKey.generate(), kid)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims at NOW (an hour left), entitled to every quote."""
    base: dict[str, Any] = {
        "sub": "alice",
        "jti": "t-1",
        "exp": NOW + 3600,
        "nbf": NOW - 60,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "topics": ["quote.*"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def signed(pair: KeyPair, payload: dict[str, Any]) -> str:
    headers = {"kid": pair.kid} if pair.kid else None
    return jwt.encode(payload, pair.private, algorithm=pair.algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    """An `alg: none` token."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hs_confused(pair: KeyPair, payload: dict[str, Any]) -> str:
    """HS256 signed with the bytes of an RSA public key: the classic confusion attack."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    import hashlib
    import hmac

    mac = hmac.new(pair.public_pem(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def tamper_payload(token: str, **changes: Any) -> str:
    """The same header and signature over a changed payload."""
    header, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


def tamper_signature(token: str) -> str:
    header, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{header}.{body}.{b64(bytes(raw))}"


def write_jwks(path: Path, *pairs: KeyPair) -> str:
    path.write_text(json.dumps({"keys": [p.jwk() for p in pairs]}))
    return str(path)
