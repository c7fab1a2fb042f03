"""Codec for the itx venue: ITCH-style binary records in MoldUDP64-style packets.

Owns the byte layout: the packet header (10-byte ASCII session, u64 sequence of the
first message, u16 count; count 0 is a heartbeat carrying the next sequence, 0xFFFF
ends the session), u16 length prefixes, and the big-endian records as precompiled
`struct.Struct`s, shared by simulator and adapter. Prices carry PRICE_DECIMALS implied
decimals, sizes SIZE_DECIMALS. Pure: must not keep session or sequence state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final, Literal

from ticker.venues.errors import DecodeError

PRICE_DECIMALS: Final = 8
SIZE_DECIMALS: Final = 6
SESSION_BYTES: Final = 10
END_OF_SESSION: Final = 0xFFFF
MAX_MESSAGE_BYTES: Final = 0xFFFF

PACKET_HEADER: Final = struct.Struct(">10sQH")
"""session, sequence number of the first message, message count."""
MESSAGE_LENGTH: Final = struct.Struct(">H")
SNAPSHOT: Final = struct.Struct(">cHIQHH")
"""'S', locate, instrument seq (last included), ts ns, bid count, ask count; then levels."""
LEVEL: Final = struct.Struct(">qq")
"""price, size (implied decimals); snapshot levels, bids best first then asks best first."""
LEVEL_UPDATE: Final = struct.Struct(">cHIQcqq")
"""'U', locate, instrument seq, ts ns, side b'B'|b'S', price, absolute size (0 removes)."""
TRADE: Final = struct.Struct(">cHIQcqqQ")
"""'P', locate, instrument seq, ts ns, aggressor side b'B'|b'S', price, size, match id."""

SNAPSHOT_TYPE: Final = b"S"
LEVEL_UPDATE_TYPE: Final = b"U"
TRADE_TYPE: Final = b"P"
BUY: Final = b"B"
SELL: Final = b"S"

ItxSide = Literal["B", "S"]
ScaledLevel = tuple[int, int]
"""(price, size) as the venue's scaled integers."""


@dataclass(frozen=True, slots=True)
class ItxSnapshot:
    """Book of one instrument; `seq` is the last instrument sequence it includes."""

    locate: int
    seq: int
    ts_ns: int
    bids: tuple[ScaledLevel, ...]
    asks: tuple[ScaledLevel, ...]


@dataclass(frozen=True, slots=True)
class ItxLevelUpdate:
    """Absolute size at one price ("B" bid, "S" ask); takes the next instrument seq."""

    locate: int
    seq: int
    ts_ns: int
    side: ItxSide
    price: int
    size: int


@dataclass(frozen=True, slots=True)
class ItxTrade:
    """An execution; `side` is the aggressor's; takes the next instrument seq."""

    locate: int
    seq: int
    ts_ns: int
    side: ItxSide
    price: int
    size: int
    match_id: int


ItxMessage = ItxSnapshot | ItxLevelUpdate | ItxTrade


@dataclass(frozen=True, slots=True)
class ItxPacket:
    """One MoldUDP64-style packet: no messages is a heartbeat carrying the next sequence."""

    session: str
    sequence: int
    messages: tuple[ItxMessage, ...]
    end_of_session: bool = False


def session_bytes(session: str) -> bytes:
    """The 10-byte wire form of a session name (printable ASCII, space padded).

    Raises:
        ValueError: longer than 10 characters or not printable ASCII.
    """
    raw = session.encode("ascii").ljust(SESSION_BYTES)
    if len(raw) != SESSION_BYTES or not raw.isascii() or not session.isprintable():
        raise ValueError(f"itx session must be <= 10 printable ASCII chars: {session!r}")
    return raw


def pack_snapshot(
    locate: int, seq: int, ts_ns: int, bids: tuple[ScaledLevel, ...], asks: tuple[ScaledLevel, ...]
) -> bytes:
    """One snapshot record (without its length prefix)."""
    pack = LEVEL.pack
    return SNAPSHOT.pack(SNAPSHOT_TYPE, locate, seq, ts_ns, len(bids), len(asks)) + b"".join(
        [pack(p, s) for p, s in bids] + [pack(p, s) for p, s in asks]
    )


def pack_level_update(
    locate: int, seq: int, ts_ns: int, side: bytes, price: int, size: int
) -> bytes:
    """One level-update record (without its length prefix)."""
    return LEVEL_UPDATE.pack(LEVEL_UPDATE_TYPE, locate, seq, ts_ns, side, price, size)


def pack_trade(
    locate: int, seq: int, ts_ns: int, side: bytes, price: int, size: int, match_id: int
) -> bytes:
    """One trade record (without its length prefix)."""
    return TRADE.pack(TRADE_TYPE, locate, seq, ts_ns, side, price, size, match_id)


def pack_packet(session: bytes, sequence: int, records: list[bytes], *, end: bool = False) -> bytes:
    """Frame records into a packet: header, then each record behind a u16 length.

    Raises:
        ValueError: a record longer than 65535 bytes, or too many records.
    """
    count = END_OF_SESSION if end else len(records)
    if end and records:
        raise ValueError("an end-of-session packet carries no messages")
    if len(records) >= END_OF_SESSION:
        raise ValueError("too many records for one packet")
    length = MESSAGE_LENGTH.pack
    body = b"".join([length(len(r)) + r for r in records])
    return PACKET_HEADER.pack(session, sequence, count) + body


def _side(side: str) -> bytes:
    if side == "B":
        return BUY
    if side == "S":
        return SELL
    raise ValueError(f"itx side must be 'B' or 'S': {side!r}")


def encode_record(msg: ItxMessage) -> bytes:
    """One native message as its record bytes (without length prefix).

    Raises:
        struct.error: a field out of its wire range.
        ValueError: a side other than "B"/"S".
    """
    if isinstance(msg, ItxLevelUpdate):
        return pack_level_update(
            msg.locate, msg.seq, msg.ts_ns, _side(msg.side), msg.price, msg.size
        )
    if isinstance(msg, ItxTrade):
        return pack_trade(
            msg.locate, msg.seq, msg.ts_ns, _side(msg.side), msg.price, msg.size, msg.match_id
        )
    return pack_snapshot(msg.locate, msg.seq, msg.ts_ns, msg.bids, msg.asks)


def encode_packet(packet: ItxPacket) -> bytes:
    """Encode a whole packet.

    Raises:
        struct.error: a field out of its wire range.
        ValueError: a bad session name or side.
    """
    return pack_packet(
        session_bytes(packet.session),
        packet.sequence,
        [encode_record(m) for m in packet.messages],
        end=packet.end_of_session,
    )


RawRecord = tuple[Any, ...]
"""A record as `struct` unpacks it; snapshots end with a tuple of (price, size) levels."""


_HEADER_SIZE = PACKET_HEADER.size
_unpack_header = PACKET_HEADER.unpack_from
_unpack_update = LEVEL_UPDATE.unpack_from
_unpack_trade = TRADE.unpack_from
_UPDATE = LEVEL_UPDATE_TYPE[0]
_TRADE = TRADE_TYPE[0]
_SNAPSHOT = SNAPSHOT_TYPE[0]
_UPDATE_SIZE = LEVEL_UPDATE.size
_TRADE_SIZE = TRADE.size


def unpack_packet(data: bytes) -> tuple[bytes, int, int, list[RawRecord]]:
    """Validate a whole packet and unpack every record, before anything is applied.

    Returns:
        (session bytes, sequence, count, records); count is END_OF_SESSION or the
        number of records. A snapshot record is unpacked as
        (b"S", locate, seq, ts, bid count, ask count, levels).

    Raises:
        DecodeError: short header, truncated or overlong record, unknown record type,
            record length not matching its type, trailing bytes.
    """
    size = len(data)
    if size < _HEADER_SIZE:
        raise DecodeError("itx: packet shorter than its header")
    session, sequence, count = _unpack_header(data)
    offset = _HEADER_SIZE
    records: list[RawRecord] = []
    if count != END_OF_SESSION:
        append = records.append
        for _ in range(count):
            start = offset + 2
            if start >= size:
                raise DecodeError("itx: truncated packet (length prefix)")
            length = data[offset] << 8 | data[offset + 1]
            offset = start + length
            if offset > size:
                raise DecodeError("itx: truncated packet (record)")
            kind = data[start]
            if kind == _UPDATE and length == _UPDATE_SIZE:
                append(_unpack_update(data, start))
            elif kind == _TRADE and length == _TRADE_SIZE:
                append(_unpack_trade(data, start))
            elif kind == _SNAPSHOT and length >= SNAPSHOT.size:
                head = SNAPSHOT.unpack_from(data, start)
                if length != SNAPSHOT.size + LEVEL.size * (head[4] + head[5]):
                    raise DecodeError("itx: snapshot length does not match its level counts")
                levels = tuple(LEVEL.iter_unpack(data[start + SNAPSHOT.size : offset]))
                append((*head, levels))
            else:
                raise DecodeError(f"itx: unknown record type {kind} or bad length {length}")
    if offset != size:
        raise DecodeError("itx: trailing bytes after the last record")
    return session, sequence, count, records


def _decode_side(raw: bytes) -> ItxSide:
    if raw == BUY:
        return "B"
    if raw == SELL:
        return "S"
    raise DecodeError(f"itx: bad side {raw!r}")


def decode_packet(data: bytes) -> ItxPacket:
    """Decode a whole packet into native dataclasses.

    Raises:
        DecodeError: see `unpack_packet`; also a bad side or a non-ASCII session.
    """
    session, sequence, count, records = unpack_packet(data)
    if not session.isascii():
        raise DecodeError("itx: session is not ASCII")
    messages: list[ItxMessage] = []
    for rec in records:
        kind = rec[0]
        if kind == LEVEL_UPDATE_TYPE:
            _, locate, seq, ts, side, price, size_ = rec
            messages.append(ItxLevelUpdate(locate, seq, ts, _decode_side(side), price, size_))
        elif kind == TRADE_TYPE:
            _, locate, seq, ts, side, price, size_, match = rec
            messages.append(ItxTrade(locate, seq, ts, _decode_side(side), price, size_, match))
        else:
            _, locate, seq, ts, n_bids, _, levels = rec
            messages.append(ItxSnapshot(locate, seq, ts, levels[:n_bids], levels[n_bids:]))
    return ItxPacket(
        session.decode("ascii").rstrip(" "),
        sequence,
        tuple(messages),
        end_of_session=count == END_OF_SESSION,
    )
