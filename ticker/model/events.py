"""The normalized event schema every venue adapter produces.

One schema for all venues: trade, quote (best bid/offer), book update (absolute size
per price level, size 0 removes the level) and ticker statistics. Prices and sizes are
ints in nanos (see `ticker.model.fixed`); times are ints in ns since the Unix epoch,
as stamped by the venue. Events are immutable and compare by value (and by type). They
are NamedTuples, not frozen dataclasses: adapters build one per normalized event and a
frozen dataclass cost 1.3 us each against about 0.4 us here. This module must not
parse, encode or decide anything.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

PriceLevel = tuple[int, int]
"""(price_nanos, size_nanos); size 0 means the level is removed."""


class TakerSide(enum.Enum):
    """The side of the aggressor (taker) of a trade."""

    BUY = "buy"
    SELL = "sell"


class Trade(NamedTuple):
    """One execution at `venue`: the taker `side` lifted or hit `size` at `price`."""

    venue: str
    symbol: str
    ts_ns: int
    price: int
    size: int
    side: TakerSide
    trade_id: str


class Quote(NamedTuple):
    """The venue's best bid and offer; a side with no liquidity is None (price and size)."""

    venue: str
    symbol: str
    ts_ns: int
    bid_price: int | None
    bid_size: int | None
    ask_price: int | None
    ask_size: int | None


class BookUpdate(NamedTuple):
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


class TickerStats(NamedTuple):
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


def _typed_eq(self: tuple[Any, ...], other: object) -> bool:
    # Plain tuple equality would make a Quote equal a Trade with the same values.
    return type(self) is type(other) and tuple.__eq__(self, other)


def _typed_ne(self: tuple[Any, ...], other: object) -> bool:
    return not _typed_eq(self, other)


for _event in (Trade, Quote, BookUpdate, TickerStats):
    _event.__eq__ = _typed_eq  # type: ignore[method-assign]
    _event.__ne__ = _typed_ne  # type: ignore[method-assign,assignment]
    _event.__hash__ = tuple.__hash__  # type: ignore[method-assign]

NormalizedEvent = Trade | Quote | BookUpdate | TickerStats
