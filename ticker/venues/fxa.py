"""The fxa adapter: FIX 4.4 messages in, normalized events out.

Owns the fxa-specific rules: the session sequence (34 MsgSeqNum: gaps counted,
duplicates and PossDup resends dropped, a Logon starts a new session), the mapping of
35=X entries (bid/offer levels, trades, statistics) with their per-symbol 83 RptSeq,
35=W full refreshes, and 35=V requests going the other way. Sequencing, books and
resync are the normalizer's. Must not do I/O or raise on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput, RequestSnapshot
from ticker.ingest.normalizer import SymbolTrack
from ticker.model.events import PriceLevel, TakerSide, TickerStats, Trade
from ticker.venues.adapter_base import AdapterBase
from ticker.venues.errors import DecodeError
from ticker.venues.fxa_messages import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    BID,
    DELETE,
    HIGH,
    LOW,
    OFFER,
    OPEN,
    TRADE,
    EntryTuple,
    FxaHeader,
    FxaSnapshotRequest,
)
from ticker.venues.fxa_wire import (
    encode_message,
    scan_header,
    scan_incremental,
    scan_snapshot,
    split_fields,
)
from ticker.venues.reference import Listing

_TAKER = {AGGRESSOR_BUY: TakerSide.BUY, AGGRESSOR_SELL: TakerSide.SELL}


class _Stats:
    """The latest statistics the venue reported for one symbol."""

    __slots__ = ("high", "last", "low", "open", "volume")

    def __init__(self) -> None:
        self.open: int | None = None
        self.high: int | None = None
        self.low: int | None = None
        self.last: int | None = None
        self.volume = 0


class FxaAdapter(AdapterBase):
    """Normalizer for the fxa venue (session MsgSeqNum plus per-symbol RptSeq)."""

    venue = "fxa"

    def __init__(
        self,
        listings: Sequence[Listing] | None = None,
        config: IngestConfig | None = None,
        *,
        sender: str = "TICKER",
        target: str = "FXA",
    ) -> None:
        super().__init__(listings, config)
        tracks = self.norm.tracks
        self._tracks = {listing.native: tracks[listing.symbol] for listing in self.listings}
        self._natives = {listing.symbol: listing.native for listing in self.listings}
        self._stats = {listing.symbol: _Stats() for listing in self.listings}
        self._expected_seq: int | None = None
        self._session_start_ns = 0
        self._max_bytes = self.config.max_message_bytes
        self._sender = sender
        self._target = target
        self._out_seq = 0

    def _reset_session(self, now_ns: int, out: AdapterOutput) -> None:
        self._expected_seq = None
        self._out_seq = 0
        self._stats = {listing.symbol: _Stats() for listing in self.listings}

    def on_message(self, data: bytes, now_ns: int) -> AdapterOutput:
        """Feed one FIX message (from 8= through the 10= trailer)."""
        out = AdapterOutput()
        self.counters.messages += 1
        if len(data) > self._max_bytes and self._too_big(data, now_ns):
            return out
        try:
            parts = split_fields(data)
            msg_type, seq, _, _, ts_ns, poss_dup, _, body = scan_header(parts)
            if msg_type == "X":
                entries = scan_incremental(parts, body)
                if seq == self._expected_seq:
                    self._expected_seq = seq + 1
                    self._incremental(entries, ts_ns, now_ns, out)
                elif self._in_session(seq, ts_ns):
                    self._incremental(entries, ts_ns, now_ns, out)
            elif msg_type == "W":
                _, native, rpt_seq, levels = scan_snapshot(parts, body)
                if self._in_session(seq, ts_ns):
                    self._snapshot(native, rpt_seq, levels, ts_ns, now_ns, out)
            elif msg_type == "0":
                self._in_session(seq, ts_ns)
            elif msg_type == "A":
                self._logon(seq, ts_ns, poss_dup, now_ns, out)
            elif msg_type == "5":
                self._expected_seq = None
            else:
                raise DecodeError(f"fxa: unexpected MsgType {msg_type!r} from the venue")
        except DecodeError as exc:
            self.norm.malformed(now_ns, str(exc))
        self.counters.events += len(out.events)
        return out

    def _logon(self, seq: int, ts_ns: int, poss_dup: bool, now_ns: int, out: AdapterOutput) -> None:
        """35=A starts a session; inside a live one it is a restart only if it is new.

        A resent (PossDup) or late logon, no later than the session's first message,
        is an old copy and is dropped like any duplicate.
        """
        if self._expected_seq is not None:
            if poss_dup or seq >= self._expected_seq or ts_ns <= self._session_start_ns:
                self.counters.duplicates += 1
                return
            # The venue restarted the session under us without a disconnect.
            self.norm.disconnect(now_ns, out)
            self._reset_session(now_ns, out)
        self._expected_seq = seq + 1
        self._session_start_ns = ts_ns

    def _in_session(self, seq: int, ts_ns: int) -> bool:
        """Check 34 MsgSeqNum; False for a duplicate or an old resend."""
        expected = self._expected_seq
        if expected is None:
            self._expected_seq = seq + 1
            self._session_start_ns = ts_ns
            return True
        if seq == expected:
            self._expected_seq = seq + 1
            return True
        if seq < expected:
            self.counters.duplicates += 1
            return False
        self.counters.gaps += 1
        self._expected_seq = seq + 1
        return True

    def _snapshot(
        self,
        native: str,
        rpt_seq: int,
        levels: list[tuple[str, int, int]],
        ts_ns: int,
        now_ns: int,
        out: AdapterOutput,
    ) -> None:
        track = self._tracks.get(native)
        if track is None:
            self.norm.malformed(now_ns, f"W for unknown symbol {native!r}")
            return
        bids: list[PriceLevel] = []
        asks: list[PriceLevel] = []
        for kind, price, size in levels:
            (bids if kind == BID else asks).append((price, size))
        self.norm.snapshot(track, rpt_seq, bids, asks, ts_ns, now_ns, out)

    def _incremental(
        self, entries: list[EntryTuple], ts_ns: int, now_ns: int, out: AdapterOutput
    ) -> None:
        norm = self.norm
        if len(entries) == 1:
            action, kind, native, rpt_seq, price, size, _, _ = entries[0]
            track = self._tracks.get(native)
            if action == DELETE:
                size = 0
            if (
                track is not None
                and price is not None
                and size is not None
                and kind in (BID, OFFER)
            ):
                norm.level_update(track, rpt_seq, kind == BID, price, size, ts_ns, now_ns, out)
                return
        staged: list[SymbolTrack] = []
        stats_touched: list[SymbolTrack] = []
        for action, kind, native, rpt_seq, price, size, trade_id, aggressor in entries:
            track = self._tracks.get(native)
            if track is None:
                norm.malformed(now_ns, f"X entry for unknown symbol {native!r}")
                continue
            if kind in (BID, OFFER):
                if not norm.sequence_book(track, rpt_seq, now_ns, out):
                    continue
                if action == DELETE:
                    size = 0
                if price is None or size is None:
                    norm.fault(track, now_ns, "level entry without 270/271", out)
                    continue
                staged_ok = norm.stage_level(track, kind == BID, price, size, now_ns, out)
                if staged_ok and track not in staged:
                    staged.append(track)
            elif not norm.sequence_info(track, rpt_seq, now_ns, out):
                continue
            elif kind == TRADE:
                taker = _TAKER.get(aggressor) if aggressor is not None else None
                if price is None or size is None or taker is None:
                    norm.malformed(now_ns, f"{track.symbol}: trade entry lacks 270/271/5797")
                    continue
                self._stats[track.symbol].last = price
                out.events.append(
                    Trade(self.venue, track.symbol, ts_ns, price, size, taker, trade_id or "")
                )
            else:
                stats = self._stats[track.symbol]
                if kind == OPEN:
                    stats.open = price
                elif kind == HIGH:
                    stats.high = price
                elif kind == LOW:
                    stats.low = price
                else:
                    stats.volume = size or 0
                if track not in stats_touched:
                    stats_touched.append(track)
        for track in staged:
            norm.flush(track, ts_ns, now_ns, out)
        for track in stats_touched:
            s = self._stats[track.symbol]
            change = None if s.last is None or s.open is None else s.last - s.open
            out.events.append(
                TickerStats(
                    self.venue, track.symbol, ts_ns, s.last, s.open, s.high, s.low, s.volume, change
                )
            )

    def encode_request(self, request: RequestSnapshot, now_ns: int) -> bytes:
        """The 35=V message that asks the venue for `request`'s snapshot.

        Raises:
            ValueError: a request for a symbol this adapter does not list.
        """
        native = self._natives.get(request.symbol)
        if native is None:
            raise ValueError(f"fxa does not list {request.symbol!r}")
        self._out_seq += 1
        header = FxaHeader(self._out_seq, self._sender, self._target, now_ns)
        return encode_message(FxaSnapshotRequest(header, f"R{self._out_seq}", native))
