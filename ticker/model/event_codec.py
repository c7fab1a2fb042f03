"""A compact msgpack codec for normalized events, and the sanity checks a publisher's
events must pass.

One positional msgpack array per event; the first element names its type (layouts in
docs/CAPTURE.md). `--normalized` captures store these bytes, and publish batches carry
these arrays. Decoding checks structure and types (`BadEvent`); `check_event` checks that
values are sane for a server (known symbol, positive prices). Pure; must not do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any, Final

import msgpack

from ticker.errors import BadMessage, echo
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, TickerStats, Trade
from ticker.model.fixed import MAX_NANOS

TRADE: Final = "t"
QUOTE: Final = "q"
BOOK: Final = "b"
STATS: Final = "k"

MAX_LEVELS_PER_SIDE: Final = 1000
"""The most levels a book event may carry per side (the adapters' default book depth)."""
MAX_VALUE: Final = MAX_NANOS
"""Prices, sizes and times must fit a signed 64-bit integer."""
MAX_TRADE_ID_CHARS: Final = 64
VENUE_PATTERN: Final = re.compile(r"^[a-z0-9_-]{1,16}$")

_SIDES: Final = {"b": TakerSide.BUY, "s": TakerSide.SELL}
_SIDE_CODES: Final = {TakerSide.BUY: "b", TakerSide.SELL: "s"}

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


class BadEvent(BadMessage):
    """Bytes or an array that are not a well-formed normalized event."""


def _flat(levels: tuple[tuple[int, int], ...]) -> list[int]:
    return [value for level in levels for value in level]


def event_to_array(event: NormalizedEvent) -> list[Any]:
    """The positional array of one event (what `encode_event` packs)."""
    if isinstance(event, Trade):
        return [TRADE, event.venue, event.symbol, event.ts_ns, event.price, event.size,
                _SIDE_CODES[event.side], event.trade_id]  # fmt: skip
    if isinstance(event, Quote):
        return [QUOTE, event.venue, event.symbol, event.ts_ns, event.bid_price,
                event.bid_size, event.ask_price, event.ask_size]  # fmt: skip
    if isinstance(event, BookUpdate):
        return [BOOK, event.venue, event.symbol, event.ts_ns, event.snapshot,
                _flat(event.bids), _flat(event.asks)]  # fmt: skip
    return [STATS, event.venue, event.symbol, event.ts_ns, event.last, event.open,
            event.high, event.low, event.volume, event.change]  # fmt: skip


def encode_event(event: NormalizedEvent) -> bytes:
    """msgpack bytes of one event."""
    return _packb(event_to_array(event))


def _int(value: object) -> bool:
    return type(value) is int and -MAX_VALUE <= value <= MAX_VALUE


def _opt_int(value: object) -> bool:
    return value is None or _int(value)


def _levels(flat: object, what: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(flat, list) or len(flat) % 2:
        raise BadEvent(f"book {what} must be a flat list of price, size pairs")
    if len(flat) > 2 * MAX_LEVELS_PER_SIDE:
        raise BadEvent(f"book {what}: more than {MAX_LEVELS_PER_SIDE} levels")
    if not all(_int(v) for v in flat):
        raise BadEvent(f"book {what}: prices and sizes must be integers (nanos)")
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def event_from_array(obj: object) -> NormalizedEvent:
    """The event an array describes; checks its shape and types, not its values.

    Raises:
        BadEvent: not an event array, unknown type, wrong length or field types.
    """
    if not isinstance(obj, list) or len(obj) < 4:
        raise BadEvent("an event is an array [type, venue, symbol, ts_ns, ...]")
    kind, venue, symbol, ts_ns = obj[0], obj[1], obj[2], obj[3]
    if not (isinstance(venue, str) and isinstance(symbol, str) and _int(ts_ns)):
        raise BadEvent("event venue and symbol must be strings and ts_ns an integer")
    if kind == TRADE:
        if len(obj) != 8:
            raise BadEvent("a trade has 8 fields")
        price, size, side, trade_id = obj[4:]
        # isinstance first: `in` on a dict hashes, and a list or map side is unhashable.
        side_ok = isinstance(side, str) and side in _SIDES
        if not (_int(price) and _int(size) and side_ok and isinstance(trade_id, str)):
            raise BadEvent("trade: price and size integers, side 'b' or 's', id a string")
        return Trade(venue, symbol, ts_ns, price, size, _SIDES[side], trade_id)
    if kind == QUOTE:
        if len(obj) != 8 or not all(_opt_int(v) for v in obj[4:]):
            raise BadEvent("a quote has 8 fields; prices and sizes are integers or null")
        return Quote(venue, symbol, ts_ns, obj[4], obj[5], obj[6], obj[7])
    if kind == BOOK:
        if len(obj) != 7 or not isinstance(obj[4], bool):
            raise BadEvent("a book update has 7 fields; the 5th (snapshot) is a boolean")
        bids = _levels(obj[5], "bids")
        asks = _levels(obj[6], "asks")
        return BookUpdate(venue, symbol, ts_ns, bids, asks, obj[4])
    if kind == STATS:
        if len(obj) != 10 or not all(_opt_int(v) for v in obj[4:]) or obj[8] is None:
            raise BadEvent("ticker stats have 10 fields; volume is an integer")
        return TickerStats(venue, symbol, ts_ns, *obj[4:])
    raise BadEvent(f"unknown event type {echo(kind)}; known: t, q, b, k")


def decode_event(data: bytes) -> NormalizedEvent:
    """The event in `data` (one msgpack array).

    Raises:
        BadEvent: invalid msgpack or not a well-formed event.
    """
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadEvent(f"invalid msgpack: {exc}") from None
    return event_from_array(obj)


def _price(value: int | None) -> bool:
    return value is None or 0 < value <= MAX_NANOS


def check_event(event: NormalizedEvent, known_symbols: Collection[str]) -> str | None:
    """Why `event` must not be published on a server knowing `known_symbols`, or None.

    Checks what the hub relies on: a known symbol, a plain venue name, a time since the
    epoch, prices in [1, MAX_NANOS], sizes in [0, MAX_NANOS] (positive for trades and
    quotes), a quote side's price and size given together. Sums of in-range sizes (a
    composite level, a day's volume) may exceed MAX_NANOS: the hub saturates those.
    """
    if event.symbol not in known_symbols:
        return f"unknown symbol {echo(event.symbol)}"
    if VENUE_PATTERN.fullmatch(event.venue) is None:
        return f"bad venue {echo(event.venue)}: 1-16 of a-z, 0-9, '_', '-'"
    if not 0 <= event.ts_ns <= MAX_NANOS:
        return "ts_ns must be in [0, 2^63-1]"
    if isinstance(event, Trade):
        if not (0 < event.price <= MAX_NANOS and 0 < event.size <= MAX_NANOS):
            return "a trade needs a price and a size in [1, 2^63-1] nanos"
        if len(event.trade_id) > MAX_TRADE_ID_CHARS:
            return f"trade id longer than {MAX_TRADE_ID_CHARS} characters"
    elif isinstance(event, Quote):
        for price, size in ((event.bid_price, event.bid_size), (event.ask_price, event.ask_size)):
            if (price is None) != (size is None):
                return "a quote side gives both price and size, or neither"
            if price is not None and not (_price(price) and _price(size)):
                return "quote prices and sizes must be in [1, 2^63-1] nanos"
    elif isinstance(event, BookUpdate):
        for price, size in event.bids + event.asks:
            if not (0 < price <= MAX_NANOS and 0 <= size <= MAX_NANOS):
                return "book levels need a price in [1, 2^63-1] and a size in [0, 2^63-1] nanos"
    else:
        if not all(_price(v) for v in (event.last, event.open, event.high, event.low)):
            return "ticker prices must be in [1, 2^63-1] nanos"
        if not 0 <= event.volume <= MAX_NANOS:
            return "ticker volume must be in [0, 2^63-1] nanos"
        if event.change is not None and not -MAX_NANOS <= event.change <= MAX_NANOS:
            return "ticker change must be in [-(2^63-1), 2^63-1] nanos"
    return None
