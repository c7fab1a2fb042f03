"""The normalized-event codec: round trips, refusals, and the server's sanity checks."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.model.event_codec import (
    BadEvent,
    check_event,
    decode_event,
    encode_event,
    event_from_array,
)
from ticker.model.events import (
    BookUpdate,
    NormalizedEvent,
    Quote,
    TakerSide,
    TickerStats,
    Trade,
)
from ticker.model.fixed import MAX_NANOS

KNOWN = frozenset({"BTC-USD", "ETH-USD"})
BIG = MAX_NANOS + 1
"""One past the largest value the wire carries."""
venues = st.sampled_from(["cbx", "fxa", "itx", "ticker"])
symbols = st.sampled_from(sorted(KNOWN))
times = st.integers(0, 2**63 - 1)
nanos = st.integers(1, 10**15)
maybe = st.none() | nanos
levels = st.lists(st.tuples(nanos, st.integers(0, 10**15)), max_size=20).map(tuple)

events: st.SearchStrategy[NormalizedEvent] = st.one_of(
    st.builds(Trade, venues, symbols, times, nanos, nanos, st.sampled_from(TakerSide),
              st.text(max_size=20)),
    st.builds(Quote, venues, symbols, times, maybe, maybe, maybe, maybe),
    st.builds(BookUpdate, venues, symbols, times, levels, levels, st.booleans()),
    st.builds(TickerStats, venues, symbols, times, maybe, maybe, maybe, maybe,
              st.integers(0, 10**15), st.none() | st.integers(-(10**15), 10**15)),
)  # fmt: skip


@given(events)
def test_decode_of_encode_is_the_event(event: NormalizedEvent) -> None:
    data = encode_event(event)
    assert decode_event(data) == event
    assert encode_event(decode_event(data)) == data


def test_a_trade_is_compact() -> None:
    trade = Trade("cbx", "BTC-USD", 1_704_067_200_000_000_000, 43_250_500_000_000,
                  1_250_000, TakerSide.BUY, "9123")  # fmt: skip
    assert len(encode_event(trade)) < 50


@pytest.mark.parametrize(
    ("array", "match"),
    [
        ("t", "an event is an array"),
        (["x", "cbx", "BTC-USD", 1], "unknown event type"),
        (["t", "cbx", "BTC-USD", 1, 2, 3, "x", "id"], "side 'b' or 's'"),
        # Found by tests/fuzz: an unhashable side raised TypeError (an internal error).
        (["t", "cbx", "BTC-USD", 1, 2, 3, ["b"], "id"], "side 'b' or 's'"),
        (["t", "cbx", "BTC-USD", 1, 2, 3, {"b": 1}, "id"], "side 'b' or 's'"),
        (["t", "cbx", "BTC-USD", 1.5, 2, 3, "b", "id"], "ts_ns an integer"),
        (["t", "cbx", "BTC-USD", 1, True, 3, "b", "id"], "price and size integers"),
        (["q", "cbx", "BTC-USD", 1, 1, 2, 3], "8 fields"),
        (["b", "cbx", "BTC-USD", 1, 1, [], []], "boolean"),
        (["b", "cbx", "BTC-USD", 1, True, [1, 2, 3], []], "pairs"),
        (["b", "cbx", "BTC-USD", 1, True, [1, 2] * 1001, []], "more than 1000 levels"),
        (["b", "cbx", "BTC-USD", 1, True, [1, 2**64], []], "integers"),
        (["k", "cbx", "BTC-USD", 1, 1, 1, 1, 1, None, 0], "volume is an integer"),
    ],
)
def test_ill_formed_arrays_are_refused_with_a_reason(array: object, match: str) -> None:
    with pytest.raises(BadEvent, match=match):
        event_from_array(array)


def test_undecodable_bytes_are_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="invalid msgpack"):
        decode_event(b"\xc1")
    with pytest.raises(BadEvent):
        decode_event(msgpack.packb({"t": 1}))


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (Trade("cbx", "DOGE-EUR", 1, 1, 1, TakerSide.BUY, "1"), "unknown symbol"),
        (Trade("CBX!", "BTC-USD", 1, 1, 1, TakerSide.BUY, "1"), "bad venue"),
        (Trade("cbx", "BTC-USD", -1, 1, 1, TakerSide.BUY, "1"), "ts_ns must be in"),
        (Trade("cbx", "BTC-USD", BIG, 1, 1, TakerSide.BUY, "1"), "ts_ns must be in"),
        (Trade("cbx", "BTC-USD", 1, 0, 1, TakerSide.BUY, "1"), "a price and a size in"),
        (Trade("cbx", "BTC-USD", 1, BIG, 1, TakerSide.BUY, "1"), "a price and a size in"),
        (Trade("cbx", "BTC-USD", 1, 1, BIG, TakerSide.BUY, "1"), "a price and a size in"),
        (Trade("cbx", "BTC-USD", 1, 1, 1, TakerSide.BUY, "x" * 65), "trade id longer"),
        (Quote("cbx", "BTC-USD", 1, 5, None, None, None), "both price and size"),
        (Quote("cbx", "BTC-USD", 1, -5, 1, None, None), "in [1, 2^63-1]"),
        (Quote("cbx", "BTC-USD", 1, 5, 1, 6, BIG), "in [1, 2^63-1]"),
        (BookUpdate("cbx", "BTC-USD", 1, ((5, -1),), (), False), "size in [0, 2^63-1]"),
        (BookUpdate("cbx", "BTC-USD", 1, (), ((5, BIG),), False), "size in [0, 2^63-1]"),
        (BookUpdate("cbx", "BTC-USD", 1, (), ((BIG, 1),), True), "price in [1, 2^63-1]"),
        (TickerStats("cbx", "BTC-USD", 1, 0, 1, 1, 1, 0, None), "ticker prices"),
        (TickerStats("cbx", "BTC-USD", 1, 1, 1, BIG, 1, 0, None), "ticker prices"),
        (TickerStats("cbx", "BTC-USD", 1, 1, 1, 1, 1, -1, None), "volume"),
        (TickerStats("cbx", "BTC-USD", 1, 1, 1, 1, 1, BIG, None), "volume"),
        (TickerStats("cbx", "BTC-USD", 1, 1, 1, 1, 1, 1, -BIG), "change"),
    ],
)
def test_insane_events_are_named(event: NormalizedEvent, problem: str) -> None:
    reason = check_event(event, KNOWN)
    assert reason is not None and problem in reason


def test_sane_events_pass() -> None:
    for event in (
        Trade("cbx", "BTC-USD", MAX_NANOS, MAX_NANOS, MAX_NANOS, TakerSide.BUY, "1"),
        BookUpdate("itx", "BTC-USD", 1, ((MAX_NANOS, MAX_NANOS),), (), False),
        Trade("cbx", "BTC-USD", 1, 1, 1, TakerSide.SELL, "1"),
        Quote("ticker", "ETH-USD", 1, None, None, 7, 1),
        BookUpdate("itx", "BTC-USD", 1, ((5, 0),), (), False),
        BookUpdate("itx", "BTC-USD", 1, (), (), True),
        TickerStats("fxa", "ETH-USD", 1, None, None, None, None, 0, None),
    ):
        assert check_event(event, KNOWN) is None
