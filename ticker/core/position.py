"""Positions in the hub's stream: (epoch, offset).

The epoch changes whenever history is lost (a restart without persistence); the offset
counts published messages from 1 within an epoch. Offset 0 means "before the first
message". The text form `<epoch>-<offset>` is the SSE `id:`. This module owns that
form and must not know about buffers or topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ticker.errors import BadPosition

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
            raise BadPosition(f"bad position {text!r}: expected <epoch>-<offset>, e.g. 17-420")
        if not offset.isascii():
            raise BadPosition(f"bad position {text!r}: expected <epoch>-<offset>, e.g. 17-420")
        return cls(int(epoch), int(offset))

    def __str__(self) -> str:
        return f"{self.epoch}-{self.offset}"
