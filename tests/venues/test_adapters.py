"""Adapter behaviour common to the three venues, on hand-made messages.

Sequencing per symbol, resync of one symbol only, quotes on BBO changes only,
crossing updates treated as faults, bounds, disconnects.
"""

from __future__ import annotations

import logging

import pytest

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput, RequestSnapshot
from ticker.ingest.normalizer import Phase
from ticker.model.events import BookUpdate, Quote, TakerSide, Trade
from ticker.model.fixed import MAX_NANOS
from ticker.venues import AdapterBase, make_adapter
from ticker.venues.reference import VENUES

from .builders import T0, Builder, builder

P = 1_000_000_000  # one unit of price or size, in nanos
BIDS = [(100 * P, 2 * P), (99 * P, 3 * P)]
ASKS = [(101 * P, 1 * P), (102 * P, 4 * P)]
NOW = T0 + 1


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start(venue: str, config: IngestConfig | None = None) -> tuple[AdapterBase, Builder]:
    """An adapter with BTC-USD and ETH-USD live at seq 10 (and fxa logged on)."""
    adapter = make_adapter(venue, config=config)
    b = builder(venue)
    if venue == "fxa":
        feed(adapter, b.logon())  # type: ignore[union-attr]
    for symbol in ("BTC-USD", "ETH-USD"):
        feed(adapter, b.snapshot(symbol, 10, BIDS, ASKS))
    return adapter, b


def feed(adapter: AdapterBase, data: bytes) -> AdapterOutput:
    return adapter.on_message(data, NOW)


def kinds(out: AdapterOutput) -> list[str]:
    return [type(e).__name__ for e in out.events]


def test_snapshot_publishes_the_book_and_the_quote(venue: str) -> None:
    adapter = make_adapter(venue)
    b = builder(venue)
    if venue == "fxa":
        feed(adapter, b.logon())  # type: ignore[union-attr]
    out = feed(adapter, b.snapshot("BTC-USD", 10, list(reversed(BIDS)), ASKS))
    assert out.events == [
        BookUpdate(venue, "BTC-USD", T0, tuple(BIDS), tuple(ASKS), True),
        Quote(venue, "BTC-USD", T0, 100 * P, 2 * P, 101 * P, 1 * P),
    ]
    assert adapter.phases()["BTC-USD"] is Phase.LIVE
    assert adapter.books()["BTC-USD"] == (tuple(BIDS), tuple(ASKS))


def test_quotes_only_when_the_bbo_changes(venue: str) -> None:
    adapter, b = start(venue)
    deep = feed(adapter, b.update("BTC-USD", 11, True, 98 * P, 5 * P))
    assert deep.events == [BookUpdate(venue, "BTC-USD", T0, ((98 * P, 5 * P),), (), False)]
    same = feed(adapter, b.update("BTC-USD", 12, True, 100 * P, 2 * P))
    assert kinds(same) == ["BookUpdate"]
    top = feed(adapter, b.update("BTC-USD", 13, False, 101 * P, 0))
    assert top.events == [
        BookUpdate(venue, "BTC-USD", T0, (), ((101 * P, 0),), False),
        Quote(venue, "BTC-USD", T0, 100 * P, 2 * P, 102 * P, 4 * P),
    ]


def test_a_gap_resyncs_that_symbol_only(venue: str) -> None:
    adapter, b = start(venue)
    out = feed(adapter, b.update("BTC-USD", 12, True, 98 * P, 5 * P))  # 11 is missing
    assert out.events == []
    assert out.requests == [RequestSnapshot(venue, "BTC-USD")]
    assert adapter.phases() | {} == {
        s: Phase.RESYNCING if s == "BTC-USD" else Phase.LIVE if s == "ETH-USD" else Phase.UNKNOWN
        for s in adapter.phases()
    }
    # The other symbol carries on; the resyncing one drops its updates, asks only once.
    assert kinds(feed(adapter, b.update("ETH-USD", 11, True, 98 * P, 5 * P))) == ["BookUpdate"]
    dropped = feed(adapter, b.update("BTC-USD", 13, True, 97 * P, 5 * P))
    assert dropped.events == [] and dropped.requests == []
    assert adapter.counters.stale_dropped == 2
    assert adapter.counters.resyncs == 1
    # The snapshot replaces the book; anything it already includes is stale.
    bids = [(100 * P, 7 * P)]
    out = feed(adapter, b.snapshot("BTC-USD", 14, bids, ASKS))
    assert out.events == [
        BookUpdate(venue, "BTC-USD", T0, tuple(bids), tuple(ASKS), True),
        Quote(venue, "BTC-USD", T0, 100 * P, 7 * P, 101 * P, 1 * P),
    ]
    assert feed(adapter, b.update("BTC-USD", 14, True, 1 * P, 1 * P)).events == []
    assert adapter.counters.stale_dropped == 3
    assert kinds(feed(adapter, b.update("BTC-USD", 15, True, 1 * P, 1 * P))) == ["BookUpdate"]
    assert set(adapter.phases().values()) <= {Phase.LIVE, Phase.UNKNOWN}


def test_a_resend_or_old_message_is_dropped_without_events(venue: str) -> None:
    adapter, b = start(venue)
    data = b.update("BTC-USD", 11, True, 98 * P, 5 * P)
    assert kinds(feed(adapter, data)) == ["BookUpdate"]
    assert feed(adapter, data).events == []
    assert adapter.counters.duplicates == 1
    assert adapter.phases()["BTC-USD"] is Phase.LIVE


def test_trades_map_to_the_taker_side_and_are_never_published_twice(venue: str) -> None:
    adapter, b = start(venue)
    data = b.trade("BTC-USD", 11, True, 101 * P, P // 2)
    out = feed(adapter, data)
    trades = [e for e in out.events if isinstance(e, Trade)]
    assert len(trades) == 1
    assert trades[0].side is TakerSide.BUY
    assert (trades[0].price, trades[0].size) == (101 * P, P // 2)
    assert [e for e in feed(adapter, data).events if isinstance(e, Trade)] == []
    sell = feed(adapter, b.trade("BTC-USD", 12, False, 100 * P, P))
    assert [e.side for e in sell.events if isinstance(e, Trade)] == [TakerSide.SELL]


def test_trades_during_a_resync_are_still_published_once(venue: str) -> None:
    adapter, b = start(venue)
    feed(adapter, b.update("BTC-USD", 12, True, 98 * P, 5 * P))  # gap: resync
    out = feed(adapter, b.trade("BTC-USD", 13, True, 101 * P, P))
    assert [type(e) for e in out.events if isinstance(e, Trade)] == [Trade]
    feed(adapter, b.snapshot("BTC-USD", 12, BIDS, ASKS))
    # The same trade again after the snapshot: in sequence for the book, not new.
    again = feed(adapter, b.trade("BTC-USD", 13, True, 101 * P, P))
    assert [e for e in again.events if isinstance(e, Trade)] == []
    assert adapter.phases()["BTC-USD"] is Phase.LIVE


def test_a_crossing_update_is_malformed_and_resyncs(venue: str) -> None:
    adapter, b = start(venue)
    out = feed(adapter, b.update("BTC-USD", 11, True, 101 * P, P))
    assert out.events == []
    assert out.requests == [RequestSnapshot(venue, "BTC-USD")]
    assert adapter.counters.malformed == 1
    assert adapter.phases()["BTC-USD"] is Phase.RESYNCING
    assert adapter.phases()["ETH-USD"] is Phase.LIVE


def test_a_crossed_snapshot_is_refused(venue: str) -> None:
    adapter, b = start(venue)
    out = feed(adapter, b.snapshot("ETH-USD", 20, [(101 * P, P)], [(101 * P, P)]))
    assert out.events == []
    assert adapter.counters.malformed == 1
    assert adapter.phases()["ETH-USD"] is Phase.RESYNCING


def test_a_multi_level_message_is_one_book_update(venue: str) -> None:
    adapter, b = start(venue)
    changes = [(False, 101 * P, 0), (True, 101 * P, 6 * P), (True, 98 * P, P)]
    (data,) = b.updates("BTC-USD", 11, changes)
    out = feed(adapter, data)
    if venue == "itx":  # one record per level: one update each
        assert kinds(out) == ["BookUpdate", "Quote", "BookUpdate", "Quote", "BookUpdate"]
    else:
        assert out.events == [
            BookUpdate(
                venue,
                "BTC-USD",
                T0,
                ((101 * P, 6 * P), (98 * P, P)),
                ((101 * P, 0),),
                False,
            ),
            Quote(venue, "BTC-USD", T0, 101 * P, 6 * P, 102 * P, 4 * P),
        ]
    assert not any(track.book.crossed() for track in adapter.norm.tracks.values())


def test_disconnect_withdraws_every_book_and_the_next_session_recovers(venue: str) -> None:
    adapter, _ = start(venue)
    out = adapter.on_disconnect(NOW)
    assert out.events == [
        event
        for symbol in ("BTC-USD", "ETH-USD")
        for event in (
            BookUpdate(venue, symbol, NOW, (), (), True),
            Quote(venue, symbol, NOW, None, None, None, None),
        )
    ]
    assert adapter.counters.disconnects == 1
    assert all(p is Phase.UNKNOWN for p in adapter.phases().values())
    assert all(book == ((), ()) for book in adapter.books().values())
    assert adapter.on_disconnect(NOW).events == []  # nothing left to withdraw
    b2 = builder(venue)
    if venue == "fxa":
        feed(adapter, b2.logon())  # type: ignore[union-attr]
    assert kinds(feed(adapter, b2.snapshot("BTC-USD", 3, BIDS, ASKS))) == ["BookUpdate", "Quote"]
    assert kinds(feed(adapter, b2.update("BTC-USD", 4, True, 98 * P, P))) == ["BookUpdate"]


def test_updates_before_any_snapshot_ask_for_one(venue: str) -> None:
    adapter = make_adapter(venue)
    b = builder(venue)
    out = feed(adapter, b.update("BTC-USD", 5, True, 98 * P, P))
    assert out.events == []
    assert out.requests == [RequestSnapshot(venue, "BTC-USD")]


def test_overdue_snapshots_are_asked_again_with_capped_backoff(venue: str) -> None:
    config = IngestConfig(resync_timeout_ns=100, resync_max_backoff_ns=300)
    adapter, b = start(venue, config)
    feed(adapter, b.update("BTC-USD", 12, True, 98 * P, P))
    asks = [t for t in range(NOW, NOW + 1500, 10) if adapter.on_timer(t).requests]
    assert [t - NOW for t in asks] == [100, 300, 600, 900, 1200]


def test_inflight_resyncs_are_bounded(venue: str) -> None:
    adapter, b = start(venue, IngestConfig(max_inflight_resyncs=1))
    first = feed(adapter, b.update("BTC-USD", 12, True, 98 * P, P))
    second = feed(adapter, b.update("ETH-USD", 12, True, 98 * P, P))
    assert first.requests == [RequestSnapshot(venue, "BTC-USD")]
    assert second.requests == []
    out = feed(adapter, b.snapshot("BTC-USD", 12, BIDS, ASKS))
    assert out.requests == [RequestSnapshot(venue, "ETH-USD")]


def test_book_depth_is_bounded(venue: str) -> None:
    adapter, b = start(venue, IngestConfig(max_levels_per_side=3))
    assert kinds(feed(adapter, b.update("BTC-USD", 11, True, 98 * P, P))) == ["BookUpdate"]
    assert feed(adapter, b.update("BTC-USD", 12, True, 97 * P, P)).events == []
    assert adapter.counters.malformed == 1
    assert len(adapter.books()["BTC-USD"][0]) == 3
    deep = [(p * P, P) for p in range(1, 50)]
    feed(adapter, b.snapshot("ETH-USD", 20, deep, ASKS))
    assert adapter.books()["ETH-USD"][0] == ((49 * P, P), (48 * P, P), (47 * P, P))


def test_oversized_and_garbage_messages_are_counted_and_logged(
    venue: str, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(venue, config=IngestConfig(max_message_bytes=64))
    with caplog.at_level(logging.WARNING, logger="ticker.ingest"):
        assert feed(adapter, b"x" * 65).events == []
        assert feed(adapter, b"\x00garbage").events == []
    assert adapter.counters.malformed == 2
    assert adapter.counters.messages == 2
    assert len(caplog.records) == 2
    assert all(r.name == "ticker.ingest" and venue in r.getMessage() for r in caplog.records)


def test_counters_count_messages_and_events(venue: str) -> None:
    adapter, b = start(venue)
    before = adapter.counters.messages, adapter.counters.events
    out = feed(adapter, b.update("BTC-USD", 11, False, 101 * P, 3 * P))
    assert adapter.counters.messages == before[0] + 1
    assert adapter.counters.events == before[1] + len(out.events) == before[1] + 2


def test_values_beyond_64_bit_nanos_are_malformed_not_events(venue: str) -> None:
    adapter, b = start(venue)
    # Each value fits the venue's own wire; in nanos it would not fit the hub's.
    for data in (
        b.trade("BTC-USD", 11, True, 100 * P, MAX_NANOS + 1000),
        b.update("BTC-USD", 11, True, MAX_NANOS + 10, P),
        b.update("ETH-USD", 11, False, 101 * P, MAX_NANOS + 1000),
    ):
        assert feed(adapter, data).events == []
    assert adapter.counters.malformed == 3
    # The largest values that fit still pass (itx scales its integers up by 1,000).
    top = MAX_NANOS - MAX_NANOS % 1000
    fresh, b2 = start(venue)
    (trade,) = feed(fresh, b2.trade("BTC-USD", 11, True, 100 * P, top)).events[:1]
    assert isinstance(trade, Trade) and (trade.price, trade.size) == (100 * P, top)
    assert fresh.counters.malformed == 0
