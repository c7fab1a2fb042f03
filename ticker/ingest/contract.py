"""The contract between a venue adapter (pure) and the shell that feeds it bytes.

An adapter receives one native message (or packet) at a time and answers with the
normalized events it produced and the requests the shell must send back to the venue
(snapshot requests for a symbol being resynced). It never does I/O, never reads a clock
(`now_ns` comes in) and never raises on bad venue input: that is counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ticker.model.events import NormalizedEvent


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Ask the venue for a full book snapshot of one symbol (a resync)."""

    venue: str
    symbol: str


@dataclass(slots=True)
class AdapterOutput:
    """What one call into an adapter produced, in order."""

    events: list[NormalizedEvent] = field(default_factory=list)
    requests: list[RequestSnapshot] = field(default_factory=list)


@dataclass(slots=True)
class IngestCounters:
    """Per-venue counters; monotonic, read by metrics and the feed CLI."""

    messages: int = 0
    events: int = 0
    gaps: int = 0
    duplicates: int = 0
    malformed: int = 0
    resyncs: int = 0
    stale_dropped: int = 0
    disconnects: int = 0


class VenueAdapter(Protocol):
    """One venue's normalizer. Implementations live in `ticker.venues`."""

    venue: str
    counters: IngestCounters

    def on_message(self, data: bytes, now_ns: int) -> AdapterOutput:
        """Feed one native message (JSON line, FIX message, binary packet)."""
        ...

    def on_disconnect(self, now_ns: int) -> AdapterOutput:
        """The connection dropped: every book is unknown until its next snapshot."""
        ...

    def on_timer(self, now_ns: int) -> AdapterOutput:
        """Periodic call: re-request snapshots whose resync is overdue."""
        ...
