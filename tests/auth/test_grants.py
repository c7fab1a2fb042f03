"""Entitlement algebra: narrowing never lets a topic through that the grants refuse,
and never drops one they allow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.budget import RANDOM
from ticker.auth.grants import MAX_GRANTS, Grant, allows_topic, narrow, parse_grants
from ticker.core.topics import CHANNELS, TopicPattern
from ticker.errors import BadTopic

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
KNOWN = frozenset(SYMBOLS[:2])  # SOL-USD: a symbol the server does not carry
TOPICS = [f"{c}.{s}" for c in CHANNELS for s in KNOWN]

channels = st.sampled_from([*CHANNELS, "*"])
symbols = st.sampled_from([*SYMBOLS, "*"])
grants_st = st.lists(st.builds(Grant, channels, symbols), max_size=4).map(tuple)
patterns_st = st.lists(
    st.builds(TopicPattern, st.sampled_from(list(CHANNELS)), st.sampled_from([*KNOWN, "*"])),
    min_size=1,
    max_size=4,
)

AUTH_PROPERTIES = settings(max_examples=100, derandomize=not RANDOM, database=None)


@AUTH_PROPERTIES
@given(patterns_st, grants_st)
def test_narrowed_patterns_match_only_allowed_topics(
    patterns: list[TopicPattern], grants: tuple[Grant, ...]
) -> None:
    result = narrow(patterns, grants, KNOWN)
    for topic in TOPICS:
        held = any(p.matches(topic) for p in result.allowed)
        asked = any(p.matches(topic) for p in patterns)
        # Sound: nothing outside the grants; complete: everything asked and allowed.
        assert held == (asked and allows_topic(grants, topic)), (topic, result)


@AUTH_PROPERTIES
@given(patterns_st, grants_st)
def test_a_pattern_is_forbidden_exactly_when_it_allows_no_topic(
    patterns: list[TopicPattern], grants: tuple[Grant, ...]
) -> None:
    result = narrow(patterns, grants, KNOWN)
    for pattern in patterns:
        some = any(pattern.matches(t) and allows_topic(grants, t) for t in TOPICS)
        assert (str(pattern) in result.forbidden) == (not some)


def test_a_wildcard_is_narrowed_to_the_granted_topics() -> None:
    grants = parse_grants(["quote.BTC-USD", "*.ETH-USD", "book.*"])
    result = narrow([TopicPattern.parse("quote.*")], grants, KNOWN)
    assert [str(p) for p in result.allowed] == ["quote.BTC-USD", "quote.ETH-USD"]
    result = narrow([TopicPattern.parse("book.*"), TopicPattern.parse("trade.*")], grants, KNOWN)
    assert [str(p) for p in result.allowed] == ["book.*", "trade.ETH-USD"]
    assert result.forbidden == []
    result = narrow([TopicPattern.parse("trade.BTC-USD")], grants, KNOWN)
    assert result.allowed == [] and result.forbidden == ["trade.BTC-USD"]


def test_grants_parse_and_refuse() -> None:
    assert parse_grants(["*", "*.*", "quote.*"]) == (Grant("*", "*"), Grant("quote", "*"))
    for bad in ("quote", "nope.*", "quote.bad symbol", "x" * 65, ""):
        with pytest.raises(BadTopic):
            parse_grants([bad])
    with pytest.raises(BadTopic):
        parse_grants([7])
    with pytest.raises(BadTopic, match="more than"):
        parse_grants([f"quote.S{i}-USD" for i in range(MAX_GRANTS + 1)])
