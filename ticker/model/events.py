"""The normalized event schema every venue adapter produces.

One schema for all venues: trade, quote (best bid/offer), book update (absolute size
per price level, size 0 removes the level) and ticker statistics. Prices and sizes are
ints in nanos (see `ticker.model.fixed`); times are ints in ns since the Unix epoch,
as stamped by the venue. Events are frozen, slotted and compare by value. This module
must not parse, encode or decide anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PriceLevel = tuple[int, int]
"""(price_nanos, size_nanos); size 0 means the level is removed."""


class TakerSide(enum.Enum):
    """The side of the aggressor (taker) of a trade."""

    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution at `venue`: the taker `side` lifted or hit `size` at `price`."""

    venue: str
    symbol: str
    ts_ns: int
    price: int
    size: int
    side: TakerSide
    trade_id: str


@dataclass(frozen=True, slots=True)
class Quote:
    """The venue's best bid and offer; a side with no liquidity is None (price and size)."""

    venue: str
    symbol: str
    ts_ns: int
    bid_price: int | None
    bid_size: int | None
    ask_price: int | None
    ask_size: int | None


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """Changed price levels of the venue's L2 book.

    With `snapshot` False, each level's size is absolute and 0 removes the level; a
    repeated update is harmless. With `snapshot` True the levels replace the whole
    book (an empty snapshot clears it, e.g. when the venue disconnects).
    Bids are listed best (highest) first, asks best (lowest) first.
    """

    venue: str
    symbol: str
    ts_ns: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    snapshot: bool


@dataclass(frozen=True, slots=True)
class TickerStats:
    """Session statistics: last trade price, open, high, low, traded volume, change.

    `change` is `last - open`; a statistic the venue has no value for yet is None.
    """

    venue: str
    symbol: str
    ts_ns: int
    last: int | None
    open: int | None
    high: int | None
    low: int | None
    volume: int
    change: int | None


NormalizedEvent = Trade | Quote | BookUpdate | TickerStats
