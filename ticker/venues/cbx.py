"""The cbx adapter: JSON messages in, normalized events out.

Owns the cbx-specific mapping: product ids to symbols, the maker-side convention of
`match`, the `ticker` statistics, and which message takes a product sequence
(l2update, match, ticker) or only reports it (snapshot, heartbeat). Sequencing,
books and resync are the normalizer's. Must not do I/O or raise on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput
from ticker.model.events import TakerSide, TickerStats, Trade
from ticker.venues.adapter_base import AdapterBase
from ticker.venues.cbx_wire import decode_fields, parse_object
from ticker.venues.errors import DecodeError
from ticker.venues.reference import Listing


class CbxAdapter(AdapterBase):
    """Normalizer for the cbx venue (per-product sequences, no session sequence)."""

    venue = "cbx"

    def __init__(
        self, listings: Sequence[Listing] | None = None, config: IngestConfig | None = None
    ) -> None:
        super().__init__(listings, config)
        tracks = self.norm.tracks
        self._tracks = {listing.native: tracks[listing.symbol] for listing in self.listings}
        self._max_bytes = self.config.max_message_bytes

    def on_message(self, data: bytes, now_ns: int) -> AdapterOutput:
        """Feed one JSON message."""
        out = AdapterOutput()
        self.counters.messages += 1
        norm = self.norm
        if len(data) > self._max_bytes and self._too_big(data, now_ns):
            return out
        try:
            kind, product, seq, ts_ns, payload = decode_fields(parse_object(data))
        except DecodeError as exc:
            norm.malformed(now_ns, str(exc))
            return out
        track = self._tracks.get(product)
        if track is None:
            norm.malformed(now_ns, f"unknown product {product!r}")
            return out
        if kind == "l2update":
            if len(payload) == 1:
                is_bid, price, size = payload[0]
                norm.level_update(track, seq, is_bid, price, size, ts_ns, now_ns, out)
            elif norm.sequence_book(track, seq, now_ns, out):
                for is_bid, price, size in payload:
                    if not norm.stage_level(track, is_bid, price, size, now_ns, out):
                        break
                norm.flush(track, ts_ns, now_ns, out)
        elif kind == "match":
            if norm.sequence_info(track, seq, now_ns, out):
                trade_id, maker_side, price, size = payload
                # The match's side is the maker's: a resting sell means a buyer took it.
                taker = TakerSide.BUY if maker_side == "sell" else TakerSide.SELL
                out.events.append(
                    Trade(self.venue, track.symbol, ts_ns, price, size, taker, str(trade_id))
                )
        elif kind == "heartbeat":
            norm.heartbeat(track, seq, now_ns, out)
        elif kind == "snapshot":
            norm.snapshot(track, seq, payload[0], payload[1], ts_ns, now_ns, out)
        elif norm.sequence_info(track, seq, now_ns, out):
            price, open_, high, low, volume = payload
            out.events.append(
                TickerStats(
                    self.venue, track.symbol, ts_ns, price, open_, high, low, volume, price - open_
                )
            )
        self.counters.events += len(out.events)
        return out
