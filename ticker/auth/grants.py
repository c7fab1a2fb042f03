"""Entitlements: the topic patterns a subject may see (or publish), and their algebra.

A grant is `<channel>.<symbol>`, either part may be `*` (`*` covers every channel, a
venue's too); a venue channel may name every venue (`book@*`). A subscription is narrowed to
its intersections with the grants, so a connection only holds patterns inside them and
nothing downstream (fanout, replay, resets, snapshots) needs a check of its own. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ticker.core.topics import (
    MAX_TOPIC_LENGTH,
    WILDCARD,
    TopicPattern,
    channel_matches,
    is_channel_pattern,
)
from ticker.errors import BadTopic, echo
from ticker.model.instruments import is_valid_symbol

MAX_GRANTS: Final = 256
"""Grants one token may carry; more and the token is refused (bounds the work of every
subscribe, which is O(patterns x grants))."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One entitlement: a channel (`quote`, `book@cbx`, `book@*`) or `*`, and a symbol
    or `*`."""

    channel: str
    symbol: str

    @classmethod
    def parse(cls, text: str) -> Grant:
        """Parse `quote.BTC-USD`, `quote.*`, `*.BTC-USD`, `*.*` (`*` alone: `*.*`), and
        venue channels: `book@cbx.*`, `book@*.BTC-USD`.

        Raises:
            BadTopic: not of that form, an unknown channel or a bad symbol.
        """
        if not isinstance(text, str) or len(text) > MAX_TOPIC_LENGTH:
            raise BadTopic(f"bad entitlement {echo(text)}")
        if text == WILDCARD:
            return cls(WILDCARD, WILDCARD)
        channel, dot, symbol = text.partition(".")
        if not dot or (channel != WILDCARD and not is_channel_pattern(channel)):
            raise BadTopic(f"bad entitlement {echo(text)}: expected <channel|*>.<symbol|*>")
        if symbol != WILDCARD and not is_valid_symbol(symbol):
            raise BadTopic(f"bad entitlement {echo(text)}: bad symbol")
        return cls(channel, symbol)

    def allows(self, topic: str) -> bool:
        """Whether this grant covers one topic."""
        channel, _, symbol = topic.partition(".")
        return self._channel_covers(channel) and self.symbol in (WILDCARD, symbol)

    def _channel_covers(self, channel: str) -> bool:
        """Whether this grant's channel covers a channel or channel pattern (`book@*`)."""
        return self.channel == WILDCARD or channel_matches(self.channel, channel)

    def covers(self, pattern: TopicPattern) -> bool:
        """Whether every topic `pattern` can match is allowed by this grant."""
        if not self._channel_covers(pattern.channel):
            return False
        return self.symbol == WILDCARD or self.symbol == pattern.symbol

    def intersect(self, pattern: TopicPattern) -> TopicPattern | None:
        """The topics both match, as one pattern, or None when they share none."""
        if self._channel_covers(pattern.channel):
            channel = pattern.channel
        elif channel_matches(pattern.channel, self.channel):
            channel = self.channel  # `book@*` under `book@cbx`: `book@cbx`
        else:
            return None
        if pattern.symbol == WILDCARD:
            return TopicPattern(channel, self.symbol)
        if self.symbol in (WILDCARD, pattern.symbol):
            return TopicPattern(channel, pattern.symbol)
        return None

    def __str__(self) -> str:
        return f"{self.channel}.{self.symbol}"


EVERYTHING: Final = (Grant(WILDCARD, WILDCARD),)
"""The grants of a connection when authentication is off (and the default anonymous)."""


def parse_grants(texts: Iterable[object]) -> tuple[Grant, ...]:
    """Parse a list of grant texts (a token's claim or a setting), duplicates dropped.

    Raises:
        BadTopic: an entry that is not a grant, or more than `MAX_GRANTS`.
    """
    grants: dict[Grant, None] = {}
    for text in texts:
        if not isinstance(text, str):
            raise BadTopic(f"bad entitlement {echo(text)}: not a string")
        grants[Grant.parse(text)] = None
        if len(grants) > MAX_GRANTS:
            raise BadTopic(f"more than {MAX_GRANTS} entitlements")
    return tuple(grants)


def allows_all(grants: tuple[Grant, ...]) -> bool:
    """Whether the grants cover every topic (no narrowing needed)."""
    return any(g.channel == WILDCARD and g.symbol == WILDCARD for g in grants)


def allows_topic(grants: tuple[Grant, ...], topic: str) -> bool:
    """Whether any grant covers `topic`."""
    return any(g.allows(topic) for g in grants)


@dataclass(frozen=True, slots=True)
class Narrowed:
    """A request narrowed to the grants: the patterns to hold, and each requested
    pattern (as the client wrote it, normalized) with no allowed topic at all."""

    allowed: list[TopicPattern]
    forbidden: list[str]


def narrow(
    patterns: Iterable[TopicPattern], grants: tuple[Grant, ...], known_symbols: frozenset[str]
) -> Narrowed:
    """Narrow requested patterns to what `grants` allow.

    A pattern a grant covers whole is kept as it is; otherwise it is replaced by its
    intersections with the grants (`quote.*` under `quote.BTC-USD` and `*.ETH-USD`
    becomes those two topics), so a wildcard never matches a topic outside the grants.
    An intersection naming a symbol the server does not carry is dropped. A pattern
    left with nothing is forbidden.

    Args:
        patterns: parsed subscription patterns.
        grants: the connection's entitlements.
        known_symbols: the symbols the hub carries.

    Returns:
        The allowed patterns (deduplicated, in request order) and the forbidden ones.
    """
    allowed: dict[TopicPattern, None] = {}
    forbidden: list[str] = []
    everything = allows_all(grants)
    for pattern in patterns:
        if everything or any(g.covers(pattern) for g in grants):
            allowed[pattern] = None
            continue
        found = False
        for grant in grants:
            part = grant.intersect(pattern)
            if part is None or (part.symbol != WILDCARD and part.symbol not in known_symbols):
                continue
            allowed[part] = None
            found = True
        if not found:
            forbidden.append(str(pattern))
    return Narrowed(list(allowed), forbidden)
