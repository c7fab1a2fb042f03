"""One venue's L2 order book for one symbol: absolute size per price level.

Owns the level maps and their sorted price lists (bisect), so the best bid and offer
are O(1) and an update is O(log n) plus a short memmove. Prices and sizes are int
nanos. Must not know about sequences, venues or events, and must not decide policy
(it reports a full side; the caller decides what that means).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Final

from ticker.model.events import PriceLevel

REJECTED: Final = 0
"""`set_bid`/`set_ask`: the level was new and the side already held `max_levels`."""
APPLIED: Final = 1
"""The change was applied below the top of book; the best price and size are unchanged."""
APPLIED_AT_TOP: Final = 2
"""The change was applied at or through the top of book; the BBO may have changed."""

Bbo = tuple[int | None, int | None, int | None, int | None]
"""(bid price, bid size, ask price, ask size); None for an empty side."""

EMPTY_BBO: Final[Bbo] = (None, None, None, None)


class L2Book:
    """Price -> size per side, with ascending price lists kept in step.

    Bids' best is the last element of their list, asks' best the first.
    """

    __slots__ = ("ask_prices", "asks", "bid_prices", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_prices: list[int] = []
        self.ask_prices: list[int] = []

    def set_bid(self, price: int, size: int, max_levels: int) -> int:
        """Set the absolute size of one bid level (0 removes it).

        Returns:
            REJECTED, APPLIED or APPLIED_AT_TOP.
        """
        prices = self.bid_prices
        top = not prices or price >= prices[-1]
        levels = self.bids
        if size:
            if price not in levels:
                if len(levels) >= max_levels:
                    return REJECTED
                insort(prices, price)
            levels[price] = size
        elif price in levels:
            del levels[price]
            del prices[bisect_left(prices, price)]
        return APPLIED_AT_TOP if top else APPLIED

    def set_ask(self, price: int, size: int, max_levels: int) -> int:
        """Set the absolute size of one ask level (0 removes it).

        Returns:
            REJECTED, APPLIED or APPLIED_AT_TOP.
        """
        prices = self.ask_prices
        top = not prices or price <= prices[0]
        levels = self.asks
        if size:
            if price not in levels:
                if len(levels) >= max_levels:
                    return REJECTED
                insort(prices, price)
            levels[price] = size
        elif price in levels:
            del levels[price]
            del prices[bisect_left(prices, price)]
        return APPLIED_AT_TOP if top else APPLIED

    def replace(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        """Replace the whole book; levels with size 0 are skipped, a repeated price wins last."""
        self.bids = {p: s for p, s in bids if s}
        self.asks = {p: s for p, s in asks if s}
        self.bid_prices = sorted(self.bids)
        self.ask_prices = sorted(self.asks)

    def clear(self) -> None:
        """Forget every level."""
        self.replace((), ())

    def bbo(self) -> Bbo:
        """The best bid and offer (price, size per side; None where a side is empty)."""
        bids = self.bid_prices
        asks = self.ask_prices
        if bids:
            bid = bids[-1]
            if asks:
                ask = asks[0]
                return bid, self.bids[bid], ask, self.asks[ask]
            return bid, self.bids[bid], None, None
        if asks:
            ask = asks[0]
            return None, None, ask, self.asks[ask]
        return EMPTY_BBO

    def crossed(self) -> bool:
        """True when the best bid is at or above the best offer."""
        bids = self.bid_prices
        asks = self.ask_prices
        return bool(bids and asks and bids[-1] >= asks[0])

    def bid_levels(self, limit: int | None = None) -> tuple[PriceLevel, ...]:
        """Bids, best (highest) first, at most `limit` of them."""
        prices = self.bid_prices
        chosen = prices[::-1] if limit is None else prices[: -limit - 1 : -1]
        levels = self.bids
        return tuple([(p, levels[p]) for p in chosen])

    def ask_levels(self, limit: int | None = None) -> tuple[PriceLevel, ...]:
        """Asks, best (lowest) first, at most `limit` of them."""
        prices = self.ask_prices if limit is None else self.ask_prices[:limit]
        levels = self.asks
        return tuple([(p, levels[p]) for p in prices])

    def depth(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self.bids), len(self.asks)
