"""Reference data for tradable instruments: the canonical symbol and its increments.

Symbols are venue-neutral (`BTC-USD`); every venue adapter maps its own instrument
names onto them. This module owns symbol validation and must not hold simulation or
venue-specific parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$")


def is_valid_symbol(symbol: str) -> bool:
    """True for a canonical symbol: BASE-QUOTE, upper-case letters and digits."""
    return SYMBOL_PATTERN.fullmatch(symbol) is not None


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument. `tick_size` and `lot_size` are in nanos."""

    symbol: str
    tick_size: int
    lot_size: int

    def __post_init__(self) -> None:
        if not is_valid_symbol(self.symbol):
            raise ValueError(f"bad symbol {self.symbol!r}: expected BASE-QUOTE, e.g. BTC-USD")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick and lot sizes must be positive")
