"""Rules particular to one venue: cbx heartbeats and tickers, fxa sessions and
statistics, itx packets, sessions, scales and derived statistics."""

from __future__ import annotations

import pytest

from feeds.fxa import FxaSimulator
from ticker.ingest.contract import RequestSnapshot
from ticker.ingest.normalizer import Phase
from ticker.model.events import BookUpdate, TakerSide, TickerStats, Trade
from ticker.model.fixed import MAX_NANOS
from ticker.venues import (
    FxaAdapter,
    cbx_wire,
    fxa_messages,
    fxa_wire,
    itx_wire,
    make_adapter,
    timestamps,
)
from ticker.venues.reference import Listing

from .builders import T0, FxaBuilder, ItxBuilder
from .test_adapters import ASKS, BIDS, NOW, P, feed, kinds, start

# ---------------------------------------------------------------- cbx


def test_cbx_heartbeat_reveals_a_gap_on_a_quiet_product() -> None:
    adapter, _ = start("cbx")
    quiet = cbx_wire.encode_heartbeat("ETH-USD", 10, T0, 0)
    assert feed(adapter, quiet).requests == []
    out = feed(adapter, cbx_wire.encode_heartbeat("BTC-USD", 11, T0, 0))
    assert out.requests == [RequestSnapshot("cbx", "BTC-USD")]
    assert adapter.counters.gaps == 1
    assert adapter.phases()["ETH-USD"] is Phase.LIVE


def test_cbx_heartbeat_for_a_product_without_a_book_asks_for_one() -> None:
    adapter = make_adapter("cbx")
    out = feed(adapter, cbx_wire.encode_heartbeat("SOL-USD", 3, T0, 0))
    assert out.requests == [RequestSnapshot("cbx", "SOL-USD")]


def test_cbx_ticker_becomes_ticker_stats() -> None:
    adapter, _ = start("cbx")
    data = cbx_wire.encode_ticker("BTC-USD", 11, T0, 105 * P, 100 * P, 110 * P, 90 * P, 7 * P)
    assert feed(adapter, data).events == [
        TickerStats("cbx", "BTC-USD", T0, 105 * P, 100 * P, 110 * P, 90 * P, 7 * P, 5 * P)
    ]


def test_cbx_match_side_is_the_makers() -> None:
    adapter, _ = start("cbx")
    data = cbx_wire.encode_match("BTC-USD", 11, T0, 77, "buy", 100 * P, P)
    assert feed(adapter, data).events == [
        Trade("cbx", "BTC-USD", T0, 100 * P, P, TakerSide.SELL, "77")
    ]


def test_cbx_unknown_product_is_malformed() -> None:
    adapter = make_adapter("cbx")
    assert feed(adapter, cbx_wire.encode_heartbeat("ZZZ-USD", 1, T0, 0)).events == []
    assert adapter.counters.malformed == 1


# ---------------------------------------------------------------- fxa


def test_fxa_session_gap_is_counted_and_old_sequence_numbers_dropped() -> None:
    adapter, b = start("fxa")
    assert isinstance(b, FxaBuilder)
    b.seq += 5  # five messages lost: no symbol of ours was in them
    assert kinds(feed(adapter, b.update("BTC-USD", 11, True, 98 * P, P))) == ["BookUpdate"]
    assert adapter.counters.gaps == 1
    b.seq -= 3
    assert feed(adapter, b.update("BTC-USD", 12, True, 97 * P, P)).events == []
    assert adapter.counters.duplicates == 1


def test_fxa_poss_dup_resend_is_dropped() -> None:
    adapter, b = start("fxa")
    data = b.update("BTC-USD", 11, True, 98 * P, P)
    feed(adapter, data)
    assert feed(adapter, FxaSimulator(1, 10.0).resend(data)).events == []
    assert adapter.counters.duplicates == 1


def test_fxa_logon_inside_a_session_restarts_it() -> None:
    adapter, _ = start("fxa")
    restart = fxa_messages.FxaLogon(fxa_messages.FxaHeader(1, "FXA", "TICKER", T0 + 10**9), 1, True)
    out = feed(adapter, fxa_wire.encode_message(restart))
    assert kinds(out) == ["BookUpdate", "Quote", "BookUpdate", "Quote"]
    assert adapter.counters.disconnects == 1
    # A late copy of the first logon is only a duplicate.
    adapter2, _ = start("fxa")
    stale = fxa_messages.FxaLogon(fxa_messages.FxaHeader(1, "FXA", "TICKER", T0), 1, True)
    assert feed(adapter2, fxa_wire.encode_message(stale)).events == []
    assert adapter2.counters.disconnects == 0


def test_fxa_statistics_entries_become_ticker_stats() -> None:
    adapter, b = start("fxa")
    assert isinstance(b, FxaBuilder)
    native = "BTC/USD"
    entries = (
        fxa_messages.FxaEntry(0, fxa_messages.TRADE, native, 11, 103 * P, P, "T1", 1),
        fxa_messages.FxaEntry(0, fxa_messages.OPEN, native, 12, 100 * P, None),
        fxa_messages.FxaEntry(0, fxa_messages.HIGH, native, 13, 104 * P, None),
        fxa_messages.FxaEntry(0, fxa_messages.LOW, native, 14, 99 * P, None),
        fxa_messages.FxaEntry(0, fxa_messages.VOLUME, native, 15, None, 12 * P),
    )
    data = fxa_wire.encode_message(fxa_messages.FxaIncremental(b.header(), entries))
    out = feed(adapter, data)
    assert out.events[-1] == TickerStats(
        "fxa", "BTC-USD", T0, 103 * P, 100 * P, 104 * P, 99 * P, 12 * P, 3 * P
    )
    assert kinds(out) == ["Trade", "TickerStats"]


def test_fxa_request_round_trips_to_the_venue_as_35_v() -> None:
    sim = FxaSimulator(5, 100.0, ["ETH-USD"])
    adapter = FxaAdapter([Listing("fxa", "ETH-USD", "ETH/USD")])
    for frame in sim.connect():
        adapter.on_message(frame.data, frame.ts_ns)
    request = adapter.encode_request(RequestSnapshot("fxa", "ETH-USD"), NOW)
    assert fxa_wire.decode_message(request) == fxa_messages.FxaSnapshotRequest(
        fxa_messages.FxaHeader(1, "TICKER", "FXA", NOW - NOW % 10**6), "R1", "ETH/USD"
    )
    sim.receive(request)
    answer = fxa_wire.decode_message(sim.next_frame().data)
    assert isinstance(answer, fxa_messages.FxaSnapshot) and answer.req_id == "R1"
    with pytest.raises(ValueError):
        adapter.encode_request(RequestSnapshot("fxa", "BTC-USD"), NOW)


def test_fxa_entry_for_an_unknown_symbol_is_malformed_but_the_rest_applies() -> None:
    adapter, b = start("fxa")
    assert isinstance(b, FxaBuilder)
    entries = (
        fxa_messages.FxaEntry(1, fxa_messages.BID, "NOPE/USD", 1, P, P),
        fxa_messages.FxaEntry(1, fxa_messages.BID, "BTC/USD", 11, 98 * P, P),
    )
    out = feed(adapter, fxa_wire.encode_message(fxa_messages.FxaIncremental(b.header(), entries)))
    assert kinds(out) == ["BookUpdate"]
    assert adapter.counters.malformed == 1


# ---------------------------------------------------------------- itx


def test_itx_prices_and_sizes_are_rescaled_to_nanos() -> None:
    adapter = make_adapter("itx")
    b = ItxBuilder()
    out = feed(adapter, b.snapshot("ETH-USD", 0, [(3199_12345678 * 10, 1_500_000 * 1000)], []))
    assert out.events[0] == BookUpdate(
        "itx", "ETH-USD", T0, ((3199_123_456_780, 1_500_000_000),), (), True
    )


def test_itx_duplicate_and_overlapping_packets() -> None:
    adapter, b = start("itx")
    assert isinstance(b, ItxBuilder)
    seq = b.seq
    two = b.packet(
        [b.record("BTC-USD", 11, True, 98 * P, P), b.record("BTC-USD", 12, True, 97 * P, P)]
    )
    assert kinds(feed(adapter, two)) == ["BookUpdate", "BookUpdate"]
    assert feed(adapter, two).events == []
    assert adapter.counters.duplicates == 1
    b.seq = seq + 1  # overlaps the second half of the previous packet
    overlap = b.packet(
        [b.record("BTC-USD", 12, True, 97 * P, P), b.record("BTC-USD", 13, True, 96 * P, P)]
    )
    out = feed(adapter, overlap)
    assert out.events == [BookUpdate("itx", "BTC-USD", T0, ((96 * P, P),), (), False)]
    assert adapter.counters.duplicates == 1


def test_itx_heartbeat_reveals_a_session_gap() -> None:
    adapter, b = start("itx")
    assert isinstance(b, ItxBuilder)
    assert feed(adapter, itx_wire.pack_packet(b.session, b.seq, [])).events == []
    assert adapter.counters.gaps == 0
    assert feed(adapter, itx_wire.pack_packet(b.session, b.seq + 4, [])).events == []
    assert adapter.counters.gaps == 1


def test_itx_new_session_name_restarts_everything() -> None:
    adapter, _ = start("itx")
    fresh = ItxBuilder("TEST000002")
    out = feed(adapter, fresh.snapshot("SOL-USD", 0, BIDS, ASKS))
    assert kinds(out) == ["BookUpdate", "Quote", "BookUpdate", "Quote", "BookUpdate", "Quote"]
    assert adapter.counters.disconnects == 1
    assert adapter.phases()["BTC-USD"] is Phase.UNKNOWN
    assert adapter.phases()["SOL-USD"] is Phase.LIVE


def test_itx_unknown_locate_is_malformed() -> None:
    adapter, b = start("itx")
    assert isinstance(b, ItxBuilder)
    record = itx_wire.pack_level_update(9999, 1, T0, itx_wire.BUY, 1, 1)
    assert feed(adapter, b.packet([record])).events == []
    assert adapter.counters.malformed == 1


def test_itx_statistics_are_derived_from_trades() -> None:
    adapter, b = start("itx")
    feed(adapter, b.trade("BTC-USD", 11, True, 101 * P, P))
    feed(adapter, b.trade("BTC-USD", 12, False, 99 * P, 2 * P))
    out = feed(adapter, b.trade("BTC-USD", 13, True, 100 * P, P))
    assert out.events[-1] == TickerStats(
        "itx", "BTC-USD", T0, 100 * P, 101 * P, 101 * P, 99 * P, 4 * P, -1 * P
    )
    adapter.on_disconnect(NOW)
    fresh = ItxBuilder("TEST000009")
    feed(adapter, fresh.snapshot("BTC-USD", 0, BIDS, ASKS))
    out = feed(adapter, fresh.trade("BTC-USD", 1, True, 105 * P, P))
    assert out.events[-1] == TickerStats(
        "itx", "BTC-USD", T0, 105 * P, 105 * P, 105 * P, 105 * P, P, 0
    )


# ---------------------------------------------------------------- numbers


def test_venue_times_stop_where_64_bit_ns_do() -> None:
    last = timestamps.parse_iso_us("2261-12-31T23:59:59.999999Z")
    assert last <= MAX_NANOS
    assert timestamps.parse_fix_ms("22611231-23:59:59.999") <= MAX_NANOS
    for bad in ("2262-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z"):
        with pytest.raises(ValueError, match="out of range"):
            timestamps.parse_iso_us(bad)
    with pytest.raises(ValueError, match="out of range"):
        timestamps.parse_fix_ms("99991231-23:59:59.999")
