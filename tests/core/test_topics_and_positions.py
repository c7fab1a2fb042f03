from __future__ import annotations

import pytest

from ticker.core.position import Position
from ticker.core.topics import ChannelKind, TopicPattern, channel_kind
from ticker.errors import BadPosition, BadTopic


def test_pattern_with_wildcard_matches_every_symbol_of_its_channel() -> None:
    pattern = TopicPattern.parse("quote.*")
    assert pattern.matches("quote.BTC-USD")
    assert pattern.matches("quote.ETH-USD")
    assert not pattern.matches("trade.BTC-USD")
    assert str(pattern) == "quote.*"


def test_exact_pattern_matches_only_its_topic() -> None:
    pattern = TopicPattern.parse("book.BTC-USD")
    assert pattern.matches("book.BTC-USD")
    assert not pattern.matches("book.ETH-USD")


@pytest.mark.parametrize(
    "text", ["quote", "nope.BTC-USD", "quote.btc-usd", "quote.BTC", "quote.", "x" * 80, "quote.B*"]
)
def test_bad_patterns_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(BadTopic) as info:
        TopicPattern.parse(text)
    assert info.value.close_code == 4400
    assert info.value.http_status == 400
    assert str(info.value)


def test_channel_kinds() -> None:
    assert channel_kind("quote.X-Y") is ChannelKind.LATEST
    assert channel_kind("ticker.X-Y") is ChannelKind.LATEST
    assert channel_kind("book.X-Y") is ChannelKind.BOOK
    assert channel_kind("trade.X-Y") is ChannelKind.EVENT
    with pytest.raises(BadTopic):
        channel_kind("nope.X-Y")


def test_position_text_round_trip_and_order() -> None:
    position = Position.parse("17-420")
    assert position == Position(17, 420)
    assert str(position) == "17-420"
    assert Position(1, 5) < Position(1, 6) < Position(2, 0)


@pytest.mark.parametrize(
    "text", ["", "17", "17-", "-5", "a-1", "1-b", "1-2-3", "1-" + "9" * 50, "\u0661-1"]
)
def test_bad_positions_are_refused(text: str) -> None:
    with pytest.raises(BadPosition):
        Position.parse(text)
