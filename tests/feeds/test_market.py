"""The synthetic market: a shared mid path and a venue book that never crosses."""

from __future__ import annotations

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.market import BUCKET_NS, EPOCH_NS, MAX_DEPTH, MIN_DEPTH, MidPath, QuoteGrid, SimBook
from feeds.universe import INSTRUMENTS, VENUES, listings, venues_of


def test_the_universe_is_believable() -> None:
    assert len(INSTRUMENTS) >= 8
    multi = [s for s in INSTRUMENTS if len(venues_of(s)) >= 2]
    assert len(multi) >= 5
    assert any(len(venues_of(s)) == 3 for s in INSTRUMENTS)
    for venue in VENUES:
        assert {item.symbol for item in listings(venue)} <= set(INSTRUMENTS)
    locates = [item.locate for item in listings("itx")]
    assert len(set(locates)) == len(locates) and None not in locates


def test_mid_path_is_a_function_of_seed_symbol_and_time() -> None:
    inst = INSTRUMENTS["ETH-USD"]
    a, b, c = MidPath(1, inst), MidPath(1, inst), MidPath(2, inst)
    times = [EPOCH_NS + k * BUCKET_NS // 3 for k in range(3000)]
    path_a = [a.mid_ticks(t) for t in times]
    # Another venue may look at other moments; the path is the same.
    assert [b.mid_ticks(t) for t in times[::7]] == path_a[::7]
    assert [c.mid_ticks(t) for t in times] != path_a
    assert len(set(path_a)) > 20
    assert path_a[0] == inst.start_price // inst.tick


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), symbol=st.sampled_from(sorted(INSTRUMENTS)))
def test_book_never_crosses_and_reports_every_change(seed: int, symbol: str) -> None:
    inst = INSTRUMENTS[symbol]
    rng = Random(seed)
    path = MidPath(seed, inst)
    grid = QuoteGrid(inst.quote_step_ticks)
    book = SimBook(
        rng,
        inst.level_gap_ticks,
        inst.typical_size // inst.lot,
        grid,
        grid.anchor(path.value(EPOCH_NS)),
    )
    model = {True: dict(book.bids), False: dict(book.asks)}
    t = EPOCH_NS
    for _ in range(1500):
        t += 20_000_000
        anchor = grid.follow(book.anchor, path.value(t))
        r = rng.random()
        if anchor != book.anchor or r < 0.1:
            changes, fill = book.requote(anchor), None
            assert book.quoted and book.anchor == anchor
        elif r < 0.15:
            changes, fill = book.arbitrage(r < 0.125, anchor)
            assert fill[1] == (min(model[False]) if fill[0] else max(model[True]))
            assert fill[2] == model[not fill[0]][fill[1]]  # the whole level
        else:
            buy_ok, sell_ok = rng.random() < 0.7, rng.random() < 0.7
            changes, fill = book.step(buy_ok, sell_ok)
            assert fill is None or (buy_ok if fill[0] else sell_ok)
        if fill is not None:
            taker_buys, px, lots = fill
            touch = min(model[False]) if taker_buys else max(model[True])
            assert px == touch and 0 < lots <= model[not taker_buys][px]
        for is_bid, px, lots, new in changes:
            assert new == (px not in model[is_bid])
            if lots:
                model[is_bid][px] = lots
            else:
                del model[is_bid][px]
            # Applied one by one (as itx records are), no prefix of a step crosses.
            if model[True] and model[False]:
                assert max(model[True]) < min(model[False])
        assert model[True] == book.bids and model[False] == book.asks
        assert sorted(book.bids) == book.bid_px and sorted(book.asks) == book.ask_px
        assert book.bid_px[-1] < book.ask_px[0]
        assert MIN_DEPTH <= len(book.bids) <= MAX_DEPTH + 3
        assert MIN_DEPTH <= len(book.asks) <= MAX_DEPTH + 3
        assert all(lots > 0 for lots in book.bids.values())
        assert book.bid_px[0] >= 1
