"""What the three venue adapters share: counters, the normalizer, session plumbing.

Owns the parts of the `VenueAdapter` protocol that do not depend on a wire format
(on_disconnect, on_timer, the size guard, inspection for tests and health). Must not
decode anything; each venue module does that and drives `self.norm`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput, IngestCounters
from ticker.ingest.normalizer import Normalizer, Phase
from ticker.model.events import PriceLevel
from ticker.venues.reference import Listing, venue_listings


class AdapterBase:
    """Common state of a venue adapter; subclasses implement `on_message`."""

    venue: str

    def __init__(self, listings: Sequence[Listing] | None, config: IngestConfig | None) -> None:
        self.listings = tuple(venue_listings(self.venue) if listings is None else listings)
        if any(listing.venue != self.venue for listing in self.listings):
            raise ValueError(f"{self.venue}: listings of another venue given")
        self.config = IngestConfig() if config is None else config
        self.counters = IngestCounters()
        self.norm = Normalizer(
            self.venue, [listing.symbol for listing in self.listings], self.config, self.counters
        )

    def on_message(self, data: bytes, now_ns: int) -> AdapterOutput:
        """Feed one native message (JSON line, FIX message, binary packet)."""
        raise NotImplementedError

    def _too_big(self, data: bytes, now_ns: int) -> bool:
        if len(data) > self.config.max_message_bytes:
            self.norm.malformed(now_ns, f"message of {len(data)} bytes is over the limit")
            return True
        return False

    def _reset_session(self, now_ns: int, out: AdapterOutput) -> None:
        """Hook: forget venue-specific session state (called on every disconnect)."""

    def on_disconnect(self, now_ns: int) -> AdapterOutput:
        """The connection dropped: every book is unknown until its next snapshot."""
        out = AdapterOutput()
        self.norm.disconnect(now_ns, out)
        self._reset_session(now_ns, out)
        self.counters.events += len(out.events)
        return out

    def on_timer(self, now_ns: int) -> AdapterOutput:
        """Periodic call: re-request snapshots whose resync is overdue."""
        out = AdapterOutput()
        self.norm.timer(now_ns, out)
        return out

    def books(self) -> dict[str, tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]]:
        """Each symbol's book as the adapter holds it (bids best first, asks best first)."""
        return self.norm.books()

    def phases(self) -> dict[str, Phase]:
        """Each symbol's phase: unknown, live or resyncing."""
        return self.norm.phases()
