"""The simulated market is believable: a property of whole simulated sessions.

Counts in simulated time over several seeds at the server's default rate (no wall
clock anywhere): the consolidated quote is rarely crossed, crosses are short, trades
print within the consolidated touch; and arbitrage takes liquidity that is through
the market.
"""

from __future__ import annotations

import pytest

from feeds.quality import measure_session
from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.venues import cbx_wire


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_the_consolidated_quote_is_rarely_crossed_and_trades_print_within_it(seed: int) -> None:
    quality = measure_session(seed, rate_per_s=Config().venue_rate_per_s, duration_s=240.0)
    assert {"BTC-USD", "ETH-USD", "SOL-USD"} <= set(quality)
    for symbol, q in quality.items():
        assert q.quoted_ns > 200 * 10**9, symbol
        assert q.crossed_fraction < 0.01, (symbol, q.crossed_fraction)
        assert q.locked_fraction < 0.02, (symbol, q.locked_fraction)
        # Simulated time: a cross lasts at most a few venue messages.
        assert max(q.crosses, default=0) <= 1_000_000_000, (symbol, q.crosses)
        assert q.trades > 20, symbol
        assert q.trade_through_fraction < 0.05, (symbol, q.trade_through_fraction)
    assert sum(q.trades for q in quality.values()) > 1000


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_an_arbitrageur_takes_a_stale_quote_that_is_through_the_market(seed: int) -> None:
    # A venue that was away for a while comes back with quotes the market has left
    # behind; before re-quoting, its stale touch is taken whole by an arbitrageur.
    sim = make_simulator("cbx", seed, 20.0, ["BTC-USD"])
    sim.connect()
    for _ in range(40):
        sim.next_frame()
    bids, asks = sim.books()["BTC-USD"]
    sim.advance(120 * 10**9)  # about 7 quoting steps of BTC's typical movement
    matches = []
    for _ in range(40):
        message = cbx_wire.decode_message(sim.next_frame().data)
        if isinstance(message, cbx_wire.CbxMatch):
            matches.append(message)
    assert matches
    first = matches[0]
    # Maker side "sell": the stale offer was lifted (the market moved up), and v.v.
    stale_level = asks[0] if first.side == "sell" else bids[0]
    assert (first.price, first.size) == stale_level
    bids_now, asks_now = sim.books()["BTC-USD"]
    assert bids_now[0][0] < asks_now[0][0]
    assert stale_level not in (asks_now if first.side == "sell" else bids_now)
