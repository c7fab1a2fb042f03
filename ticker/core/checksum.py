"""The book checksum: CRC32 of a book's top levels, so a client can prove its book.

The text is the top `CHECKSUM_DEPTH` levels of each side interleaved best first,
`bid:size:ask:size:...`, each price and size its integer nanos in base 10 (a side that
runs out adds nothing); the checksum is zlib's CRC32 of its ASCII bytes, unsigned.
docs/PROTOCOL.md ("Book checksum") is the contract. Pure; sizes are the published
(saturated) ones, exactly what a client holds.
"""

from __future__ import annotations

import zlib
from itertools import zip_longest
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
    # Formatting dominates the cost: one f-string per level, then one join.
    b = [f"{p}:{min(bids[p], MAX_NANOS)}" for p in top_bids]
    a = [f"{p}:{min(asks[p], MAX_NANOS)}" for p in top_asks]
    if len(b) == len(a):
        parts = [part for pair in zip(b, a, strict=True) for part in pair]
    else:
        parts = [part for pair in zip_longest(b, a) for part in pair if part is not None]
    return ":".join(parts)


def book_checksum(bids: Levels, asks: Levels) -> int:
    """CRC32 (unsigned, 0..2^32-1) of the book's top levels (see the module doc).

    Args:
        bids: price nanos -> size nanos, levels with size > 0.
        asks: the same for asks.

    Returns:
        The checksum a book message carries under `checksum`.
    """
    return zlib.crc32(checksum_text(bids, asks).encode("ascii"))
