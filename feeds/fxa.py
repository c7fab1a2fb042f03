"""The fxa venue simulator: FIX 4.4 market data with session and per-symbol sequences.

Owns what fxa sends and when: a Logon (34=1) and a 35=W per symbol at session start,
one 35=X per market event (trade entry, then level entries, statistics every third
trade), 35=0 heartbeats each second, 35=W answers to requests, PossDup resends.
RptSeq (83) continues across sessions; MsgSeqNum (34) restarts. Must not read clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from random import Random

from feeds.engine import SimulatorEngine
from feeds.market import Change, Fill
from ticker.ingest.stats import SessionStats
from ticker.venues.fxa_messages import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    BID,
    CHANGE,
    DELETE,
    HIGH,
    LOW,
    NEW,
    OFFER,
    OPEN,
    TRADE,
    VOLUME,
    EntryTuple,
    FxaHeader,
    FxaLogon,
    FxaSnapshotRequest,
)
from ticker.venues.fxa_wire import (
    decode_message,
    encode_frame,
    encode_message,
    incremental_body,
    snapshot_body,
)

SENDER = "FXA"
TARGET = "TICKER"
HEARTBEAT_INTERVAL_S = 1
STATS_EVERY_TRADES = 3


class FxaSimulator(SimulatorEngine):
    """Simulated fxa venue."""

    venue = "fxa"

    def __init__(
        self, seed: int, rate_per_s: float, symbols: Sequence[str] | None = None, **kw: int
    ) -> None:
        super().__init__(seed, rate_per_s, symbols, **kw)
        self._msg_seq = 0
        self._rpt_seq = dict.fromkeys(self._symbols, 0)
        self._trades = dict.fromkeys(self._symbols, 0)
        self._trade_id = 0
        self._requests = 0
        self._stats = {s: SessionStats() for s in self._symbols}
        self._by_native = {self.listings[s].native: s for s in self._symbols}

    def _header(self) -> FxaHeader:
        self._msg_seq += 1
        return FxaHeader(self._msg_seq, SENDER, TARGET, self._clock_ns)

    def _frame(self, msg_type: str, body: str) -> bytes:
        self._msg_seq += 1
        return encode_frame(msg_type, self._msg_seq, SENDER, TARGET, self._clock_ns, body)

    def _start_session(self) -> list[bytes]:
        self._msg_seq = 0
        logon = encode_message(FxaLogon(self._header(), HEARTBEAT_INTERVAL_S, True))
        return [logon] + [self._encode_snapshot(s, requested=False) for s in self._symbols]

    def _encode_snapshot(self, symbol: str, *, requested: bool, req_id: str | None = None) -> bytes:
        if requested and req_id is None:
            self._requests += 1
            req_id = f"S{self._requests}"
        bids, asks = self.book_levels(symbol)
        levels = [(BID, p, s) for p, s in bids] + [(OFFER, p, s) for p, s in asks]
        native = self.listings[symbol].native
        return self._frame("W", snapshot_body(req_id, native, self._rpt_seq[symbol], levels))

    def _heartbeats(self) -> list[bytes]:
        return [self._frame("0", "")]

    def _encode_step(self, symbol: str, changes: list[Change], fill: Fill | None) -> list[bytes]:
        native = self.listings[symbol].native
        inst = self.instruments[symbol]
        tick, lot = inst.tick, inst.lot
        rpt = self._rpt_seq[symbol]
        entries: list[EntryTuple] = []
        if fill is not None:
            taker_buys, px, lots = fill
            price, size = px * tick, lots * lot
            rpt += 1
            self._trade_id += 1
            aggressor = AGGRESSOR_BUY if taker_buys else AGGRESSOR_SELL
            entries.append((NEW, TRADE, native, rpt, price, size, f"T{self._trade_id}", aggressor))
        for is_bid, px, lots, new in changes:
            rpt += 1
            kind = BID if is_bid else OFFER
            if lots:
                entries.append(
                    (NEW if new else CHANGE, kind, native, rpt, px * tick, lots * lot, None, None)
                )
            else:
                entries.append((DELETE, kind, native, rpt, px * tick, None, None, None))
        if fill is not None:
            stats = self._stats[symbol]
            stats.on_trade(price, size)
            self._trades[symbol] += 1
            if self._trades[symbol] % STATS_EVERY_TRADES == 0:
                for kind, value in ((OPEN, stats.open), (HIGH, stats.high), (LOW, stats.low)):
                    rpt += 1
                    entries.append((NEW, kind, native, rpt, value, None, None, None))
                rpt += 1
                entries.append((NEW, VOLUME, native, rpt, None, stats.volume, None, None))
        self._rpt_seq[symbol] = rpt
        return [self._frame("X", incremental_body(entries))]

    def receive(self, data: bytes) -> None:
        """Accept a client message; a 35=V snapshot request queues the 35=W answer.

        Raises:
            DecodeError: `data` is not a valid fxa message.
        """
        msg = decode_message(data)
        if isinstance(msg, FxaSnapshotRequest):
            symbol = self._by_native.get(msg.symbol)
            if symbol is not None:
                self._queue.append(self._encode_snapshot(symbol, requested=True, req_id=msg.req_id))

    def resend(self, data: bytes) -> bytes:
        """The message again with 43=PossDupFlag=Y, 122=OrigSendingTime, the same 34."""
        msg = decode_message(data)
        header = replace(
            msg.header,
            poss_dup=True,
            orig_sending_time_ns=msg.header.sending_time_ns,
            sending_time_ns=self._clock_ns,
        )
        return encode_message(replace(msg, header=header))

    def corrupt(self, data: bytes, rng: Random) -> bytes:
        """Change one byte: the checksum (or the framing) always catches it."""
        i = int(rng.random() * len(data))
        changed = (data[i] + 1 + int(rng.random() * 255)) % 256
        return data[:i] + bytes((changed,)) + data[i + 1 :]
