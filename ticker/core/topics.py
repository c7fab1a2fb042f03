"""Topic names, channel kinds and subscription patterns.

A topic is `<channel>.<symbol>` (`quote.BTC-USD`); a pattern may use `*` for the
symbol (`quote.*`). A venue's own data has the channel `<kind>@<venue>` (`book@cbx`),
whose venue a pattern may also make `*` (`book@*.BTC-USD`). The channel decides how a
topic's state changes: latest-value (merge of fields), book (absolute levels) or event
(each message stands alone). This module owns that grammar and holds no topic state.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from ticker.errors import BadTopic
from ticker.model.instruments import is_valid_symbol


class ChannelKind(enum.Enum):
    """How messages of a channel change the topic's state."""

    LATEST = "latest"
    """Field-level merge; conflatable (quote, ticker)."""
    BOOK = "book"
    """Absolute size per price level, 0 removes; conflatable (book)."""
    EVENT = "event"
    """Each message is a whole event; the state is the last one; never conflated (trade)."""


CHANNELS: Final[dict[str, ChannelKind]] = {
    "quote": ChannelKind.LATEST,
    "ticker": ChannelKind.LATEST,
    "book": ChannelKind.BOOK,
    "trade": ChannelKind.EVENT,
}
VENUE_CHANNELS: Final[dict[str, ChannelKind]] = {
    "quote": ChannelKind.LATEST,
    "book": ChannelKind.BOOK,
}
"""Kinds a venue's own topics come in: `quote@<venue>` (its BBO), `book@<venue>`."""
VENUE_SEPARATOR: Final = "@"
MAX_TOPIC_LENGTH: Final = 64
WILDCARD: Final = "*"
_VENUE = re.compile(r"[a-z0-9_-]{1,16}")
"""A venue name, as `ticker.model.event_codec` accepts it from publishers."""


def venue_channel(kind: str, venue: str) -> str:
    """The channel of one venue's own topics of a kind: `book@cbx` (no validation)."""
    return f"{kind}{VENUE_SEPARATOR}{venue}"


def _channel_kind(channel: str) -> ChannelKind | None:
    """The kind of a channel name (`quote`, `book@cbx`), None when it is not one."""
    kind = CHANNELS.get(channel)
    if kind is not None:
        return kind
    base, at, venue = channel.partition(VENUE_SEPARATOR)
    if at and _VENUE.fullmatch(venue):
        return VENUE_CHANNELS.get(base)
    return None


def is_channel(channel: str) -> bool:
    """Whether `channel` names a channel: consolidated (`quote`) or a venue's (`quote@cbx`)."""
    return _channel_kind(channel) is not None


def is_channel_pattern(channel: str) -> bool:
    """A channel, or a venue channel with `*` for the venue (`quote@*`)."""
    base, at, venue = channel.partition(VENUE_SEPARATOR)
    if at and venue == WILDCARD:
        return base in VENUE_CHANNELS
    return is_channel(channel)


def channel_matches(pattern: str, channel: str) -> bool:
    """Whether a channel pattern (`quote`, `quote@cbx`, `quote@*`) covers `channel`.

    `quote` never covers `quote@cbx`: a venue's topics are never matched by a pattern
    of the consolidated channel, so `quote.*` keeps meaning the consolidated quotes.
    """
    if pattern == channel:
        return True
    if pattern.endswith("@*"):
        return channel.startswith(pattern[:-1]) and len(channel) > len(pattern) - 1
    return False


def topic_name(channel: str, symbol: str) -> str:
    """The topic string for a channel and a canonical symbol (no validation)."""
    return f"{channel}.{symbol}"


def channel_kind(topic: str) -> ChannelKind:
    """The kind of a valid topic's channel.

    Raises:
        BadTopic: the channel is unknown.
    """
    channel = topic.partition(".")[0]
    kind = _channel_kind(channel)
    if kind is None:
        raise BadTopic(f"unknown channel {channel!r} in topic {topic!r}")
    return kind


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A subscription: one channel (or a venue channel with `*` for the venue) and one
    symbol or `*`."""

    channel: str
    symbol: str

    @classmethod
    def parse(cls, text: str) -> TopicPattern:
        """Parse `quote.BTC-USD`, `quote.*`, `book@cbx.*` or `book@*.BTC-USD`.

        Raises:
            BadTopic: too long, not `<channel>.<symbol>`, unknown channel, bad symbol.
        """
        if len(text) > MAX_TOPIC_LENGTH:
            raise BadTopic(f"topic longer than {MAX_TOPIC_LENGTH} characters")
        channel, dot, symbol = text.partition(".")
        if not dot:
            raise BadTopic(f"topic {text!r} is not <channel>.<symbol>")
        if not is_channel_pattern(channel):
            known = ", ".join([*sorted(CHANNELS), "quote@<venue>", "book@<venue>"])
            raise BadTopic(f"unknown channel {channel!r} in {text!r}; known: {known}")
        if symbol != WILDCARD and not is_valid_symbol(symbol):
            raise BadTopic(f"bad symbol {symbol!r} in {text!r}: expected e.g. BTC-USD or *")
        return cls(channel, symbol)

    def matches(self, topic: str) -> bool:
        """True when `topic` (a valid topic name) falls under this pattern."""
        channel, _, symbol = topic.partition(".")
        if self.symbol != WILDCARD and symbol != self.symbol:
            return False
        return channel == self.channel or channel_matches(self.channel, channel)

    @property
    def exact(self) -> bool:
        """Whether the pattern names one topic (no `*` for the symbol or the venue)."""
        return self.symbol != WILDCARD and not self.channel.endswith(VENUE_SEPARATOR + WILDCARD)

    def __str__(self) -> str:
        return topic_name(self.channel, self.symbol)
