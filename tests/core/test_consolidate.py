from __future__ import annotations

from ticker.core.consolidate import NS_PER_DAY, Consolidator
from ticker.core.sequencer import Sequencer
from ticker.model.events import BookUpdate, Quote, TakerSide, TickerStats, Trade


def make() -> Consolidator:
    return Consolidator(Sequencer(epoch=1, keyframe_interval=1000))


def test_composite_book_sums_sizes_across_venues() -> None:
    c = make()
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5), (99, 1)), ((101, 2),), True), 0)
    out = c.on_event(BookUpdate("b", "X-Y", 0, ((100, 3),), ((102, 4),), True), 0)
    assert [m.data for m in out] == [{"bids": [[100, 8]], "asks": [[102, 4]]}]
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, 0),), (), False), 0)
    assert [m.data for m in out] == [{"bids": [[100, 3]], "asks": []}]
    snap = c.sequencer.snapshot("book.X-Y", 0).data
    assert snap == {"bids": [[100, 3], [99, 1]], "asks": [[101, 2], [102, 4]]}


def test_an_empty_venue_snapshot_withdraws_that_venue_only() -> None:
    c = make()
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 5),), ((101, 2),), True), 0)
    c.on_event(BookUpdate("b", "X-Y", 0, ((100, 3),), (), True), 0)
    c.on_event(BookUpdate("a", "X-Y", 0, (), (), True), 0)
    assert c.sequencer.snapshot("book.X-Y", 0).data == {"bids": [[100, 3]], "asks": []}


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
    assert c.sequencer.snapshot("quote.X-Y", 0).data == expected


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
    stats = c.sequencer.snapshot("ticker.X-Y", 0).data
    assert stats == {"last": 110, "open": 100, "high": 110, "low": 90, "volume": 4, "change": 10}
    c.on_event(Trade("a", "X-Y", day + NS_PER_DAY, 95, 1, TakerSide.BUY, "t4"), 9)
    stats = c.sequencer.snapshot("ticker.X-Y", 0).data
    assert stats == {"last": 95, "open": 95, "high": 95, "low": 95, "volume": 1, "change": 0}


def test_venue_statistics_are_counted_not_published() -> None:
    c = make()
    assert c.on_event(TickerStats("a", "X-Y", 0, 1, 1, 1, 1, 1, 0), 0) == []
    assert c.venue_stats_seen == 1
