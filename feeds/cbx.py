"""The cbx venue simulator: Coinbase-style JSON messages with per-product sequences.

Owns what cbx sends and when: snapshots at session start and on request, one `match`
per trade (maker side, as Coinbase does), one `l2update` per book change, a `ticker`
every third trade, a heartbeat per product each second. Sequences continue across
sessions. Must not decode or read clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

from feeds.engine import SimulatorEngine
from feeds.market import Change, Fill
from ticker.ingest.stats import SessionStats
from ticker.venues.cbx_wire import (
    CbxSide,
    encode_heartbeat,
    encode_l2update,
    encode_match,
    encode_snapshot,
    encode_ticker,
)

TICKER_EVERY_TRADES = 3


class CbxSimulator(SimulatorEngine):
    """Simulated cbx venue."""

    venue = "cbx"

    def __init__(
        self, seed: int, rate_per_s: float, symbols: Sequence[str] | None = None, **kw: int
    ) -> None:
        super().__init__(seed, rate_per_s, symbols, **kw)
        self._seq = dict.fromkeys(self._symbols, 1000)
        self._trade_id = dict.fromkeys(self._symbols, 0)
        self._stats = {s: SessionStats() for s in self._symbols}

    def _start_session(self) -> list[bytes]:
        return [self._encode_snapshot(s, requested=False) for s in self._symbols]

    def _encode_snapshot(self, symbol: str, *, requested: bool) -> bytes:
        bids, asks = self.book_levels(symbol)
        product = self.listings[symbol].native
        return encode_snapshot(product, self._seq[symbol], self._clock_ns, bids, asks)

    def _heartbeats(self) -> list[bytes]:
        now = self._clock_ns
        return [
            encode_heartbeat(self.listings[s].native, self._seq[s], now, self._trade_id[s])
            for s in self._symbols
        ]

    def _encode_step(self, symbol: str, changes: list[Change], fill: Fill | None) -> list[bytes]:
        product = self.listings[symbol].native
        inst = self.instruments[symbol]
        tick, lot = inst.tick, inst.lot
        now = self._clock_ns
        seq = self._seq[symbol]
        out = []
        if fill is not None:
            taker_buys, px, lots = fill
            price, size = px * tick, lots * lot
            seq += 1
            trade_id = self._trade_id[symbol] = self._trade_id[symbol] + 1
            maker: CbxSide = "sell" if taker_buys else "buy"
            out.append(encode_match(product, seq, now, trade_id, maker, price, size))
        if changes:
            seq += 1
            levels = [(is_bid, px * tick, lots * lot) for is_bid, px, lots, _ in changes]
            out.append(encode_l2update(product, seq, now, levels))
        if fill is not None:
            stats = self._stats[symbol]
            stats.on_trade(price, size)
            if trade_id % TICKER_EVERY_TRADES == 0:
                seq += 1
                out.append(self._ticker(product, seq, now, stats))
        self._seq[symbol] = seq
        return out

    @staticmethod
    def _ticker(product: str, seq: int, now: int, stats: SessionStats) -> bytes:
        if stats.last is None or stats.open is None or stats.high is None or stats.low is None:
            raise AssertionError("ticker before the first trade")
        return encode_ticker(
            product, seq, now, stats.last, stats.open, stats.high, stats.low, stats.volume
        )

    def corrupt(self, data: bytes, rng: Random) -> bytes:
        """Insert an unbalanced quote or an invalid UTF-8 byte: never valid JSON."""
        i = int(rng.random() * len(data))
        if rng.random() < 0.5:
            return data[:i] + b'"' + data[i:]
        return data[:i] + b"\xff" + data[i + 1 :]
