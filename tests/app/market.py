"""Normalized venue events for tests: a small random market over a few real symbols.

Prices walk in ticks from the simulator's start prices, so books, quotes, trades and
session statistics all move the way a venue's would. Deterministic for a given rng.
"""

from __future__ import annotations

import random

from feeds.universe import INSTRUMENTS
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD")
VENUES = ("cbx", "fxa", "itx")


class RandomMarket:
    """Quotes, trades and book updates of a random walk per symbol."""

    def __init__(self, rng: random.Random, symbols: tuple[str, ...] = SYMBOLS) -> None:
        self.rng = rng
        self.symbols = symbols
        self.mids = {s: INSTRUMENTS[s].start_price for s in symbols}
        self.count = 0

    def event(self, *, books: bool = True) -> NormalizedEvent:
        """The next event: a quote, a trade or (when `books`) a book level change."""
        rng = self.rng
        self.count += 1
        symbol = rng.choice(self.symbols)
        sim = INSTRUMENTS[symbol]
        mid = self.mids[symbol] = max(
            sim.tick * 10, self.mids[symbol] + rng.randint(-3, 3) * sim.tick
        )
        venue = rng.choice(VENUES)
        ts_ns = 1_763_762_000_000_000_000 + self.count * 1_000_000
        size = sim.lot * rng.randint(1, 50)
        kind = rng.random()
        if kind < 0.45 or (not books and kind >= 0.8):
            half = sim.tick * rng.randint(1, 3)
            return Quote(venue, symbol, ts_ns, mid - half, size, mid + half, size * 2)
        if kind < 0.8:
            side = TakerSide.BUY if rng.random() < 0.5 else TakerSide.SELL
            return Trade(venue, symbol, ts_ns, mid, size, side, f"{venue}-{self.count}")
        level = (mid - sim.tick * rng.randint(1, 5), size * rng.randint(0, 2))
        return BookUpdate(venue, symbol, ts_ns, (level,), (), False)

    def events(self, count: int, *, books: bool = True) -> list[NormalizedEvent]:
        return [self.event(books=books) for _ in range(count)]
