"""`ticker token`: sign a token for local use and tests (production: an identity provider).

Signs with `$TICKER_AUTH_SECRET` (HS256) or a PEM private key (RSA -> RS256, P-256 ->
ES256, Ed25519 -> EdDSA), the server's own algorithm binding. Prints the token on stdout
and nothing else; never logs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ticker.auth.grants import parse_grants
from ticker.auth.keys import MIN_SECRET_BYTES
from ticker.errors import ConfigError, ProtocolError

SECRET_ENV = "TICKER_AUTH_SECRET"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The `ticker token` subcommand."""
    token = commands.add_parser(
        "token",
        help="sign a client token (JWT) for local use and tests",
        description="Sign a token with $TICKER_AUTH_SECRET (HS256) or --key-file "
        "(a PEM private key) and print it.",
    )
    token.add_argument("--sub", required=True, help="the subject")
    token.add_argument(
        "--topics", default="*.*", help="comma-separated patterns it may see (default: *.*)"
    )
    token.add_argument("--publish", default="", help="patterns it may publish (claim publish)")
    token.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds")
    token.add_argument("--aud", default="", help="audience (aud)")
    token.add_argument("--iss", default="", help="issuer (iss)")
    token.add_argument("--kid", default="", help="key id (kid) for a JWKS")
    token.add_argument("--key-file", default="", help="PEM private key (else the secret)")
    token.set_defaults(capture_main=run_token_command)
    return token  # type: ignore[no-any-return]


def token_claims(
    sub: str,
    topics: str,
    ttl_s: float,
    now_s: float,
    *,
    publish: str = "",
    aud: str = "",
    iss: str = "",
    jti: str = "",
) -> dict[str, object]:
    """The claims of a token, checked as the server will check them.

    Raises:
        ConfigError: an empty subject, a bad pattern or a lifetime <= 0.
    """
    if not sub:
        raise ConfigError("--sub must not be empty")
    if ttl_s <= 0:
        raise ConfigError("--ttl must be > 0")
    texts = [t.strip() for t in topics.split(",") if t.strip()]
    published = [t.strip() for t in publish.split(",") if t.strip()]
    try:
        parse_grants(texts)
        parse_grants(published)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None
    claims: dict[str, object] = {
        "sub": sub,
        "jti": jti or uuid.uuid4().hex[:16],
        "iat": int(now_s),
        "nbf": int(now_s),
        "exp": int(now_s + ttl_s),
        "topics": texts,
    }
    if published:
        claims["publish"] = published
    if aud:
        claims["aud"] = aud
    if iss:
        claims["iss"] = iss
    return claims


def sign(claims: Mapping[str, object], key_pem: bytes | None, secret: str, kid: str = "") -> str:
    """The compact token of `claims`, signed with the private key or else the secret.

    Raises:
        ConfigError: no key, a short secret, or a key that is not RSA, P-256 or Ed25519.
    """
    headers = {"kid": kid} if kid else None
    if key_pem is not None:
        try:
            key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise ConfigError("--key-file is not an unencrypted PEM private key") from None
        if isinstance(key, rsa.RSAPrivateKey):
            algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            algorithm = "ES256"
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            algorithm = "EdDSA"
        else:
            raise ConfigError("--key-file must be an RSA, P-256 or Ed25519 private key")
        return jwt.encode(dict(claims), key, algorithm=algorithm, headers=headers)
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"set ${SECRET_ENV} (>= {MIN_SECRET_BYTES} bytes) or --key-file")
    return jwt.encode(dict(claims), secret, algorithm="HS256", headers=headers)


def run_token_command(args: argparse.Namespace) -> int:
    """Print a signed token; exit code 2 on a bad argument or key."""
    try:
        claims = token_claims(
            args.sub, args.topics, args.ttl, time.time(),
            publish=args.publish, aud=args.aud, iss=args.iss,
        )  # fmt: skip
        key_pem = Path(args.key_file).read_bytes() if args.key_file else None
        print(sign(claims, key_pem, os.environ.get(SECRET_ENV, ""), args.kid))
    except (ConfigError, OSError) as exc:
        print(f"ticker token: {exc}", file=sys.stderr)
        return 2
    return 0
