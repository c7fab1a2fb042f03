"""Hand-made native messages for adapter tests, one builder per venue.

Every builder speaks in canonical symbols, nanos and per-symbol sequence numbers, and
keeps whatever session state its venue needs (fxa MsgSeqNum, itx packet sequence).
"""

from __future__ import annotations

from ticker.model.events import PriceLevel
from ticker.venues import cbx_wire, fxa_messages, fxa_wire, itx_wire
from ticker.venues.reference import venue_listings

T0 = 1_704_067_200_000_000_000


class CbxBuilder:
    venue = "cbx"

    def __init__(self) -> None:
        self.native = {item.symbol: item.native for item in venue_listings("cbx")}

    def snapshot(
        self, symbol: str, seq: int, bids: list[PriceLevel], asks: list[PriceLevel]
    ) -> bytes:
        return cbx_wire.encode_snapshot(self.native[symbol], seq, T0, bids, asks)

    def update(self, symbol: str, seq: int, is_bid: bool, price: int, size: int) -> bytes:
        return cbx_wire.encode_l2update(self.native[symbol], seq, T0, [(is_bid, price, size)])

    def updates(self, symbol: str, seq: int, changes: list[tuple[bool, int, int]]) -> list[bytes]:
        return [cbx_wire.encode_l2update(self.native[symbol], seq, T0, changes)]

    def trade(self, symbol: str, seq: int, taker_buys: bool, price: int, size: int) -> bytes:
        maker: cbx_wire.CbxSide = "sell" if taker_buys else "buy"
        return cbx_wire.encode_match(self.native[symbol], seq, T0, seq, maker, price, size)


class FxaBuilder:
    venue = "fxa"

    def __init__(self) -> None:
        self.native = {item.symbol: item.native for item in venue_listings("fxa")}
        self.seq = 0

    def header(self) -> fxa_messages.FxaHeader:
        self.seq += 1
        return fxa_messages.FxaHeader(self.seq, "FXA", "TICKER", T0)

    def logon(self) -> bytes:
        self.seq = 0
        return fxa_wire.encode_message(fxa_messages.FxaLogon(self.header(), 1, True))

    def snapshot(
        self, symbol: str, seq: int, bids: list[PriceLevel], asks: list[PriceLevel]
    ) -> bytes:
        entries = [(fxa_messages.BID, p, s) for p, s in bids] + [
            (fxa_messages.OFFER, p, s) for p, s in asks
        ]
        msg = fxa_messages.FxaSnapshot(
            self.header(), None, self.native[symbol], seq, tuple(entries)
        )
        return fxa_wire.encode_message(msg)

    def entry(
        self, symbol: str, seq: int, is_bid: bool, price: int, size: int
    ) -> fxa_messages.FxaEntry:
        action = fxa_messages.DELETE if size == 0 else fxa_messages.CHANGE
        kind = fxa_messages.BID if is_bid else fxa_messages.OFFER
        return fxa_messages.FxaEntry(action, kind, self.native[symbol], seq, price, size or None)

    def update(self, symbol: str, seq: int, is_bid: bool, price: int, size: int) -> bytes:
        entry = self.entry(symbol, seq, is_bid, price, size)
        return fxa_wire.encode_message(fxa_messages.FxaIncremental(self.header(), (entry,)))

    def updates(self, symbol: str, seq: int, changes: list[tuple[bool, int, int]]) -> list[bytes]:
        entries = tuple(self.entry(symbol, seq + i, *c) for i, c in enumerate(changes))
        return [fxa_wire.encode_message(fxa_messages.FxaIncremental(self.header(), entries))]

    def trade(self, symbol: str, seq: int, taker_buys: bool, price: int, size: int) -> bytes:
        aggressor = fxa_messages.AGGRESSOR_BUY if taker_buys else fxa_messages.AGGRESSOR_SELL
        entry = fxa_messages.FxaEntry(
            fxa_messages.NEW,
            fxa_messages.TRADE,
            self.native[symbol],
            seq,
            price,
            size,
            f"T{seq}",
            aggressor,
        )
        return fxa_wire.encode_message(fxa_messages.FxaIncremental(self.header(), (entry,)))


class ItxBuilder:
    venue = "itx"

    def __init__(self, session: str = "TEST000001") -> None:
        self.locate = {item.symbol: item.locate or 0 for item in venue_listings("itx")}
        self.session = itx_wire.session_bytes(session)
        self.seq = 1

    def packet(self, records: list[bytes]) -> bytes:
        data = itx_wire.pack_packet(self.session, self.seq, records)
        self.seq += len(records)
        return data

    def snapshot(
        self, symbol: str, seq: int, bids: list[PriceLevel], asks: list[PriceLevel]
    ) -> bytes:
        record = itx_wire.pack_snapshot(
            self.locate[symbol],
            seq,
            T0,
            tuple((p // 10, s // 1000) for p, s in bids),
            tuple((p // 10, s // 1000) for p, s in asks),
        )
        return self.packet([record])

    def record(self, symbol: str, seq: int, is_bid: bool, price: int, size: int) -> bytes:
        side = itx_wire.BUY if is_bid else itx_wire.SELL
        return itx_wire.pack_level_update(
            self.locate[symbol], seq, T0, side, price // 10, size // 1000
        )

    def update(self, symbol: str, seq: int, is_bid: bool, price: int, size: int) -> bytes:
        return self.packet([self.record(symbol, seq, is_bid, price, size)])

    def updates(self, symbol: str, seq: int, changes: list[tuple[bool, int, int]]) -> list[bytes]:
        return [self.packet([self.record(symbol, seq + i, *c) for i, c in enumerate(changes)])]

    def trade(self, symbol: str, seq: int, taker_buys: bool, price: int, size: int) -> bytes:
        side = itx_wire.BUY if taker_buys else itx_wire.SELL
        record = itx_wire.pack_trade(
            self.locate[symbol], seq, T0, side, price // 10, size // 1000, seq
        )
        return self.packet([record])


Builder = CbxBuilder | FxaBuilder | ItxBuilder


def builder(venue: str) -> Builder:
    if venue == "cbx":
        return CbxBuilder()
    if venue == "fxa":
        return FxaBuilder()
    return ItxBuilder()
