"""Entry point to the venue simulators: `make_simulator` and the interface they share.

Owns the mapping from venue name to simulator class and the `VenueSimulator`
protocol that shells and tests code against. Must not hold market logic or encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random
from typing import Protocol

from feeds.cbx import CbxSimulator
from feeds.engine import Frame, SimulatorEngine
from feeds.fxa import FxaSimulator
from feeds.itx import ItxSimulator
from feeds.market import EPOCH_NS
from ticker.model.events import PriceLevel

__all__ = ["EPOCH_NS", "Frame", "VenueSimulator", "make_simulator"]


class VenueSimulator(Protocol):
    """A synthetic venue speaking its native wire format, deterministic per seed."""

    venue: str

    @property
    def now_ns(self) -> int: ...

    @property
    def idle(self) -> bool: ...

    def connect(self) -> list[Frame]:
        """Start a session; returns its first frames (logon, snapshots)."""
        ...

    def next_frame(self) -> Frame:
        """One native message or packet, stamped at the next simulated time."""
        ...

    def request_snapshot(self, symbol: str) -> None:
        """Queue a snapshot of `symbol`; a following `next_frame` delivers it."""
        ...

    def advance(self, duration_ns: int) -> None:
        """Let simulated time pass silently."""
        ...

    def books(self) -> dict[str, tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]]:
        """The venue's true books in nanos, bids and asks best first."""
        ...

    def resend(self, data: bytes) -> bytes:
        """How the venue repeats a message (fxa marks it PossDup)."""
        ...

    def corrupt(self, data: bytes, rng: Random) -> bytes:
        """A damaged copy that the venue's decoder must reject."""
        ...


_SIMULATORS: dict[str, type[SimulatorEngine]] = {
    "cbx": CbxSimulator,
    "fxa": FxaSimulator,
    "itx": ItxSimulator,
}


def make_simulator(
    venue: str,
    seed: int,
    rate_per_s: float,
    symbols: Sequence[str] | None = None,
    *,
    start_ns: int = EPOCH_NS,
    heartbeat_interval_ns: int = 1_000_000_000,
) -> SimulatorEngine:
    """A simulator of `venue`, deterministic for `seed`.

    Args:
        venue: "cbx", "fxa" or "itx".
        seed: everything random derives from it (the mid path is shared across venues).
        rate_per_s: frames per second of simulated time.
        symbols: canonical symbols to run; default every symbol the venue lists.
        start_ns: simulated time at creation (ns since the epoch).
        heartbeat_interval_ns: simulated time between heartbeats.

    Raises:
        ValueError: unknown venue, a symbol the venue does not list, rate <= 0.
    """
    try:
        cls = _SIMULATORS[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known: {', '.join(_SIMULATORS)}") from None
    return cls(
        seed,
        rate_per_s,
        symbols,
        start_ns=start_ns,
        heartbeat_interval_ns=heartbeat_interval_ns,
    )
