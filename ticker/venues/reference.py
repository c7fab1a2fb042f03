"""Reference data: the instruments ticker knows and how each venue lists them.

Owns the canonical instruments (tick and lot sizes in nanos) and the per-venue
listings (native names, itx locate codes). Adapters receive their listings at
construction. This module must not hold simulation parameters or parse anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ticker.model.fixed import parse_nanos
from ticker.model.instruments import Instrument

VENUES: Final = ("cbx", "fxa", "itx")


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as one venue lists it.

    `native` is the venue's own name (cbx product_id, fxa tag 55, itx stock name);
    `locate` is the itx locate code carried in every binary record (None elsewhere).
    """

    venue: str
    symbol: str
    native: str
    locate: int | None = None


def _instrument(symbol: str, tick: str, lot: str) -> Instrument:
    return Instrument(symbol, parse_nanos(tick), parse_nanos(lot))


INSTRUMENTS: Final[dict[str, Instrument]] = {
    i.symbol: i
    for i in (
        _instrument("BTC-USD", "0.01", "0.0001"),
        _instrument("ETH-USD", "0.01", "0.001"),
        _instrument("SOL-USD", "0.01", "0.01"),
        _instrument("XRP-USD", "0.0001", "1"),
        _instrument("ADA-USD", "0.0001", "1"),
        _instrument("DOGE-USD", "0.00001", "1"),
        _instrument("AVAX-USD", "0.01", "0.01"),
        _instrument("LINK-USD", "0.001", "0.01"),
        _instrument("LTC-USD", "0.01", "0.001"),
        _instrument("DOT-USD", "0.001", "0.1"),
        _instrument("ETH-BTC", "0.00001", "0.001"),
    )
}
"""Canonical instruments by symbol."""


def _cbx(symbol: str) -> Listing:
    return Listing("cbx", symbol, symbol)


def _fxa(symbol: str) -> Listing:
    return Listing("fxa", symbol, symbol.replace("-", "/"))


def _itx(symbol: str, locate: int) -> Listing:
    return Listing("itx", symbol, symbol.replace("-", ""), locate)


LISTINGS: Final[dict[str, tuple[Listing, ...]]] = {
    "cbx": tuple(
        _cbx(s)
        for s in (
            "BTC-USD",
            "ETH-USD",
            "SOL-USD",
            "XRP-USD",
            "ADA-USD",
            "DOGE-USD",
            "AVAX-USD",
            "LINK-USD",
        )
    ),
    "fxa": tuple(
        _fxa(s) for s in ("BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "LTC-USD", "ETH-BTC")
    ),
    "itx": (
        _itx("BTC-USD", 101),
        _itx("ETH-USD", 102),
        _itx("SOL-USD", 103),
        _itx("DOGE-USD", 107),
        _itx("AVAX-USD", 111),
        _itx("LTC-USD", 113),
        _itx("DOT-USD", 117),
        _itx("LINK-USD", 119),
    ),
}
"""Each venue's listings, in the venue's own order."""


def venue_listings(venue: str) -> tuple[Listing, ...]:
    """The listings of `venue`.

    Raises:
        ValueError: an unknown venue name.
    """
    try:
        return LISTINGS[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known: {', '.join(VENUES)}") from None
