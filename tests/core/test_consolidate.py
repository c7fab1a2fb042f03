from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ticker.config import Config
from ticker.core.codec import decode_server
from ticker.core.consolidate import NS_PER_DAY, Consolidator
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.sequencer import Sequencer
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, TickerStats, Trade
from ticker.model.fixed import MAX_NANOS


def make() -> Consolidator:
    return Consolidator(Sequencer(epoch=1, keyframe_interval=1000))


def test_composite_book_sums_sizes_across_venues() -> None:
    c = make()
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5), (99, 1)), ((101, 2),), True), 0)
    out = c.on_event(BookUpdate("b", "X-Y", 0, ((100, 3),), ((102, 4),), True), 0)
    assert [m.data for m in out] == [{"bids": [[100, 8]], "asks": [[102, 4]]}]
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, 0),), (), False), 0)
    assert [m.data for m in out] == [{"bids": [[100, 3]], "asks": []}]
    snap = c.sequencer.snapshot("book.X-Y").data
    assert snap == {"bids": [[100, 3], [99, 1]], "asks": [[101, 2], [102, 4]]}


def test_an_empty_venue_snapshot_withdraws_that_venue_only() -> None:
    c = make()
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5),), ((101, 2),), True), 0)
    c.on_event(BookUpdate("b", "X-Y", 0, ((100, 3),), (), True), 0)
    c.on_event(BookUpdate("a", "X-Y", 0, (), (), True), 0)
    assert c.sequencer.snapshot("book.X-Y").data == {"bids": [[100, 3]], "asks": []}


def test_repeated_book_update_publishes_nothing() -> None:
    c = make()
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5),), (), False), 0)
    assert c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5),), (), False), 0) == []


def test_consolidated_quote_takes_best_price_and_sums_size_at_it() -> None:
    c = make()
    c.on_event(Quote("a", "X-Y", 0, 100, 5, 102, 1), 0)
    out = c.on_event(Quote("b", "X-Y", 0, 100, 2, 101, 3), 0)
    assert out[0].data == {"bid_size": 7, "ask": 101, "ask_size": 3}
    out = c.on_event(Quote("b", "X-Y", 0, None, None, None, None), 0)
    assert out[0].data == {"bid_size": 5, "ask": 102, "ask_size": 1}
    c.on_event(Quote("a", "X-Y", 0, None, None, None, None), 0)
    expected = {"bid": None, "bid_size": None, "ask": None, "ask_size": None}
    assert c.sequencer.snapshot("quote.X-Y").data == expected


def test_trades_publish_the_trade_and_session_statistics() -> None:
    c = make()
    day = 20_000 * NS_PER_DAY
    out = c.on_event(Trade("a", "X-Y", day + 5_000, 100, 2, TakerSide.BUY, "t1"), 7)
    assert [m.topic for m in out] == ["trade.X-Y", "ticker.X-Y"]
    assert out[0].data == {
        "price": 100,
        "size": 2,
        "side": "buy",
        "id": "t1",
        "venue": "a",
        "venue_ts": day // 1000 + 5,
    }
    c.on_event(Trade("b", "X-Y", day + 6_000, 90, 1, TakerSide.SELL, "t2"), 8)
    c.on_event(Trade("a", "X-Y", day + 7_000, 110, 1, TakerSide.BUY, "t3"), 9)
    stats = c.sequencer.snapshot("ticker.X-Y").data
    assert stats == {"last": 110, "open": 100, "high": 110, "low": 90, "volume": 4, "change": 10}
    c.on_event(Trade("a", "X-Y", day + NS_PER_DAY, 95, 1, TakerSide.BUY, "t4"), 9)
    stats = c.sequencer.snapshot("ticker.X-Y").data
    assert stats == {"last": 95, "open": 95, "high": 95, "low": 95, "volume": 1, "change": 0}


def test_venue_statistics_are_counted_not_published() -> None:
    c = make()
    assert c.on_event(TickerStats("a", "X-Y", 0, 1, 1, 1, 1, 1, 0), 0) == []
    assert c.venue_stats_seen == 1


# ------------------------------------------------------------ sums saturate

TOP = MAX_NANOS


def follow(hub: Hub, events: list[NormalizedEvent], mirror: Mirror) -> None:
    """Publish `events` and apply what goes out, decoded from its bytes, to `mirror`."""
    for event in events:
        for published in hub.publish(event, 0):
            message = decode_server(published.payload)
            assert isinstance(message, DataMessage)
            assert mirror.apply(message) == Applied(message.seq)


def test_a_days_volume_saturates_instead_of_overflowing() -> None:
    c = make()
    for i in range(3):
        c.on_event(Trade("a", "X-Y", 0, 100, TOP - i, TakerSide.BUY, str(i)), 0)
    assert c.sequencer.snapshot("ticker.X-Y").data["volume"] == TOP
    # A new UTC day starts counting again.
    c.on_event(Trade("a", "X-Y", NS_PER_DAY, 100, 5, TakerSide.BUY, "n"), 0)
    assert c.sequencer.snapshot("ticker.X-Y").data["volume"] == 5


def test_a_quote_size_summed_over_venues_saturates() -> None:
    c = make()
    for venue in ("a", "b", "c"):
        c.on_event(Quote(venue, "X-Y", 0, 100, TOP, 101, TOP - 1), 0)
    data = c.sequencer.snapshot("quote.X-Y").data
    assert data == {"bid": 100, "bid_size": TOP, "ask": 101, "ask_size": TOP}
    c.on_event(Quote("b", "X-Y", 0, None, None, None, None), 0)
    c.on_event(Quote("c", "X-Y", 0, None, None, 102, 1), 0)
    data = c.sequencer.snapshot("quote.X-Y").data
    assert data == {"bid": 100, "bid_size": TOP, "ask": 101, "ask_size": TOP - 1}


def test_a_composite_level_saturates_and_comes_back_exactly() -> None:
    c = make()
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, TOP),), (), True), 0)
    assert out[0].data["bids"] == [[100, TOP]]
    # Past the top a level publishes once, at the top; while it stays there, nothing.
    assert c.on_event(BookUpdate("b", "X-Y", 0, ((100, TOP),), (), True), 0) == []
    assert c.on_event(BookUpdate("c", "X-Y", 0, ((100, 7), (99, 1)), (), True), 0)[0].data == {
        "bids": [[99, 1]],
        "asks": [],
    }
    assert c.sequencer.snapshot("book.X-Y").data["bids"] == [[100, TOP], [99, 1]]
    # The exact sum is kept, so withdrawals land on the true size, not on the cap.
    assert c.on_event(BookUpdate("b", "X-Y", 0, (), (), True), 0) == []
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5),), (), False), 0)
    assert out[0].data["bids"] == [[100, 12]]
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, TOP - 3),), (), False), 0)
    assert out[0].data["bids"] == [[100, TOP]]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.booleans(),
            st.lists(
                st.tuples(st.integers(1, 4), st.sampled_from([0, 1, TOP // 2, TOP - 1, TOP])),
                max_size=4,
                unique_by=lambda level: level[0],
            ),
        ),
        max_size=30,
    )
)
def test_subscribers_hold_each_composite_level_as_the_saturated_exact_sum(
    steps: list[tuple[str, bool, list[tuple[int, int]]]],
) -> None:
    hub = Hub(Config(keyframe_interval=7), epoch=1)
    mirror = Mirror()
    venues: dict[str, dict[int, int]] = {}
    events: list[NormalizedEvent] = []
    for venue, snapshot, levels in steps:
        side = venues.setdefault(venue, {})
        if snapshot:
            side.clear()
        for price, size in levels:
            if size:
                side[price] = size
            else:
                side.pop(price, None)
        events.append(BookUpdate(venue, "X-Y", 0, tuple(levels), (), snapshot))
    follow(hub, events, mirror)
    totals: dict[int, int] = {}
    for side in venues.values():
        for price, size in side.items():
            totals[price] = totals.get(price, 0) + size
    expected = [[p, min(totals[p], TOP)] for p in sorted(totals, reverse=True)]
    held = mirror.data("book.X-Y")["bids"] if "book.X-Y" in mirror else []
    assert held == expected
    if "book.X-Y" in mirror:
        assert hub.snapshot("book.X-Y").data == mirror.data("book.X-Y")
