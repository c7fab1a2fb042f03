"""The simulated instrument universe: reference instruments plus simulation parameters.

Owns the start prices, volatilities, level spacing and typical sizes of the synthetic
markets, and re-exports which venue lists what (the reference data in
`ticker.venues.reference`). Must not hold any state or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ticker.model.fixed import parse_nanos
from ticker.model.instruments import Instrument
from ticker.venues.reference import INSTRUMENTS as REFERENCE
from ticker.venues.reference import VENUES, Listing, venue_listings

__all__ = [
    "INSTRUMENTS",
    "SIM_VENUES",
    "VENUES",
    "SimInstrument",
    "SimVenue",
    "listings",
    "venues_of",
]


QUOTE_STEP_SIGMAS: Final = 1.5
"""The quoting grid step, in fair-value standard deviations per sqrt(second)."""


@dataclass(frozen=True, slots=True)
class SimVenue:
    """How one venue follows the shared fair value.

    Attributes:
        latency_ns: how late the venue's market makers see the fair value.
        depth_gap: multiplies each instrument's level spacing behind the touch.
        size: multiplies each instrument's typical level size.
    """

    latency_ns: int
    depth_gap: int
    size: float


SIM_VENUES: Final[dict[str, SimVenue]] = {
    "itx": SimVenue(latency_ns=5_000_000, depth_gap=1, size=0.6),
    "cbx": SimVenue(latency_ns=25_000_000, depth_gap=1, size=1.0),
    "fxa": SimVenue(latency_ns=60_000_000, depth_gap=2, size=1.5),
}
"""Every simulated venue's reaction to the market: itx is co-located and fast, fxa's
FIX gateway is the slowest and its books the deepest."""


@dataclass(frozen=True, slots=True)
class SimInstrument:
    """An instrument and how its synthetic market behaves.

    Attributes:
        instrument: symbol, tick and lot (nanos), as reference data has them.
        start_price: the mid at the simulation epoch, in nanos.
        volatility: standard deviation of the mid's relative move per sqrt(second).
        level_gap_ticks: typical distance between book levels, in ticks.
        typical_size: typical size of a book level, in nanos.
    """

    instrument: Instrument
    start_price: int
    volatility: float
    level_gap_ticks: int
    typical_size: int

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def tick(self) -> int:
        return self.instrument.tick_size

    @property
    def lot(self) -> int:
        return self.instrument.lot_size

    @property
    def sigma_ticks_per_s(self) -> float:
        """The fair value's standard deviation per sqrt(second), in ticks."""
        return self.start_price / self.tick * self.volatility

    @property
    def quote_step_ticks(self) -> int:
        """The venues' quoting grid step: about 1.5 s of typical fair-value movement.

        Coarse enough that a venue at the default message rate re-quotes each symbol
        about once a second, fine enough that the touch follows the fair value.
        """
        return max(1, round(QUOTE_STEP_SIGMAS * self.sigma_ticks_per_s))

    def __post_init__(self) -> None:
        if self.start_price % self.tick or self.start_price <= 0:
            raise ValueError(f"{self.symbol}: start price must be a positive tick multiple")
        if self.typical_size < self.lot or self.level_gap_ticks < 1 or self.volatility < 0:
            raise ValueError(f"{self.symbol}: bad simulation parameters")


def _sim(symbol: str, price: str, volatility: float, gap_ticks: int, size: str) -> SimInstrument:
    return SimInstrument(
        REFERENCE[symbol], parse_nanos(price), volatility, gap_ticks, parse_nanos(size)
    )


INSTRUMENTS: Final[dict[str, SimInstrument]] = {
    s.symbol: s
    for s in (
        _sim("BTC-USD", "64000", 1.0e-4, 50, "0.25"),
        _sim("ETH-USD", "3200", 1.2e-4, 5, "3"),
        _sim("SOL-USD", "145", 1.5e-4, 1, "40"),
        _sim("XRP-USD", "0.52", 1.5e-4, 1, "5000"),
        _sim("ADA-USD", "0.45", 1.6e-4, 1, "8000"),
        _sim("DOGE-USD", "0.12", 2.0e-4, 1, "50000"),
        _sim("AVAX-USD", "28", 1.8e-4, 1, "100"),
        _sim("LINK-USD", "14", 1.6e-4, 1, "300"),
        _sim("LTC-USD", "80", 1.3e-4, 1, "20"),
        _sim("DOT-USD", "6.5", 1.6e-4, 1, "500"),
        _sim("ETH-BTC", "0.05", 0.8e-4, 1, "10"),
    )
}
"""Every simulated instrument by canonical symbol."""


def listings(venue: str) -> tuple[Listing, ...]:
    """What `venue` lists (native names, itx locate codes).

    Raises:
        ValueError: an unknown venue.
    """
    return venue_listings(venue)


def venues_of(symbol: str) -> tuple[str, ...]:
    """The venues that list `symbol`."""
    return tuple(v for v in VENUES if any(item.symbol == symbol for item in venue_listings(v)))
