"""The venue simulators: deterministic per seed, believable books, sessions."""

from __future__ import annotations

from itertools import pairwise

import pytest

from feeds.simulator import EPOCH_NS, Frame, make_simulator
from feeds.universe import INSTRUMENTS
from ticker.venues import cbx_wire, fxa_messages, fxa_wire, itx_wire
from ticker.venues.reference import VENUES


@pytest.mark.parametrize("venue", VENUES)
def test_same_seed_same_bytes(venue: str) -> None:
    def run(seed: int) -> list[tuple[int, bytes]]:
        sim = make_simulator(venue, seed, 500.0)
        frames = sim.connect() + [sim.next_frame() for _ in range(2000)]
        return [(f.ts_ns, f.data) for f in frames]

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("venue", VENUES)
def test_books_are_believable(venue: str) -> None:
    sim = make_simulator(venue, 9, 5_000.0)
    sim.connect()
    for i in range(6000):
        sim.next_frame()
        if i % 500:
            continue
        for symbol, (bids, asks) in sim.books().items():
            inst = INSTRUMENTS[symbol]
            assert len(bids) >= 10 and len(asks) >= 10
            assert bids[0][0] < asks[0][0]
            assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
            assert [p for p, _ in asks] == sorted(p for p, _ in asks)
            for price, size in bids + asks:
                assert price > 0 and price % inst.tick == 0
                assert size > 0 and size % inst.lot == 0


def test_prices_are_coherent_across_venues() -> None:
    sims = {v: make_simulator(v, 21, 2_000.0) for v in VENUES}
    for sim in sims.values():
        sim.connect()
        while sim.now_ns < EPOCH_NS + 10 * 10**9:
            sim.next_frame()
    for symbol in ("BTC-USD", "ETH-USD", "SOL-USD"):
        mids = []
        for sim in sims.values():
            bids, asks = sim.books()[symbol]
            mids.append((bids[0][0] + asks[0][0]) / 2)
        start = INSTRUMENTS[symbol].start_price
        assert max(mids) - min(mids) < start * 0.002, (symbol, mids)
        assert any(abs(m - start) > INSTRUMENTS[symbol].tick for m in mids)  # it moved


@pytest.mark.parametrize("rate", [2.0, 50_000.0])
def test_time_advances_at_the_rate_and_heartbeats_come_each_second(rate: float) -> None:
    sim = make_simulator("cbx", 1, rate)
    start = sim.connect()[0].ts_ns
    assert start == EPOCH_NS
    interval = round(1e9 / rate)
    frames = []
    while sim.now_ns < start + 3_500_000_000:
        frames.append(sim.next_frame())
    beats = [f for f in frames if b'"type":"heartbeat"' in f.data]
    market = [f for f in frames if b'"type":"heartbeat"' not in f.data]
    assert sorted({f.ts_ns - start for f in beats}) == [10**9, 2 * 10**9, 3 * 10**9]
    assert len(beats) == 3 * len(sim.books())
    steps = {b.ts_ns - a.ts_ns for a, b in pairwise(market)}
    assert min(steps) == interval and max(steps) <= 2 * interval
    assert abs(len(market) - 3.5 * rate) <= 4
    clock = sim.now_ns
    sim.advance(10**9)
    assert sim.next_frame().ts_ns >= clock + 10**9


def test_cbx_session_starts_with_snapshots_at_the_current_sequence() -> None:
    sim = make_simulator("cbx", 2, 100.0, ["BTC-USD", "ETH-USD"])
    first = [cbx_wire.decode_message(f.data) for f in sim.connect()]
    assert [type(m).__name__ for m in first] == ["CbxSnapshot", "CbxSnapshot"]
    for _ in range(300):
        sim.next_frame()
    again = [cbx_wire.decode_message(f.data) for f in sim.connect()]
    assert all(b.sequence > a.sequence for a, b in zip(first, again, strict=True))
    assert {m.product_id: (m.bids, m.asks) for m in again} == sim.books()  # type: ignore[union-attr]


def test_fxa_session_starts_with_a_logon_at_sequence_one() -> None:
    sim = make_simulator("fxa", 2, 100.0)
    for _ in range(2):
        frames = [fxa_wire.decode_message(f.data) for f in sim.connect()]
        assert isinstance(frames[0], fxa_messages.FxaLogon) and frames[0].header.seq == 1
        assert [m.header.seq for m in frames] == list(range(1, len(frames) + 1))
        assert all(isinstance(m, fxa_messages.FxaSnapshot) for m in frames[1:])
        for _ in range(50):
            sim.next_frame()


def test_itx_session_starts_a_new_mold_session_at_sequence_one() -> None:
    sim = make_simulator("itx", 2, 100.0)
    sessions = []
    for _ in range(2):
        packets = [itx_wire.decode_packet(f.data) for f in sim.connect()]
        sessions.append(packets[0].session)
        assert packets[0].sequence == 1
        assert all(isinstance(p.messages[0], itx_wire.ItxSnapshot) for p in packets)
        assert all(p.messages[0].seq == 0 for p in packets)
        for _ in range(50):
            sim.next_frame()
    assert sessions[0] != sessions[1]


@pytest.mark.parametrize("venue", VENUES)
def test_requested_snapshot_follows_what_is_queued(venue: str) -> None:
    sim = make_simulator(venue, 4, 100.0)
    sim.connect()
    for _ in range(100):
        sim.next_frame()
    symbol = next(iter(sim.books()))
    sim.request_snapshot(symbol)
    sim.request_snapshot("NOT-LISTED")
    frames: list[Frame] = []
    while not sim.idle or not frames:
        frames.append(sim.next_frame())
    assert len(frames) <= 20
    last = frames[-1].data
    if venue == "cbx":
        msg = cbx_wire.decode_message(last)
        assert isinstance(msg, cbx_wire.CbxSnapshot)
        assert (msg.bids, msg.asks) == sim.books()[symbol]
    elif venue == "fxa":
        assert isinstance(fxa_wire.decode_message(last), fxa_messages.FxaSnapshot)
    else:
        assert isinstance(itx_wire.decode_packet(last).messages[0], itx_wire.ItxSnapshot)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_simulator("nyse", 1, 10.0)
    with pytest.raises(ValueError):
        make_simulator("itx", 1, 10.0, ["XRP-USD"])
    with pytest.raises(ValueError):
        make_simulator("cbx", 1, 0.0)
