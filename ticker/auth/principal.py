"""Who a connection is: the claims of a verified token turned into a `Principal`.

Pure: the token's signature, audience and issuer were checked by `ticker.auth.verify`;
here the claims' shapes and the time window are checked against a given `now_s` (wall
clock seconds), never a clock read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ticker.auth.grants import EVERYTHING, Grant, parse_grants
from ticker.errors import BadTopic, Unauthorized

MAX_SUBJECT_CHARS: Final = 256
"""Longest `sub` or `jti` accepted (they are logged and held per connection)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """A connection's identity and entitlements.

    Attributes:
        subject: the token's `sub` ("" when anonymous).
        jti: the token's id, if it has one (what a deny list can revoke).
        expires_at_s: the token's `exp` in Unix seconds (None: never; anonymous).
        topics: topic patterns it may see.
        publish: topic patterns it may publish (empty: none).
    """

    subject: str
    jti: str | None
    expires_at_s: float | None
    topics: tuple[Grant, ...]
    publish: tuple[Grant, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not self.subject


def anonymous(topics: tuple[Grant, ...] = EVERYTHING) -> Principal:
    """The principal of a connection without a token (mode `off` or `optional`)."""
    return Principal("", None, None, topics)


def _number(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"the token's {name} is not a number")
    return float(value)


def _text(claims: Mapping[str, object], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_SUBJECT_CHARS:
        raise Unauthorized(f"the token's {name} is not a string of 1-{MAX_SUBJECT_CHARS}")
    return value


def _grants(claims: Mapping[str, object], name: str) -> tuple[Grant, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list):
        raise Unauthorized(f"the token's {name} claim is not a list")
    try:
        return parse_grants(value)
    except BadTopic as exc:
        raise Unauthorized(f"the token's {name} claim: {exc}") from None


def principal_from_claims(
    claims: Mapping[str, object],
    now_s: float,
    leeway_s: float,
    *,
    topics_claim: str = "topics",
    publish_claim: str = "publish",
) -> Principal:
    """The principal of a token whose signature, `aud` and `iss` were verified.

    Args:
        claims: the token's payload.
        now_s: the wall clock, Unix seconds.
        leeway_s: clock skew tolerated on `exp` and `nbf`.
        topics_claim: the claim listing the topic patterns it may see (missing: none).
        publish_claim: the claim listing the patterns it may publish (missing: none).

    Raises:
        Unauthorized: no `sub` or `exp`, a claim of the wrong shape, expired or not
            yet valid. The message names the problem, never the token.
    """
    subject = _text(claims, "sub")
    if subject is None:
        raise Unauthorized("the token has no sub")
    expires = _number(claims, "exp")
    if expires is None:
        raise Unauthorized("the token has no exp")
    if now_s >= expires + leeway_s:
        raise Unauthorized("the token has expired")
    not_before = _number(claims, "nbf")
    if not_before is not None and now_s < not_before - leeway_s:
        raise Unauthorized("the token is not valid yet")
    return Principal(
        subject,
        _text(claims, "jti"),
        expires + leeway_s,
        _grants(claims, topics_claim),
        _grants(claims, publish_claim),
    )
