"""Topic names, channel kinds and subscription patterns.

A topic is `<channel>.<symbol>` (`quote.BTC-USD`); a pattern may use `*` for the
symbol (`quote.*`). The channel decides how a topic's state changes: latest-value
(merge of fields), book (absolute levels) or event (each message stands alone). This
module owns that grammar and must not hold any topic state.
"""

from __future__ import annotations

import enum
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
MAX_TOPIC_LENGTH: Final = 64
WILDCARD: Final = "*"


def topic_name(channel: str, symbol: str) -> str:
    """The topic string for a channel and a canonical symbol (no validation)."""
    return f"{channel}.{symbol}"


def channel_kind(topic: str) -> ChannelKind:
    """The kind of a valid topic's channel.

    Raises:
        BadTopic: the channel is unknown.
    """
    channel = topic.partition(".")[0]
    try:
        return CHANNELS[channel]
    except KeyError:
        raise BadTopic(f"unknown channel {channel!r} in topic {topic!r}") from None


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A subscription: one channel and one symbol or `*`."""

    channel: str
    symbol: str

    @classmethod
    def parse(cls, text: str) -> TopicPattern:
        """Parse `quote.BTC-USD` or `quote.*`.

        Raises:
            BadTopic: too long, not `<channel>.<symbol>`, unknown channel, bad symbol.
        """
        if len(text) > MAX_TOPIC_LENGTH:
            raise BadTopic(f"topic longer than {MAX_TOPIC_LENGTH} characters")
        channel, dot, symbol = text.partition(".")
        if not dot:
            raise BadTopic(f"topic {text!r} is not <channel>.<symbol>")
        if channel not in CHANNELS:
            known = ", ".join(sorted(CHANNELS))
            raise BadTopic(f"unknown channel {channel!r} in {text!r}; known: {known}")
        if symbol != WILDCARD and not is_valid_symbol(symbol):
            raise BadTopic(f"bad symbol {symbol!r} in {text!r}: expected e.g. BTC-USD or *")
        return cls(channel, symbol)

    def matches(self, topic: str) -> bool:
        """True when `topic` (a valid topic name) falls under this pattern."""
        channel, _, symbol = topic.partition(".")
        return channel == self.channel and (self.symbol == WILDCARD or symbol == self.symbol)

    def __str__(self) -> str:
        return topic_name(self.channel, self.symbol)
