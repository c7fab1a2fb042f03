"""Exact fixed-point numbers for prices and sizes.

Every price and size inside ticker is an `int` counting nanos (1e-9 units), the way
Databento carries prices: exact, hashable, fast to compare and to msgpack. Binary
floats never hold a price. This module owns the conversions to and from text and must
not know about instruments or venues.
"""

from __future__ import annotations

from typing import Final

NANOS_DIGITS: Final = 9
SCALE: Final = 10**NANOS_DIGITS
MAX_NANOS: Final = 2**63 - 1
"""The largest price, size or time ticker carries: a signed 64-bit integer, so every
value fits msgpack's int64 and every client's 64-bit integers."""
_POW10: Final[tuple[int, ...]] = tuple(10**i for i in range(NANOS_DIGITS + 1))


class FixedPointError(ValueError):
    """A decimal string that cannot be held exactly as nanos."""


def parse_nanos(text: str) -> int:
    """Parse a plain decimal string ("43250.5", "-0.001", "12") into nanos.

    Raises:
        FixedPointError: not a plain decimal, or more than 9 fractional digits.
    """
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, dot, frac = body.partition(".")
    if (
        not whole.isdigit()
        or not whole.isascii()
        or (dot and not (frac.isdigit() and frac.isascii()))
        or len(frac) > NANOS_DIGITS
    ):
        raise FixedPointError(f"not an exact decimal with <= 9 places: {text!r}")
    value = int(whole) * SCALE + (int(frac.ljust(NANOS_DIGITS, "0")) if frac else 0)
    return -value if negative else value


def saturate(value: int) -> int:
    """`value`, or MAX_NANOS if it is larger.

    For sums of values that are each in range (a composite level over venues, a day's
    volume): they stop at the largest value the wire carries instead of overflowing it.
    """
    return value if value < MAX_NANOS else MAX_NANOS


def format_nanos(value: int) -> str:
    """Render nanos as the shortest exact decimal string ("43250.5", "12", "-0.001")."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def nanos_from_scaled(mantissa: int, decimals: int) -> int:
    """Convert an integer with `decimals` implied decimal places into nanos.

    Raises:
        FixedPointError: `decimals` above 9 would lose precision.
    """
    if not 0 <= decimals <= NANOS_DIGITS:
        raise FixedPointError(f"cannot hold {decimals} implied decimals exactly")
    return mantissa * _POW10[NANOS_DIGITS - decimals]


def scaled_from_nanos(value: int, decimals: int) -> int:
    """Convert nanos to an integer with `decimals` implied decimal places.

    Raises:
        FixedPointError: the value has more precision than `decimals` can carry.
    """
    if not 0 <= decimals <= NANOS_DIGITS:
        raise FixedPointError(f"cannot hold {decimals} implied decimals exactly")
    mantissa, rest = divmod(value, _POW10[NANOS_DIGITS - decimals])
    if rest:
        raise FixedPointError(f"{format_nanos(value)} needs more than {decimals} decimals")
    return mantissa
