"""Session statistics derived from a venue's trades: open, high, low, last, volume.

Owns the arithmetic for venues that do not send statistics themselves (itx); the
simulator uses it too to publish the cbx ticker. Must not know about venues or emit
events.
"""

from __future__ import annotations

from ticker.model.fixed import saturate


class SessionStats:
    """Statistics since the first trade of the session; all None before it."""

    __slots__ = ("high", "last", "low", "open", "volume")

    def __init__(self) -> None:
        self.open: int | None = None
        self.high: int | None = None
        self.low: int | None = None
        self.last: int | None = None
        self.volume = 0

    def on_trade(self, price: int, size: int) -> None:
        """Fold one trade (price and size in nanos) into the statistics."""
        if self.open is None or self.high is None or self.low is None:
            self.open = self.high = self.low = price
        elif price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.last = price
        self.volume = saturate(self.volume + size)  # each size fits 64 bits, the sum need not

    @property
    def change(self) -> int | None:
        """last - open, or None before the first trade."""
        if self.last is None or self.open is None:
            return None
        return self.last - self.open

    def reset(self) -> None:
        """A new session: forget everything."""
        self.open = self.high = self.low = self.last = None
        self.volume = 0
