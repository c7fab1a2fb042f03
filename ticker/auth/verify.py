"""Token verification: a compact JWS from a client -> a `Principal`, or `Unauthorized`.

The algorithm allowlist is ours: a token's `alg` must be allowed and be its key's, and
PyJWT is given only that one. PyJWT checks signature, `aud`, `iss`; the time window is
checked against the caller's `now_s`. No error quotes the token or PyJWT's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import (
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidJTIError,
    InvalidSignatureError,
    InvalidSubjectError,
    MissingRequiredClaimError,
    PyJWTError,
)

from ticker.auth.keys import VerifyKey
from ticker.auth.principal import Principal, principal_from_claims
from ticker.errors import Unauthorized

_PYJWT_OPTIONS: Any = {
    # The time window is checked against the caller's `now_s` (principal_from_claims).
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_signature": True,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a token must satisfy besides its signature."""

    audience: str = ""
    """Required `aud` (empty: not checked)."""
    issuer: str = ""
    """Required `iss` (empty: not checked)."""
    leeway_s: float = 30.0
    max_token_bytes: int = 4096
    algorithms: tuple[str, ...] = ("HS256", "RS256", "ES256", "EdDSA")
    topics_claim: str = "topics"
    publish_claim: str = "publish"


class Verifier:
    """Verifies tokens with a fixed set of keys under fixed rules."""

    def __init__(self, keys: Sequence[VerifyKey], rules: TokenRules) -> None:
        if not keys:
            raise ValueError("a verifier needs at least one key")
        self.keys = tuple(keys)
        self.rules = rules

    def verify(self, token: str, now_s: float) -> Principal:
        """The principal of a valid token.

        Args:
            token: the compact token as presented.
            now_s: the wall clock, Unix seconds.

        Raises:
            Unauthorized: too long, not a JWS, an algorithm or key not accepted, a bad
                signature, wrong audience or issuer, expired, not yet valid, or claims
                of the wrong shape.
        """
        rules = self.rules
        if len(token) > rules.max_token_bytes:
            raise Unauthorized(f"the token is longer than {rules.max_token_bytes} bytes")
        if not token.isascii():
            raise Unauthorized("the token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise Unauthorized("the token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in rules.algorithms:
            raise Unauthorized("the token's algorithm is not accepted")
        candidates = self._candidates(algorithm, header.get("kid"))
        if not candidates:
            raise Unauthorized("the token's key is not known here")
        claims = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key.key,  # type: ignore[arg-type]
                    algorithms=[key.algorithm],
                    audience=rules.audience or None,
                    issuer=rules.issuer or None,
                    options=_PYJWT_OPTIONS
                    | {"verify_aud": bool(rules.audience), "verify_iss": bool(rules.issuer)},
                )
                break
            except InvalidSignatureError:
                continue  # the next key without a kid may be the one
            except (InvalidAudienceError, MissingRequiredClaimError) as exc:
                claim = getattr(exc, "claim", "aud")
                raise Unauthorized(f"the token's {claim} is missing or not accepted") from None
            except InvalidIssuerError:
                raise Unauthorized("the token's iss is not accepted") from None
            except (InvalidSubjectError, InvalidJTIError) as exc:
                claim = "sub" if isinstance(exc, InvalidSubjectError) else "jti"
                raise Unauthorized(f"the token's {claim} is not a string") from None
            except ImmatureSignatureError:
                raise Unauthorized("the token is not valid yet") from None
            except PyJWTError:
                raise Unauthorized("the token is not a valid JWT") from None
        if claims is None:
            raise Unauthorized("the token's signature does not verify")
        return principal_from_claims(
            claims,
            now_s,
            rules.leeway_s,
            topics_claim=rules.topics_claim,
            publish_claim=rules.publish_claim,
        )

    def _candidates(self, algorithm: str, kid: object) -> list[VerifyKey]:
        keys = [k for k in self.keys if k.algorithm == algorithm]
        if any(k.kid is not None for k in keys):
            # A JWKS: the token names its key (one key alone may be used without).
            if kid is None and len(keys) == 1:
                return keys
            return [k for k in keys if k.kid == kid]
        return keys
