"""Captured records -> normalized events, through the real venue adapters.

`CaptureNormalizer` keeps one adapter per venue and feeds it records the way the live
ingest task (`ticker.server.venue_feed.run_venue`) feeds it the venue's messages: each
message with its receive time as `now_ns`, a disconnect as `on_disconnect`, and
`on_timer` once at least 250 ms have passed since the last one, after a message. The
recorder runs the same object live, so a replay of the same records yields exactly
the events the recording run produced, whatever the replay speed. Normalized records
are decoded instead. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ticker.capture.format import Record, RecordKind
from ticker.ingest.book import EMPTY_BBO
from ticker.ingest.contract import AdapterOutput, IngestCounters
from ticker.ingest.normalizer import Phase
from ticker.model.event_codec import BadEvent, decode_event
from ticker.model.events import BookUpdate, NormalizedEvent, Quote
from ticker.venues import AdapterBase, make_adapter

TIMER_PERIOD_NS = 250_000_000
"""As `ticker.server.venue_feed.TIMER_PERIOD_S`: how often an adapter's `on_timer` runs."""


@dataclass(slots=True)
class _FoldedSymbol:
    """The state normalized events of one venue and symbol left behind."""

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    quote: Quote | None = None


class CaptureNormalizer:
    """One adapter per venue, fed from records; decodes normalized records.

    Args:
        fold: also keep the book and quote state that normalized records describe, so
            `state_events` can restate it (used when a replay starts mid-capture).
    """

    def __init__(self, *, fold: bool = False) -> None:
        self.adapters: dict[str, AdapterBase] = {}
        self._next_timer_ns: dict[str, int] = {}
        self._fold = fold
        self._folded: dict[tuple[str, str], _FoldedSymbol] = {}
        self.malformed_events = 0
        """Normalized records that did not decode."""
        self.requests = 0
        """Snapshot requests the adapters made (a replay cannot send them anywhere)."""

    def counters(self) -> dict[str, IngestCounters]:
        """Each venue adapter's counters."""
        return {venue: adapter.counters for venue, adapter in self.adapters.items()}

    def _adapter(self, venue: str) -> AdapterBase:
        adapter = self.adapters.get(venue)
        if adapter is None:
            adapter = self.adapters[venue] = make_adapter(venue)
        return adapter

    def feed(self, record: Record) -> AdapterOutput:
        """The events (and snapshot requests) one record produces.

        Raises:
            ValueError: a raw record of a venue with no adapter.
        """
        if record.kind is RecordKind.EVENT:
            out = AdapterOutput()
            try:
                event = decode_event(record.payload)
            except BadEvent:
                self.malformed_events += 1
                return out
            out.events.append(event)
            if self._fold:
                self._fold_event(event)
            return out
        adapter = self._adapter(record.venue)
        now_ns = record.recv_ns
        if record.kind is RecordKind.DISCONNECT:
            out = adapter.on_disconnect(now_ns)
        else:
            out = adapter.on_message(record.payload, now_ns)
            due = self._next_timer_ns.get(record.venue)
            if due is None:
                self._next_timer_ns[record.venue] = now_ns + TIMER_PERIOD_NS
            elif now_ns >= due:
                self._next_timer_ns[record.venue] = now_ns + TIMER_PERIOD_NS
                timer = adapter.on_timer(now_ns)
                out.events += timer.events
                out.requests += timer.requests
        self.requests += len(out.requests)
        return out

    def _fold_event(self, event: NormalizedEvent) -> None:
        if not isinstance(event, BookUpdate | Quote):
            return
        state = self._folded.get((event.venue, event.symbol))
        if state is None:
            state = self._folded[(event.venue, event.symbol)] = _FoldedSymbol()
        if isinstance(event, Quote):
            state.quote = event
            return
        if event.snapshot:
            state.bids.clear()
            state.asks.clear()
        for levels, side in ((event.bids, state.bids), (event.asks, state.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def state_events(self, ts_ns: int) -> list[NormalizedEvent]:
        """Snapshots restating every book and quote held now, stamped `ts_ns`.

        A replay that starts mid-capture publishes these first, so the server holds the
        state the capture had reached: a book snapshot and the quote of every symbol an
        adapter holds live (or that normalized records described).
        """
        events: list[NormalizedEvent] = []
        for venue, adapter in self.adapters.items():
            for symbol, track in adapter.norm.tracks.items():
                if track.phase is not Phase.LIVE:
                    continue
                book = track.book
                events.append(
                    BookUpdate(venue, symbol, ts_ns, book.bid_levels(), book.ask_levels(), True)
                )
                if track.quote != EMPTY_BBO:
                    events.append(Quote(venue, symbol, ts_ns, *track.quote))
        for (venue, symbol), state in self._folded.items():
            bids = tuple(sorted(state.bids.items(), reverse=True))
            asks = tuple(sorted(state.asks.items()))
            events.append(BookUpdate(venue, symbol, ts_ns, bids, asks, True))
            if state.quote is not None:
                events.append(state.quote._replace(ts_ns=ts_ns))
        return events


def normalize_all(records: Iterable[Record]) -> list[NormalizedEvent]:
    """Every event a fresh normalizer makes of `records` (tests and tools)."""
    normalizer = CaptureNormalizer()
    events: list[NormalizedEvent] = []
    for record in records:
        events += normalizer.feed(record).events
    return events
