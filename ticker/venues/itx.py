"""The itx adapter: binary MoldUDP64-style packets in, normalized events out.

Owns the itx-specific rules: the packet sequence (gaps counted, duplicates and
overlaps dropped, a new session name restarts everything), locate codes to symbols
(reference data given at construction), the venue's implied-decimal scales converted
to nanos, and session statistics derived from trades. A packet is validated whole
before any record is applied. Must not do I/O or raise on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput
from ticker.ingest.stats import SessionStats
from ticker.model.events import TakerSide, TickerStats, Trade
from ticker.model.fixed import MAX_NANOS, nanos_from_scaled
from ticker.venues.adapter_base import AdapterBase
from ticker.venues.errors import DecodeError
from ticker.venues.itx_wire import (
    BUY,
    END_OF_SESSION,
    LEVEL_UPDATE_TYPE,
    PRICE_DECIMALS,
    SELL,
    SIZE_DECIMALS,
    TRADE_TYPE,
    unpack_packet,
)
from ticker.venues.reference import Listing


class ItxAdapter(AdapterBase):
    """Normalizer for the itx venue (packet sequence plus per-instrument sequence)."""

    venue = "itx"

    def __init__(
        self, listings: Sequence[Listing] | None = None, config: IngestConfig | None = None
    ) -> None:
        super().__init__(listings, config)
        tracks = self.norm.tracks
        self._tracks = {}
        for listing in self.listings:
            if listing.locate is None:
                raise ValueError(f"itx listing {listing.symbol} has no locate code")
            self._tracks[listing.locate] = tracks[listing.symbol]
        self._stats = {listing.symbol: SessionStats() for listing in self.listings}
        # Exact scale factors, from ticker.model.fixed, applied as one multiply each.
        self._price_nanos = nanos_from_scaled(1, PRICE_DECIMALS)
        self._size_nanos = nanos_from_scaled(1, SIZE_DECIMALS)
        # The wire's int64 scaled values can exceed 64 bits once in nanos: refused.
        self._max_price = MAX_NANOS // self._price_nanos
        self._max_size = MAX_NANOS // self._size_nanos
        self._max_bytes = self.config.max_message_bytes
        self._session: bytes | None = None
        self._expected_seq: int | None = None

    def _reset_session(self, now_ns: int, out: AdapterOutput) -> None:
        self._session = None
        self._expected_seq = None
        for stats in self._stats.values():
            stats.reset()

    def _trade(self, symbol: str, rec: tuple[Any, ...], out: AdapterOutput) -> None:
        _, _, _, ts, side, price, size, match_id = rec
        if side == BUY:
            taker = TakerSide.BUY
        elif side == SELL:
            taker = TakerSide.SELL
        else:
            self.norm.malformed(ts, f"{symbol}: bad aggressor side {side!r}")
            return
        price *= self._price_nanos
        size *= self._size_nanos
        venue = self.venue
        stats = self._stats[symbol]
        stats.on_trade(price, size)
        out.events.append(Trade(venue, symbol, ts, price, size, taker, str(match_id)))
        out.events.append(
            TickerStats(
                venue,
                symbol,
                ts,
                stats.last,
                stats.open,
                stats.high,
                stats.low,
                stats.volume,
                stats.change,
            )
        )

    def _check_ranges(self, records: list[tuple[Any, ...]]) -> None:
        """Refuse a packet with a value that does not fit 64 bits in nanos (a whole
        packet, like any other damage: its sequence numbers are then a gap).

        Raises:
            DecodeError: a price, size or time out of range.
        """
        max_price, max_size = self._max_price, self._max_size
        for rec in records:
            if rec[3] > MAX_NANOS:
                raise DecodeError(f"itx: time {rec[3]} beyond 64-bit ns")
            levels = rec[6] if rec[0] not in (LEVEL_UPDATE_TYPE, TRADE_TYPE) else (rec[5:7],)
            for price, size in levels:
                if not (-max_price <= price <= max_price and -max_size <= size <= max_size):
                    raise DecodeError(f"itx: price {price} or size {size} beyond 64-bit nanos")

    def on_message(self, data: bytes, now_ns: int) -> AdapterOutput:
        """Feed one packet."""
        out = AdapterOutput()
        self.counters.messages += 1
        norm = self.norm
        if len(data) > self._max_bytes and self._too_big(data, now_ns):
            return out
        try:
            session, seq, count, records = unpack_packet(data)
            self._check_ranges(records)
        except DecodeError as exc:
            norm.malformed(now_ns, str(exc))
            return out
        if session != self._session:
            if self._session is not None:
                # A new session name without a disconnect: the venue restarted.
                norm.disconnect(now_ns, out)
                self._reset_session(now_ns, out)
            self._session = session
        expected = self._expected_seq
        if count == 0 or count == END_OF_SESSION:
            # A heartbeat carries the next sequence: a gap on a quiet feed shows here.
            if expected is not None and seq > expected:
                self.counters.gaps += 1
            if expected is None or seq > expected:
                self._expected_seq = seq
            self.counters.events += len(out.events)
            return out
        skip = 0
        if expected is not None:
            if seq + count <= expected:
                self.counters.duplicates += 1
                return out
            if seq < expected:
                skip = expected - seq
            elif seq > expected:
                self.counters.gaps += 1
        self._expected_seq = seq + count
        tracks = self._tracks
        price_nanos = self._price_nanos
        size_nanos = self._size_nanos
        for rec in records[skip:] if skip else records:
            track = tracks.get(rec[1])
            if track is None:
                norm.malformed(now_ns, f"record for unknown locate {rec[1]}")
                continue
            kind = rec[0]
            if kind == LEVEL_UPDATE_TYPE:
                side = rec[4]
                if side == BUY:
                    norm.level_update(
                        track,
                        rec[2],
                        True,
                        rec[5] * price_nanos,
                        rec[6] * size_nanos,
                        rec[3],
                        now_ns,
                        out,
                    )
                elif side == SELL:
                    norm.level_update(
                        track,
                        rec[2],
                        False,
                        rec[5] * price_nanos,
                        rec[6] * size_nanos,
                        rec[3],
                        now_ns,
                        out,
                    )
                elif norm.sequence_book(track, rec[2], now_ns, out):
                    norm.fault(track, now_ns, f"bad side {side!r}", out)
            elif kind == TRADE_TYPE:
                if norm.sequence_info(track, rec[2], now_ns, out):
                    self._trade(track.symbol, rec, out)
            else:
                _, _, iseq, ts, n_bids, _, levels = rec
                bids = [(p * price_nanos, s * size_nanos) for p, s in levels[:n_bids]]
                asks = [(p * price_nanos, s * size_nanos) for p, s in levels[n_bids:]]
                norm.snapshot(track, iseq, bids, asks, ts, now_ns, out)
        self.counters.events += len(out.events)
        return out
