"""The book checksum: CRC32 of a book's top levels, so a client can prove its book.

The text is the top `CHECKSUM_DEPTH` levels of each side interleaved best first,
`bid:size:ask:size:...`, each price and size its integer nanos in base 10 (a side that
runs out adds nothing); the checksum is zlib's CRC32 of its ASCII bytes, unsigned.
docs/PROTOCOL.md ("Book checksum") is the contract. Pure; sizes are the published
(saturated) ones, exactly what a client holds.
"""

from __future__ import annotations

import zlib
from typing import Final

from ticker.core.delta import Levels
from ticker.model.fixed import MAX_NANOS

CHECKSUM_DEPTH: Final = 10
"""Levels per side the checksum covers (Kraken's depth; OKX uses 25)."""
CHECKSUM_KEY: Final = "checksum"
"""The key of a book message's data map that carries it."""
CHECKSUM_EVERY: Final = 10
"""A book delta carries the checksum when its seq is a multiple of this; every book
snapshot carries it. One costs ~10x the encoding of a small delta (docs/PROTOCOL.md)."""


def checksum_text(bids: Levels, asks: Levels) -> str:
    """The text the checksum is taken of (see the module doc).

    Args:
        bids: price nanos -> size nanos, levels with size > 0 (sizes may exceed the
            wire's maximum: they are saturated as published).
        asks: the same for asks.
    """
    top_bids = sorted(bids, reverse=True)[:CHECKSUM_DEPTH]
    top_asks = sorted(asks)[:CHECKSUM_DEPTH]
    # Every number in one flat list, interleaved by slice assignment, then one
    # `join(map(str, ...))`: C loops instead of an f-string and a `min` per level
    # (0.8x the time on 30-level sides, the same text: tests/core/test_checksum.py).
    bid_sizes = list(map(bids.__getitem__, top_bids))
    ask_sizes = list(map(asks.__getitem__, top_asks))
    if bid_sizes and max(bid_sizes) > MAX_NANOS:
        bid_sizes = [min(size, MAX_NANOS) for size in bid_sizes]
    if ask_sizes and max(ask_sizes) > MAX_NANOS:
        ask_sizes = [min(size, MAX_NANOS) for size in ask_sizes]
    both = min(len(top_bids), len(top_asks))
    numbers = [0] * (4 * both)
    numbers[0::4] = top_bids[:both]
    numbers[1::4] = bid_sizes[:both]
    numbers[2::4] = top_asks[:both]
    numbers[3::4] = ask_sizes[:both]
    # The longer side's rest, once the other has run out.
    rest_prices, rest_sizes = (
        (top_bids, bid_sizes) if len(top_bids) > both else (top_asks, ask_sizes)
    )
    if len(rest_prices) > both:
        rest = [0] * (2 * (len(rest_prices) - both))
        rest[0::2] = rest_prices[both:]
        rest[1::2] = rest_sizes[both:]
        numbers += rest
    return ":".join(map(str, numbers))


def book_checksum(bids: Levels, asks: Levels) -> int:
    """CRC32 (unsigned, 0..2^32-1) of the book's top levels (see the module doc).

    Args:
        bids: price nanos -> size nanos, levels with size > 0.
        asks: the same for asks.

    Returns:
        The checksum a book message carries under `checksum`.
    """
    return zlib.crc32(checksum_text(bids, asks).encode("ascii"))
