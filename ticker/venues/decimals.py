"""Memoized decimal-string <-> nanos conversions for the text venues.

Venue prices and sizes repeat endlessly (book levels, lot multiples), so caching the
exact `ticker.model.fixed` conversions saves most of their cost. Owns only the bounded
memo and the range check (every value within +-MAX_NANOS); must not round, scale or
know about venues.
"""

from __future__ import annotations

from typing import Final

from ticker.model.fixed import MAX_NANOS, NANOS_DIGITS, SCALE, format_nanos, parse_nanos

_POW10: Final[tuple[int, ...]] = tuple(10**i for i in range(NANOS_DIGITS + 1))

DEFAULT_MAX_ENTRIES = 4096
"""Entries per memo. The working set is small: parsing 100,000 frames of a simulated
venue costs the same CPU with 1,024 entries as with 131,072, while 131,072 entries
(~20 MB per memo, filled over hours) made the server's RSS creep for that long."""


def exact_nanos(text: str) -> int:
    """Nanos of a plain decimal string, exactly, within +-MAX_NANOS.

    The same values and rejections as `ticker.model.fixed.parse_nanos` plus the range
    check, in one pass for every shape (signed, integer, fraction).

    Raises:
        ValueError: not an exact decimal with at most 9 places, or beyond
            +-MAX_NANOS (the wire carries 64 bits; a venue's sums must not overflow).
        TypeError: not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a decimal string, got {type(text).__name__}")
    negative = text.startswith("-")
    whole, dot, frac = (text[1:] if negative else text).partition(".")
    if (
        whole.isdigit()
        and text.isascii()
        and (frac.isdigit() if dot else True)
        and len(frac) <= NANOS_DIGITS
    ):
        value = int(whole) * SCALE
        if frac:
            value += int(frac) * _POW10[NANOS_DIGITS - len(frac)]
        if negative:
            value = -value
    else:
        value = parse_nanos(text)  # the same test: raises FixedPointError, with its message
    if not -MAX_NANOS <= value <= MAX_NANOS:
        raise ValueError(f"decimal out of the 64-bit nanos range: {text[:40]!r}")
    return value


class NanosMemo(dict[str, int]):
    """A bounded dict of text -> nanos that converts what it lacks (`__missing__`).

    Hot paths index it directly (`memo[text]`): a hit is one C-level dict lookup with no
    Python call, which is most of what a text venue's decimals cost. A miss converts
    with `exact_nanos` (raising as it does, caching nothing) and clears the memo first
    when it holds `max_entries`.
    """

    __slots__ = ("max_entries",)

    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max_entries

    def __missing__(self, text: str) -> int:
        # Most misses are unsigned (a size seldom repeats): converted here, in this one
        # frame; every other shape, and every rejection, goes through `exact_nanos`.
        if not isinstance(text, str):
            raise TypeError(f"expected a decimal string, got {type(text).__name__}")
        whole, dot, frac = text.partition(".")
        if whole.isdigit() and text.isascii() and len(frac) <= NANOS_DIGITS:
            if not dot:
                value = int(whole) * SCALE
            elif frac.isdigit():
                value = int(whole + frac) * _POW10[NANOS_DIGITS - len(frac)]
            else:
                value = exact_nanos(text)
            if value > MAX_NANOS:
                value = exact_nanos(text)  # raises: out of range
        else:
            value = exact_nanos(text)
        if len(self) >= self.max_entries:
            self.clear()
        self[text] = value
        return value


class DecimalCache:
    """Exact conversions between plain decimal strings and nanos, memoized.

    Each memo holds at most `max_entries` items and is simply cleared when full: the
    working set (prices near the touch, common sizes) refills it at once.
    """

    __slots__ = ("_max_entries", "_nanos", "_text")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._nanos = NanosMemo(max_entries)
        self._text: dict[int, str] = {}

    @property
    def memo(self) -> NanosMemo:
        """The text -> nanos memo, for hot paths to index directly (see `NanosMemo`)."""
        return self._nanos

    def nanos(self, text: str) -> int:
        """Nanos of a decimal string, see `exact_nanos` (memoized).

        Raises:
            ValueError: not an exact decimal with at most 9 places, or beyond
                +-MAX_NANOS (the wire carries 64 bits; a venue's sums must not overflow).
            TypeError: not a string (or unhashable).
        """
        return self._nanos[text]

    def text(self, value: int) -> str:
        """The shortest exact decimal string of `value` nanos."""
        text = self._text.get(value)
        if text is None:
            text = format_nanos(value)
            if len(self._text) >= self._max_entries:
                self._text.clear()
            self._text[value] = text
        return text
