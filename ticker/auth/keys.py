"""The keys tokens are verified with, loaded from a secret, a PEM file or a JWKS file.

Each key is bound to one algorithm when it is loaded (secret: HS256, RSA: RS256, P-256:
ES256, Ed25519: EdDSA), so a token never chooses how its key is used (no HS/RS
confusion). Reads files, holds no state; anything wrong is a `ConfigError` at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from ticker.errors import ConfigError

MAX_KEYS: Final = 16
"""Keys one server verifies with at once (a rotation needs two or three)."""
MAX_KEY_FILE_BYTES: Final = 256 * 1024
MIN_SECRET_BYTES: Final = 32
"""A shared HS256 secret shorter than the hash (RFC 7518 3.2) is refused."""
SUPPORTED_ALGORITHMS: Final = frozenset({"HS256", "RS256", "ES256", "ES384", "EdDSA"})
"""What `auth_algorithms` may list; `none` and everything else is refused."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """One key: its `kid` (None when it came without one), the one algorithm it verifies
    and the key object (bytes for a secret, a cryptography public key otherwise)."""

    kid: str | None
    algorithm: str
    key: object


def _algorithm_of(key: object, where: str) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"{where}: RSA keys of fewer than 2048 bits are refused")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "ES256", "secp384r1": "ES384"}
        if key.curve.name not in names:
            raise ConfigError(f"{where}: EC curve {key.curve.name} is not supported")
        return names[key.curve.name]
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise ConfigError(f"{where}: not an RSA, EC or Ed25519 public key")


def _read(path: str) -> bytes:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    return data


def secret_key(secret: str) -> VerifyKey:
    """The HS256 key of a shared secret.

    Raises:
        ConfigError: shorter than `MIN_SECRET_BYTES` bytes.
    """
    data = secret.encode("utf-8")
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"auth_secret must be at least {MIN_SECRET_BYTES} bytes")
    return VerifyKey(None, "HS256", data)


def pem_keys(path: str) -> list[VerifyKey]:
    """Every public key in a PEM file (one or more `BEGIN PUBLIC KEY` blocks), no `kid`.

    Raises:
        ConfigError: unreadable, no key, a block that is not a supported public key
            (a private key or certificate is refused), or too many.
    """
    text = _read(path)
    marker = b"-----END PUBLIC KEY-----"
    blocks = [block + marker for block in text.split(marker) if b"-----BEGIN" in block]
    if not blocks:
        raise ConfigError(f"{path}: no PEM public key (-----BEGIN PUBLIC KEY-----)")
    keys = []
    for number, block in enumerate(blocks, 1):
        where = f"{path} key {number}"
        try:
            key = load_pem_public_key(block.strip())
        except ValueError:
            raise ConfigError(f"{where}: not a PEM public key") from None
        keys.append(VerifyKey(None, _algorithm_of(key, where), key))
    return _bounded(keys, path)


def jwks_keys(path: str) -> list[VerifyKey]:
    """Every key of a JWKS file (`{"keys": [...]}`); each must have a unique `kid`.

    A JWK's `alg`, if it has one, must agree with its key type; without one, the type
    decides. Private parts are refused: the server only verifies.

    Raises:
        ConfigError: unreadable, not a JWKS, a key without or with a repeated `kid`, an
            unsupported or private key, or too many.
    """
    try:
        document = json.loads(_read(path))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not a JSON document") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f'{path}: expected {{"keys": [ ... ]}} with at least one key')
    keys: list[VerifyKey] = []
    for number, entry in enumerate(entries, 1):
        where = f"{path} key {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            raise ConfigError(f"{where}: every key needs a kid")
        kid = entry["kid"]
        if any(k.kid == kid for k in keys):
            raise ConfigError(f"{where}: kid {kid!r} appears twice")
        if entry.get("kty") == "oct":
            raise ConfigError(f"{where}: a shared secret goes in auth_secret, not a JWKS")
        if "d" in entry:
            raise ConfigError(f"{where}: a private key; publish only the public part")
        try:
            # Loaded by its type alone; a declared `alg` is compared below.
            key = PyJWK({k: v for k, v in entry.items() if k != "alg"}).key
        except PyJWTError as exc:
            raise ConfigError(f"{where}: {type(exc).__name__}") from None
        algorithm = _algorithm_of(key, where)
        declared = entry.get("alg")
        if declared is not None and declared != algorithm:
            raise ConfigError(f"{where}: alg {declared!r} does not fit its key ({algorithm})")
        keys.append(VerifyKey(kid, algorithm, key))
    return _bounded(keys, path)


def _bounded(keys: list[VerifyKey], path: str) -> list[VerifyKey]:
    if len(keys) > MAX_KEYS:
        raise ConfigError(f"{path}: more than {MAX_KEYS} keys")
    return keys


def load_keys(
    secret: str, public_key_file: str, jwks_file: str, algorithms: tuple[str, ...]
) -> list[VerifyKey]:
    """The verification keys the settings name, each allowed by `algorithms`.

    Raises:
        ConfigError: no key source or more than one, a bad key, or a key whose
            algorithm is not in `algorithms`.
    """
    sources = [name for name, value in
               (("auth_secret", secret), ("auth_public_key_file", public_key_file),
                ("auth_jwks_file", jwks_file)) if value]  # fmt: skip
    if len(sources) != 1:
        raise ConfigError(
            "auth needs exactly one of auth_secret, auth_public_key_file, auth_jwks_file"
            + (f"; got {', '.join(sources)}" if sources else "")
        )
    if secret:
        keys = [secret_key(secret)]
    elif public_key_file:
        keys = pem_keys(public_key_file)
    else:
        keys = jwks_keys(jwks_file)
    for key in keys:
        if key.algorithm not in algorithms:
            raise ConfigError(
                f"a {key.algorithm} key is configured but auth_algorithms allows only "
                f"{', '.join(algorithms)}"
            )
    return keys
