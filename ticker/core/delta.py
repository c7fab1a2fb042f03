"""Field-level and level-level deltas: computing them and applying them.

Latest-value topics (quote, ticker) send only the fields that changed against the last
published state (Lightstreamer's MERGE). Books send absolute sizes per price level and
size 0 removes the level, so applying a delta twice is harmless. The sequencer and the
client-side mirror both use these functions, so the two sides cannot disagree. Pure
functions over plain dicts; no sequencing, no encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ticker.model.fixed import MAX_NANOS

Fields = dict[str, Any]
Levels = dict[int, int]
"""One side of a book: price nanos -> size nanos, only levels with size > 0."""


def diff_fields(old: Fields, new: Fields) -> Fields:
    """The fields of `new` whose value differs from `old` (a missing field counts as None)."""
    get = old.get
    return {name: value for name, value in new.items() if get(name) != value}


def merge_fields(state: Fields, delta: Fields) -> None:
    """Apply a field delta to `state` in place."""
    state.update(delta)


def apply_levels(side: Levels, levels: Iterable[tuple[int, int] | list[int]]) -> None:
    """Apply absolute (price, size) levels to one book side in place; size 0 removes."""
    for price, size in levels:
        if size:
            side[price] = size
        else:
            side.pop(price, None)


def add_to_levels(side: Levels, increments: list[tuple[int, int]]) -> list[list[int]]:
    """Add size increments to `side` in place; return the changed levels as [price, size].

    `side` holds exact sums (a composite level over venues may exceed MAX_NANOS); what
    is reported saturates at MAX_NANOS, like `book_data`, so a level that was and stays
    at or above it is not reported: a subscriber sees no change there. A level whose
    size reaches 0 is removed and reported with size 0; a zero increment changes
    nothing and is not reported.
    """
    changed: list[list[int]] = []
    for price, increment in increments:
        if not increment:
            continue
        old = side.get(price, 0)
        size = old + increment
        if size:
            side[price] = size
        else:
            del side[price]
        if size < MAX_NANOS:
            changed.append([price, size])
        elif old < MAX_NANOS:
            changed.append([price, MAX_NANOS])
    return changed


def book_data(bids: Levels, asks: Levels) -> Fields:
    """A full book as message data: bids best (highest) first, asks best (lowest) first.

    Sizes saturate at MAX_NANOS (see `add_to_levels`).
    """
    # Saturation inlined: a client builds this for every book update it applies.
    m = MAX_NANOS
    return {
        "bids": [[p, s if (s := bids[p]) < m else m] for p in sorted(bids, reverse=True)],
        "asks": [[p, s if (s := asks[p]) < m else m] for p in sorted(asks)],
    }
