"""Memoized decimal-string <-> nanos conversions for the text venues.

Venue prices and sizes repeat endlessly (book levels, lot multiples), so caching the
exact `ticker.model.fixed` conversions saves most of their cost. Owns only the bounded
memo and the range check (every value within +-MAX_NANOS); must not round, scale or
know about venues.
"""

from __future__ import annotations

from ticker.model.fixed import MAX_NANOS, NANOS_DIGITS, SCALE, format_nanos, parse_nanos

DEFAULT_MAX_ENTRIES = 4096
"""Entries per memo. The working set is small: parsing 100,000 frames of a simulated
venue costs the same CPU with 1,024 entries as with 131,072, while 131,072 entries
(~20 MB per memo, filled over hours) made the server's RSS creep for that long."""


class DecimalCache:
    """Exact conversions between plain decimal strings and nanos, memoized.

    Each memo holds at most `max_entries` items and is simply cleared when full: the
    working set (prices near the touch, common sizes) refills it at once.
    """

    __slots__ = ("_max_entries", "_nanos", "_text")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._nanos: dict[str, int] = {}
        self._text: dict[int, str] = {}

    def nanos(self, text: str) -> int:
        """Nanos of a decimal string, see `ticker.model.fixed.parse_nanos`.

        Raises:
            ValueError: not an exact decimal with at most 9 places, or beyond
                +-MAX_NANOS (the wire carries 64 bits; a venue's sums must not overflow).
            TypeError: not a string.
        """
        value = self._nanos.get(text)
        if value is None:
            if not isinstance(text, str):
                raise TypeError(f"expected a decimal string, got {type(text).__name__}")
            whole, _, frac = text.partition(".")
            if whole.isdigit() and frac.isdigit() and len(frac) <= NANOS_DIGITS and text.isascii():
                # The common shape, unsigned with a fraction; the rest goes the long way.
                value = int(whole) * SCALE + int(frac) * 10 ** (NANOS_DIGITS - len(frac))
            else:
                value = parse_nanos(text)
            if not -MAX_NANOS <= value <= MAX_NANOS:
                raise ValueError(f"decimal out of the 64-bit nanos range: {text[:40]!r}")
            if len(self._nanos) >= self._max_entries:
                self._nanos.clear()
            self._nanos[text] = value
        return value

    def text(self, value: int) -> str:
        """The shortest exact decimal string of `value` nanos."""
        text = self._text.get(value)
        if text is None:
            text = format_nanos(value)
            if len(self._text) >= self._max_entries:
                self._text.clear()
            self._text[value] = text
        return text
