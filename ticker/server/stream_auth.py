"""Authentication at the server's doors and on live streams: the `Gate`.

A request's token becomes a `Principal` before anything is answered (401 when required);
each live stream's principal is kept, and the stream ends when its token expires unless
refreshed in flight. Decisions are `ticker.auth`'s; never logs or echoes a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from ticker.auth.denylist import DenyList
from ticker.auth.grants import Grant, Narrowed, allows_all, narrow, parse_grants
from ticker.auth.keys import load_keys
from ticker.auth.principal import Principal, anonymous
from ticker.auth.publishers import Publisher
from ticker.auth.sources import QUERY_PARAMETER, presented_token
from ticker.auth.verify import TokenRules, Verifier
from ticker.config import Config
from ticker.core.messages import Error
from ticker.core.topics import TopicPattern
from ticker.errors import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, Forbidden, Unauthorized
from ticker.server.context import ServerContext
from ticker.server.stats import EndReason
from ticker.server.subscriber import Subscriber
from ticker.server.subscriptions import subscribe, unsubscribe
from ticker.wire.http import RequestHead

log = logging.getLogger("ticker.server")

OPEN = anonymous()
"""The principal of every connection when authentication is off."""


class Gate:
    """The server's authentication state (one per process; None in `ServerContext`
    when `auth` is off).

    Args:
        mode: `optional` or `required`.
        verifier: checks tokens.
        anonymous_topics: what a connection without a token sees under `optional`.
        allow_query: honour `?token=`.
        cookie_name: the cookie read for a token ("" none).
        clock: the wall clock (Unix seconds); tests pass one that follows trio's.
    """

    def __init__(
        self,
        mode: str,
        verifier: Verifier,
        anonymous_topics: tuple[Grant, ...],
        *,
        allow_query: bool = True,
        cookie_name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mode = mode
        self.verifier = verifier
        self.anonymous = anonymous(anonymous_topics)
        self.allow_query = allow_query
        self.cookie_name = cookie_name
        self.clock = clock
        self.deny = DenyList()
        self.live: dict[Subscriber, Principal] = {}
        """Each open stream's current principal."""
        self.refused = 0
        """Requests and refreshes refused for a missing or bad token."""
        self.revoked = 0
        """Live streams ended because their token was revoked."""

    def authenticate(
        self, authorization: str, query_token: str | None, cookie_header: str
    ) -> Principal:
        """The principal of a request (its token's, or the anonymous one if allowed).
        Pass `cookie_header` "" where a cookie must not count (see `authenticate_head`).

        Raises:
            Unauthorized: `required` and no token, or any token that does not verify
                or is revoked (a bad token is never downgraded to anonymous).
        """
        presented = presented_token(
            authorization,
            query_token,
            cookie_header,
            allow_query=self.allow_query,
            cookie_name=self.cookie_name,
        )
        if presented is None:
            if self.mode == "required":
                self.refused += 1
                raise Unauthorized("a token is required (Authorization: Bearer <token>)")
            return self.anonymous
        return self.check(presented.token)

    def subject_of(self, authorization: str, query_token: str | None, cookie_header: str) -> str:
        """The subject a request's token names, for the per-subject stream limit: ""
        when there is none or it does not verify (the stream's door then refuses it,
        and counts that once). Verifies without counting anything."""
        presented = presented_token(
            authorization,
            query_token,
            cookie_header,
            allow_query=self.allow_query,
            cookie_name=self.cookie_name,
        )
        if presented is None:
            return ""
        try:
            principal = self.verifier.verify(presented.token, self.clock())
        except Unauthorized:
            return ""
        return principal.subject

    def check(self, token: str) -> Principal:
        """Verify one token and check it against the deny list.

        Raises:
            Unauthorized: it does not verify, or it is revoked.
        """
        try:
            principal = self.verifier.verify(token, self.clock())
        except Unauthorized:
            self.refused += 1
            raise
        if self.deny.denies(principal):
            self.refused += 1
            raise Unauthorized("the token is revoked")
        return principal


def build_gate(config: Config, clock: Callable[[], float] = time.time) -> Gate | None:
    """The gate the settings describe, keys and deny list loaded; None when `auth` is off.

    Raises:
        ConfigError: a key or the deny list cannot be loaded.
    """
    if config.auth == "off":
        return None
    keys = load_keys(
        config.auth_secret,
        config.auth_public_key_file,
        config.auth_jwks_file,
        config.auth_algorithms,
    )
    rules = TokenRules(
        audience=config.auth_audience,
        issuer=config.auth_issuer,
        leeway_s=config.auth_leeway_s,
        max_token_bytes=config.auth_max_token_bytes,
        algorithms=config.auth_algorithms,
        topics_claim=config.auth_topics_claim,
    )
    gate = Gate(
        config.auth,
        Verifier(keys, rules),
        parse_grants(config.auth_anonymous_topics),
        allow_query=config.auth_query_token,
        cookie_name=config.auth_cookie,
        clock=clock,
    )
    if config.auth_deny_file:
        from ticker.server.reloads import read_deny_file  # which imports this module

        gate.deny = read_deny_file(config.auth_deny_file)
    return gate


def authenticate_head(
    context: ServerContext, head: RequestHead, *, cookie: bool = True
) -> Principal:
    """The principal of a stream's request head (everything allowed when auth is off).

    `cookie` False ignores the cookie: a browser sends cookies with a cross-site
    WebSocket upgrade (no CORS applies to it), so a cookie there would let any page the
    user visits open a stream as them. SSE and the snapshot are read cross-site only
    through CORS, which never exposes a credentialed response to `*`.

    Raises:
        Unauthorized: see `Gate.authenticate`.
    """
    gate = context.auth
    if gate is None:
        return OPEN
    return gate.authenticate(
        head.header("authorization"),
        head.query_value(QUERY_PARAMETER),
        head.header("cookie") if cookie else "",
    )


def grants_of(context: ServerContext, subscriber: Subscriber) -> tuple[Grant, ...] | None:
    """What a live stream may see; None when it may see everything."""
    gate = context.auth
    if gate is None:
        return None
    principal = gate.live.get(subscriber)
    if principal is None:
        return ()
    return None if allows_all(principal.topics) else principal.topics


def not_entitled(forbidden: list[str]) -> str:
    """The error text naming each forbidden pattern."""
    return f"not entitled to: {', '.join(forbidden)}"


def attach(context: ServerContext, subscriber: Subscriber, principal: Principal) -> None:
    """Register a live stream's principal for its lifetime and, if its token expires,
    end it then (unless refreshed). Call inside the session, once its nursery exists:
    the watch task it starts there forgets the stream when the session ends."""
    gate = context.auth
    if gate is None:
        return
    gate.live[subscriber] = principal
    assert subscriber.nursery is not None
    subscriber.nursery.start_soon(_watch, gate, subscriber)


async def _watch(gate: Gate, subscriber: Subscriber) -> None:
    """End the stream when its current token's `exp` (plus leeway) passes; a refresh
    moves the time on, so this wakes, looks again and sleeps on. Runs for the session's
    life and forgets the stream when it ends."""
    try:
        while True:
            principal = gate.live.get(subscriber)
            if principal is None:
                return
            if principal.expires_at_s is None:
                await trio.sleep_forever()
            assert principal.expires_at_s is not None
            left_s = principal.expires_at_s - gate.clock()
            if left_s <= 0:
                subscriber.end(EndReason.TOKEN_EXPIRED)
                return
            await trio.sleep(left_s)
    finally:
        gate.live.pop(subscriber, None)


def refresh(context: ServerContext, subscriber: Subscriber, token: str) -> list[str]:
    """Replace a live WebSocket's token (the `auth` command) without ending it.

    Held patterns the new token no longer covers are unsubscribed and the client is
    sent an `error` 4403 naming them; then the parts of them it still allows are
    subscribed again (each gets a snapshot, after that error).

    Returns:
        The held patterns removed.

    Raises:
        Unauthorized: auth is off, the token does not verify or is revoked, or it is
            for another subject (the connection keeps its current token).
    """
    gate = context.auth
    if gate is None:
        raise Unauthorized("authentication is off on this server")
    principal = gate.check(token)
    current = gate.live.get(subscriber)
    if current is not None and not current.anonymous and current.subject != principal.subject:
        gate.refused += 1
        raise Unauthorized("a refreshed token must be for the same subject")
    gate.live[subscriber] = principal
    if (current is None or current.expires_at_s is None) and principal.expires_at_s is not None:
        # The stream's watch sleeps for good while it has no expiry: a new one keeps time.
        assert subscriber.nursery is not None
        subscriber.nursery.start_soon(_watch, gate, subscriber)
    held = list(subscriber.patterns.values())
    narrowed = narrow(held, principal.topics, context.known_symbols)
    kept = set(narrowed.allowed)
    removed = [str(p) for p in held if p not in kept]
    if not removed:
        return []
    unsubscribe(subscriber, removed, context.fanout)
    text = f"no longer entitled to: {', '.join(removed)}"
    subscriber.control.append(subscriber.framing.control(Error(CLOSE_FORBIDDEN, text)))
    subscriber.flush_nowait()
    again = [str(p) for p in narrowed.allowed if str(p) not in subscriber.patterns]
    if again:
        _subscribe_plain(context, subscriber, again)
    return removed


def _subscribe_plain(context: ServerContext, subscriber: Subscriber, texts: list[str]) -> None:
    subscribe(
        subscriber,
        texts,
        None,
        hub=context.hub,
        fanout=context.fanout,
        stats=context.stats,
        known_symbols=context.known_symbols,
        max_subscriptions=context.config.max_subscriptions,
    )


def narrow_or_refuse(
    context: ServerContext, principal: Principal, patterns: list[TopicPattern]
) -> Narrowed:
    """For a request made before a stream exists (SSE, snapshot): `patterns` narrowed
    to the principal's entitlements, and the forbidden ones.

    Raises:
        Forbidden: none of them is allowed.
    """
    if context.auth is None or allows_all(principal.topics):
        return Narrowed(patterns, [])
    narrowed = narrow(patterns, principal.topics, context.known_symbols)
    if not narrowed.allowed:
        raise Forbidden(not_entitled(narrowed.forbidden))
    return narrowed


# -- publishers with a token -----------------------------------------------------------


def token_publisher(
    context: ServerContext, token: str | None
) -> tuple[Publisher, Principal] | None:
    """A publisher for a client token whose `publish` claim is not empty (auth on);
    None for anything else (no token, a bad one, no publish claim)."""
    gate = context.auth
    if gate is None or not token:
        return None
    try:
        principal = gate.check(token)
    except Unauthorized:
        return None
    if not principal.publish:
        return None
    return Publisher(f"sub:{principal.subject}", b"", principal.publish), principal


def publisher_ending(
    context: ServerContext, principal: Principal | None, publisher: Publisher
) -> tuple[int, str, EndReason] | None:
    """Whether a publisher's connection must end now (its publish token was removed
    from the file; its client token expired or was revoked): the close code, its text
    and the end reason; None to go on. Checked before each batch, so nothing is
    published under a dead token."""
    if principal is None:
        if publisher in context.publishers:
            return None
        return CLOSE_FORBIDDEN, "publish token removed", EndReason.REVOKED
    gate = context.auth
    if gate is None:
        return None
    if gate.deny.denies(principal):
        return CLOSE_FORBIDDEN, "token revoked", EndReason.REVOKED
    if principal.expires_at_s is not None and gate.clock() >= principal.expires_at_s:
        return CLOSE_UNAUTHORIZED, "token expired", EndReason.TOKEN_EXPIRED
    return None
