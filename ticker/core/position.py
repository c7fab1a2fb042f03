"""Positions in the hub's stream: (epoch, offset).

The epoch changes whenever history is lost (a restart without persistence); the offset
counts published messages from 1 within an epoch. Offset 0 means "before the first
message". The text form `<epoch>-<offset>` is the SSE `id:`. This module owns that
form and must not know about buffers or topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Final

from ticker.errors import BadPosition, echo

MAX_POSITION_TEXT: Final = 40


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A point in one epoch of the stream: every message with a larger offset is after it."""

    epoch: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> Position:
        """Parse `<epoch>-<offset>` (both non-negative decimal integers).

        Raises:
            BadPosition: anything else.
        """
        if len(text) > MAX_POSITION_TEXT:
            raise BadPosition("position text too long")
        epoch, dash, offset = text.partition("-")
        if not (dash and epoch.isdigit() and offset.isdigit() and epoch.isascii()):
            raise BadPosition(f"bad position {echo(text)}: expected <epoch>-<offset>, e.g. 17-420")
        if not offset.isascii():
            raise BadPosition(f"bad position {echo(text)}: expected <epoch>-<offset>, e.g. 17-420")
        return cls(int(epoch), int(offset))

    def __str__(self) -> str:
        return f"{self.epoch}-{self.offset}"


def new_epoch(now_ns: int, rng: Random) -> int:
    """A fresh epoch: the time in milliseconds times 1,000 plus 0-999 at random.

    Unique per stream history in practice (two servers started in the same millisecond
    still differ with probability 0.999), increasing over time (a new epoch's positions
    sort after the old one's, as Redis stream IDs must), and below 2^53 until the year
    2255, so JavaScript reads it exactly.
    """
    return (now_ns // 1_000_000) * 1000 + rng.randrange(1000)
