"""The itx venue simulator: ITCH-style binary records in MoldUDP64-style packets.

Owns what itx sends and when: a new session name with sequence 1 and instrument
sequences restarting at 0 on every connect, one snapshot packet per instrument at
session start and on request, one packet per market event (trade record then level
updates), count-0 heartbeats each second. Must not read clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

from feeds.engine import SimulatorEngine
from feeds.market import Change, Fill
from ticker.model.fixed import scaled_from_nanos
from ticker.venues.itx_wire import (
    BUY,
    END_OF_SESSION,
    MESSAGE_LENGTH,
    PACKET_HEADER,
    PRICE_DECIMALS,
    SELL,
    SIZE_DECIMALS,
    pack_level_update,
    pack_packet,
    pack_snapshot,
    pack_trade,
    session_bytes,
)


class ItxSimulator(SimulatorEngine):
    """Simulated itx venue."""

    venue = "itx"

    def __init__(
        self, seed: int, rate_per_s: float, symbols: Sequence[str] | None = None, **kw: int
    ) -> None:
        super().__init__(seed, rate_per_s, symbols, **kw)
        self._session_no = 0
        self._session = session_bytes("ITX0000000")
        self._next_seq = 1
        self._instrument_seq = dict.fromkeys(self._symbols, 0)
        self._match_id = 0
        self._locate: dict[str, int] = {}
        self._tick: dict[str, int] = {}
        self._lot: dict[str, int] = {}
        for symbol in self._symbols:
            locate = self.listings[symbol].locate
            if locate is None:
                raise ValueError(f"itx listing {symbol} has no locate code")
            self._locate[symbol] = locate
            inst = self.instruments[symbol]
            self._tick[symbol] = scaled_from_nanos(inst.tick, PRICE_DECIMALS)
            self._lot[symbol] = scaled_from_nanos(inst.lot, SIZE_DECIMALS)

    def _packet(self, records: list[bytes]) -> bytes:
        seq = self._next_seq
        self._next_seq += len(records)
        return pack_packet(self._session, seq, records)

    def _start_session(self) -> list[bytes]:
        self._session_no += 1
        self._session = session_bytes(f"ITX{self._session_no:07d}")
        self._next_seq = 1
        self._instrument_seq = dict.fromkeys(self._symbols, 0)
        return [self._encode_snapshot(s, requested=False) for s in self._symbols]

    def _encode_snapshot(self, symbol: str, *, requested: bool) -> bytes:
        book = self._books[symbol]
        tick, lot = self._tick[symbol], self._lot[symbol]
        bids = tuple((p * tick, book.bids[p] * lot) for p in reversed(book.bid_px))
        asks = tuple((p * tick, book.asks[p] * lot) for p in book.ask_px)
        record = pack_snapshot(
            self._locate[symbol], self._instrument_seq[symbol], self._clock_ns, bids, asks
        )
        return self._packet([record])

    def _heartbeats(self) -> list[bytes]:
        return [pack_packet(self._session, self._next_seq, [])]

    def _encode_step(self, symbol: str, changes: list[Change], fill: Fill | None) -> list[bytes]:
        locate = self._locate[symbol]
        tick, lot = self._tick[symbol], self._lot[symbol]
        now = self._clock_ns
        seq = self._instrument_seq[symbol]
        records = []
        if fill is not None:
            taker_buys, px, lots = fill
            seq += 1
            self._match_id += 1
            side = BUY if taker_buys else SELL
            records.append(
                pack_trade(locate, seq, now, side, px * tick, lots * lot, self._match_id)
            )
        for is_bid, px, lots, _ in changes:
            seq += 1
            records.append(
                pack_level_update(locate, seq, now, BUY if is_bid else SELL, px * tick, lots * lot)
            )
        self._instrument_seq[symbol] = seq
        return [self._packet(records)]

    def corrupt(self, data: bytes, rng: Random) -> bytes:
        """Give one record an unknown type (or a heartbeat a phantom record)."""
        session, seq, count = PACKET_HEADER.unpack_from(data)
        if count in (0, END_OF_SESSION):
            return PACKET_HEADER.pack(session, seq, 1) + data[PACKET_HEADER.size :]
        offset = PACKET_HEADER.size
        for _ in range(int(rng.random() * count)):
            offset += MESSAGE_LENGTH.size + MESSAGE_LENGTH.unpack_from(data, offset)[0]
        type_at = offset + MESSAGE_LENGTH.size
        return data[:type_at] + b"?" + data[type_at + 1 :]
