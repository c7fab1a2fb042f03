"""The venue-neutral half of every adapter: per-symbol sequencing, books and resync.

Owns, per symbol, the phase (unknown / live / resyncing), the venue sequence numbers
seen, the L2 book, the last published BBO, and the events that follow from them:
BookUpdate, Quote, and the RequestSnapshot a gap calls for. Venue adapters decode their
wire format and drive this with typed values. Pure: no I/O, no clock (`now_ns` comes
in). Must not parse bytes or know a wire format.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from ticker.ingest.book import APPLIED_AT_TOP, EMPTY_BBO, REJECTED, Bbo, L2Book
from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput, IngestCounters
from ticker.ingest.ratelog import RateLimitedLog
from ticker.ingest.resync import ResyncScheduler
from ticker.model.events import BookUpdate, PriceLevel, Quote


class Phase(enum.Enum):
    """Where a symbol's book stands."""

    UNKNOWN = "unknown"
    """No snapshot yet in this session; incremental messages reveal we need one."""
    LIVE = "live"
    """In sequence since a snapshot: incremental updates apply."""
    RESYNCING = "resyncing"
    """A gap or fault: updates are dropped until a snapshot arrives."""


_LIVE = Phase.LIVE


class SymbolTrack:
    """Mutable per-symbol state. Sequence numbers are -1 until known.

    `last_seq` is the venue seq the book is consistent with, `seen_seq` the highest
    seq whose trade or statistics were published (so none is published twice),
    `snapshot_seq` the seq of the snapshot that started this live run.
    """

    __slots__ = (
        "ask_changes",
        "bid_changes",
        "book",
        "has_state",
        "last_seq",
        "phase",
        "quote",
        "seen_seq",
        "snapshot_seq",
        "symbol",
        "touched_top",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = L2Book()
        self.bid_changes: dict[int, int] = {}
        self.ask_changes: dict[int, int] = {}
        self.touched_top = False
        self.reset()

    def reset(self) -> None:
        """Forget everything about the symbol (a new session)."""
        self.book.clear()
        self.bid_changes.clear()
        self.ask_changes.clear()
        self.touched_top = False
        self.phase = Phase.UNKNOWN
        self.last_seq = self.seen_seq = self.snapshot_seq = -1
        self.quote: Bbo = EMPTY_BBO
        self.has_state = False


class Normalizer:
    """Per-symbol sequence, book and resync logic shared by the venue adapters.

    Methods taking `out` append the events and requests they produce to it.
    """

    def __init__(
        self, venue: str, symbols: Iterable[str], config: IngestConfig, counters: IngestCounters
    ) -> None:
        self.venue = venue
        self.config = config
        self.counters = counters
        self.tracks = {s: SymbolTrack(s) for s in symbols}
        self.log = RateLimitedLog(venue, config.log_lines_per_s)
        self._max_levels = config.max_levels_per_side
        self._resync = ResyncScheduler(venue, config)

    # ------------------------------------------------------------ bad input

    def malformed(self, now_ns: int, reason: str) -> None:
        """Count one malformed message (or part of one) and log it, rate-limited."""
        self.counters.malformed += 1
        self.log.warning(now_ns, f"malformed input skipped: {reason}")

    def fault(self, track: SymbolTrack, now_ns: int, reason: str, out: AdapterOutput) -> None:
        """The venue sent something impossible for this symbol: count it and resync."""
        self.malformed(now_ns, f"{track.symbol}: {reason}; resyncing")
        self.begin_resync(track, now_ns, out)

    def _crossed(self, track: SymbolTrack, now_ns: int, out: AdapterOutput) -> None:
        # The venue's book can no longer be trusted, and ours must never hold a cross:
        # forget it until the snapshot (what was published stands until then).
        track.book.clear()
        self.fault(track, now_ns, "update crosses the book", out)

    # ------------------------------------------------------------ sequencing

    def begin_resync(self, track: SymbolTrack, now_ns: int, out: AdapterOutput) -> None:
        """Drop the symbol's updates until a snapshot; ask for one (bounded, once)."""
        track.bid_changes.clear()
        track.ask_changes.clear()
        track.touched_top = False
        if track.phase is Phase.RESYNCING:
            return
        track.phase = Phase.RESYNCING
        self.counters.resyncs += 1
        request = self._resync.begin(track.symbol, now_ns)
        if request is not None:
            out.requests.append(request)

    def _gap_or_old(self, track: SymbolTrack, seq: int, now_ns: int, out: AdapterOutput) -> bool:
        """`seq` is not the next one: count, resync on a gap; True if never seen before."""
        if track.phase is Phase.LIVE:
            if seq <= track.last_seq:
                if seq <= track.snapshot_seq:
                    self.counters.stale_dropped += 1
                else:
                    self.counters.duplicates += 1
                return False
            self.counters.gaps += 1
            self.begin_resync(track, now_ns, out)
        elif track.phase is Phase.UNKNOWN:
            self.begin_resync(track, now_ns, out)
        if seq > track.seen_seq:
            track.seen_seq = seq
            return True
        self.counters.duplicates += 1
        return False

    def sequence_book(self, track: SymbolTrack, seq: int, now_ns: int, out: AdapterOutput) -> bool:
        """Check a book update's venue seq. True: apply it to the book."""
        if track.phase is _LIVE and seq == track.last_seq + 1:
            track.last_seq = seq
            if seq > track.seen_seq:
                track.seen_seq = seq
            return True
        if self._gap_or_old(track, seq, now_ns, out):
            self.counters.stale_dropped += 1
        return False

    def sequence_info(self, track: SymbolTrack, seq: int, now_ns: int, out: AdapterOutput) -> bool:
        """Check a trade's or statistic's venue seq. True: publish it (first time seen).

        Trades are published even while the book resyncs: the tape has no book state,
        and `seen_seq` keeps a repeated message from being published twice.
        """
        if track.phase is _LIVE and seq == track.last_seq + 1:
            track.last_seq = seq
            if seq > track.seen_seq:
                track.seen_seq = seq
                return True
            self.counters.duplicates += 1
            return False
        return self._gap_or_old(track, seq, now_ns, out)

    def heartbeat(self, track: SymbolTrack, seq: int, now_ns: int, out: AdapterOutput) -> None:
        """A heartbeat carrying the symbol's current seq: a higher one reveals a gap."""
        if track.phase is Phase.LIVE:
            if seq > track.last_seq:
                self.counters.gaps += 1
                self.begin_resync(track, now_ns, out)
        elif track.phase is Phase.UNKNOWN:
            self.begin_resync(track, now_ns, out)

    # ------------------------------------------------------------ book changes

    def snapshot(
        self,
        track: SymbolTrack,
        seq: int,
        bids: Sequence[PriceLevel],
        asks: Sequence[PriceLevel],
        ts_ns: int,
        now_ns: int,
        out: AdapterOutput,
    ) -> None:
        """Replace the book from a snapshot whose last included seq is `seq`."""
        if track.phase is Phase.LIVE and seq <= track.last_seq:
            self.counters.stale_dropped += 1
            return
        if any(s < 0 for _, s in bids) or any(s < 0 for _, s in asks):
            self.fault(track, now_ns, "negative size in snapshot", out)
            return
        book = track.book
        book.replace(bids, asks)
        limit = self._max_levels
        if len(book.bids) > limit or len(book.asks) > limit:
            self.malformed(now_ns, f"{track.symbol}: snapshot deeper than {limit}, truncated")
            book.replace(book.bid_levels(limit), book.ask_levels(limit))
        if book.crossed():
            book.clear()
            self.fault(track, now_ns, "crossed snapshot", out)
            return
        track.bid_changes.clear()
        track.ask_changes.clear()
        track.touched_top = False
        track.phase = Phase.LIVE
        track.last_seq = track.snapshot_seq = seq
        if seq > track.seen_seq:
            track.seen_seq = seq
        out.requests.extend(self._resync.finish(track.symbol, now_ns))
        out.events.append(
            BookUpdate(self.venue, track.symbol, ts_ns, book.bid_levels(), book.ask_levels(), True)
        )
        track.has_state = True
        self._quote(track, ts_ns, out)

    def level_update(
        self,
        track: SymbolTrack,
        seq: int,
        is_bid: bool,
        price: int,
        size: int,
        ts_ns: int,
        now_ns: int,
        out: AdapterOutput,
    ) -> None:
        """A book message that changes exactly one level: sequence, apply, publish.

        This is the hot path of every venue, so it is written out in full.
        """
        if track.phase is not _LIVE or seq != track.last_seq + 1:
            if self._gap_or_old(track, seq, now_ns, out):
                self.counters.stale_dropped += 1
            return
        track.last_seq = seq
        if seq > track.seen_seq:
            track.seen_seq = seq
        if size < 0:
            self.fault(track, now_ns, "negative size", out)
            return
        book = track.book
        if is_bid:
            result = book.set_bid(price, size, self._max_levels)
        else:
            result = book.set_ask(price, size, self._max_levels)
        if result == REJECTED:
            self.malformed(now_ns, f"{track.symbol}: more than {self._max_levels} levels")
            return
        if result == APPLIED_AT_TOP and size:
            bid_prices = book.bid_prices
            ask_prices = book.ask_prices
            if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
                self._crossed(track, now_ns, out)
                return
        events = out.events
        if is_bid:
            events.append(BookUpdate(self.venue, track.symbol, ts_ns, ((price, size),), (), False))
        else:
            events.append(BookUpdate(self.venue, track.symbol, ts_ns, (), ((price, size),), False))
        track.has_state = True
        if result == APPLIED_AT_TOP:
            bbo = book.bbo()
            if bbo != track.quote:
                track.quote = bbo
                events.append(Quote(self.venue, track.symbol, ts_ns, *bbo))

    def stage_level(
        self,
        track: SymbolTrack,
        is_bid: bool,
        price: int,
        size: int,
        now_ns: int,
        out: AdapterOutput,
    ) -> bool:
        """Apply one level of a multi-level message; publish it with `flush`.

        Returns:
            False when the symbol went into resync (the rest of the message is moot).
        """
        if size < 0:
            self.fault(track, now_ns, "negative size", out)
            return False
        book = track.book
        if is_bid:
            result = book.set_bid(price, size, self._max_levels)
            changes = track.bid_changes
        else:
            result = book.set_ask(price, size, self._max_levels)
            changes = track.ask_changes
        if result == REJECTED:
            self.malformed(now_ns, f"{track.symbol}: more than {self._max_levels} levels")
            return True
        changes[price] = size
        if result == APPLIED_AT_TOP:
            track.touched_top = True
        return True

    def flush(self, track: SymbolTrack, ts_ns: int, now_ns: int, out: AdapterOutput) -> None:
        """Publish the levels staged for `track` as one BookUpdate (+ Quote on a new BBO)."""
        bid_changes = track.bid_changes
        ask_changes = track.ask_changes
        if not bid_changes and not ask_changes:
            return
        if track.touched_top and track.book.crossed():
            self._crossed(track, now_ns, out)
            return
        bids = tuple(sorted(bid_changes.items(), reverse=True))
        asks = tuple(sorted(ask_changes.items()))
        bid_changes.clear()
        ask_changes.clear()
        out.events.append(BookUpdate(self.venue, track.symbol, ts_ns, bids, asks, False))
        track.has_state = True
        if track.touched_top:
            track.touched_top = False
            self._quote(track, ts_ns, out)

    def _quote(self, track: SymbolTrack, ts_ns: int, out: AdapterOutput) -> None:
        bbo = track.book.bbo()
        if bbo != track.quote:
            track.quote = bbo
            out.events.append(Quote(self.venue, track.symbol, ts_ns, *bbo))

    # ------------------------------------------------------------ session

    def disconnect(self, now_ns: int, out: AdapterOutput) -> None:
        """Every book becomes unknown: publish it empty, forget all sequence state."""
        venue = self.venue
        for track in self.tracks.values():
            if track.has_state:
                out.events.append(BookUpdate(venue, track.symbol, now_ns, (), (), True))
                if track.quote != EMPTY_BBO:
                    out.events.append(Quote(venue, track.symbol, now_ns, None, None, None, None))
            track.reset()
        self._resync.clear()
        self.counters.disconnects += 1

    def timer(self, now_ns: int, out: AdapterOutput) -> None:
        """Re-request overdue snapshots (with backoff) and start queued ones."""
        out.requests.extend(self._resync.due(now_ns))

    # ------------------------------------------------------------ inspection

    def books(self) -> dict[str, tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]]:
        """Every symbol's current book (bids best first, asks best first)."""
        return {s: (t.book.bid_levels(), t.book.ask_levels()) for s, t in self.tracks.items()}

    def phases(self) -> dict[str, Phase]:
        """Every symbol's phase."""
        return {s: t.phase for s, t in self.tracks.items()}
