"""Wire encoding of protocol messages: msgpack bytes and the JSON text SSE carries.

Each message is one msgpack array whose first element names its type (layouts in
docs/PROTOCOL.md). Several messages share a frame by plain concatenation, so a batch
costs no re-encoding: `decode_frame` reads them back one after another. The JSON form
renders prices and sizes as exact decimal strings. This module owns the bytes and must
not decide what to send to whom.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import msgpack

from ticker.core.messages import (
    Authenticate,
    ClientCommand,
    DataMessage,
    Error,
    Heartbeat,
    Hello,
    Reset,
    ServerMessage,
    Subscribe,
    Unsubscribe,
)
from ticker.errors import BadMessage, echo
from ticker.model.fixed import FixedPointError, format_nanos, parse_nanos

SNAPSHOT: Final = "s"
DELTA: Final = "d"
HELLO: Final = "h"
HEARTBEAT: Final = "hb"
RESET: Final = "r"
ERROR: Final = "e"
SUBSCRIBE: Final = "sub"
UNSUBSCRIBE: Final = "unsub"
AUTHENTICATE: Final = "auth"

NANOS_FIELDS: Final = frozenset(
    {"bid", "bid_size", "ask", "ask_size", "last", "open", "high", "low", "volume", "change"}
    | {"price", "size"}
)
"""Data fields holding prices or sizes in nanos; the JSON form renders them as decimals."""
BOOK_SIDES: Final = ("bids", "asks")

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
pack_array: Final = _packb
"""msgpack bytes of one array, by the one Packer shared by every encoding here (a Packer
per message would cost more than the packing); for the hub's inlined `encode_data`."""


def encode_data(message: DataMessage) -> bytes:
    """msgpack bytes of a data message: [s|d, topic, seq, offset, ts_us, data]."""
    return _packb(
        [
            SNAPSHOT if message.snapshot else DELTA,
            message.topic,
            message.seq,
            message.offset,
            message.ts_us,
            message.data,
        ]
    )


def encode_server(message: ServerMessage) -> bytes:
    """msgpack bytes of any server-to-client message."""
    if isinstance(message, DataMessage):
        return encode_data(message)
    if isinstance(message, Hello):
        fields: list[Any] = [HELLO, message.version, message.epoch, message.offset]
        fields += [message.heartbeat_s, message.compression, message.zstd_dictionary]
        return _packb(fields)
    if isinstance(message, Heartbeat):
        return _packb([HEARTBEAT, message.epoch, message.offset, message.ts_us])
    if isinstance(message, Reset):
        return _packb([RESET, message.epoch, message.offset, message.reason])
    return _packb([ERROR, message.code, message.message])


def encode_client(command: ClientCommand) -> bytes:
    """msgpack bytes of a client command."""
    if isinstance(command, Subscribe):
        return _packb([SUBSCRIBE, list(command.topics), command.position])
    if isinstance(command, Authenticate):
        return _packb([AUTHENTICATE, command.token])
    return _packb([UNSUBSCRIBE, list(command.topics)])


def _unpack_one(data: bytes) -> list[Any]:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadMessage(f"invalid msgpack: {exc}") from None
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise BadMessage("a message must be a msgpack array starting with its type")
    return obj


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise BadMessage(f"ill-formed {what} message")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _server_from_array(obj: list[Any]) -> ServerMessage:
    """A server message from its array. Elements past the known ones are ignored: fields
    are only ever added at the end, so an older reader still understands a newer server
    (the hello's `zstd_dictionary` came that way)."""
    kind = obj[0]
    if kind in (SNAPSHOT, DELTA):
        _require(len(obj) >= 6, "data")
        _, topic, seq, offset, ts_us, data = obj[:6]
        # `_is_int` inlined (every message a client reads passes here); bool is an int.
        ok = isinstance(topic, str) and isinstance(data, dict)
        ok = ok and isinstance(seq, int) and isinstance(offset, int) and isinstance(ts_us, int)
        ok = ok and not (seq is True or seq is False or offset is True or offset is False)
        _require(ok and not (ts_us is True or ts_us is False), "data")
        return DataMessage(kind == SNAPSHOT, topic, seq, offset, ts_us, data)
    if kind == HELLO:
        _require(len(obj) >= 6 and all(_is_int(v) for v in obj[1:4]), "hello")
        _require(isinstance(obj[4], int | float) and obj[5] in (None, "zstd"), "hello")
        dictionary = obj[6] if len(obj) > 6 else None
        _require(dictionary is None or _is_int(dictionary), "hello")
        return Hello(obj[1], obj[2], obj[3], obj[4], obj[5], dictionary)
    if kind == HEARTBEAT:
        _require(len(obj) >= 4 and all(_is_int(v) for v in obj[1:4]), "heartbeat")
        return Heartbeat(obj[1], obj[2], obj[3])
    if kind == RESET:
        ok = len(obj) >= 4 and _is_int(obj[1]) and _is_int(obj[2]) and isinstance(obj[3], str)
        _require(ok, "reset")
        return Reset(obj[1], obj[2], obj[3])
    if kind == ERROR:
        _require(len(obj) >= 3 and _is_int(obj[1]) and isinstance(obj[2], str), "error")
        return Error(obj[1], obj[2])
    raise BadMessage(f"unknown server message type {echo(kind)}")


def decode_server(data: bytes) -> ServerMessage:
    """Decode one server message.

    Raises:
        BadMessage: not valid msgpack, or not a well-formed server message.
    """
    return _server_from_array(_unpack_one(data))


def decode_frame(frame: bytes) -> list[ServerMessage]:
    """Decode every server message concatenated in one frame.

    Raises:
        BadMessage: any message in the frame is invalid or the frame ends mid-message.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(frame) + 1)
    unpacker.feed(frame)
    messages: list[ServerMessage] = []
    consumed = 0  # tell() after the last whole message; the Unpacker reads ahead
    try:
        for obj in unpacker:
            consumed = unpacker.tell()
            if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
                raise BadMessage("a message must be a msgpack array starting with its type")
            messages.append(_server_from_array(obj))
    except BadMessage:
        raise
    except Exception as exc:
        raise BadMessage(f"invalid msgpack in frame: {exc}") from None
    if consumed != len(frame):
        raise BadMessage("frame ends in the middle of a message")
    return messages


def _topics(value: object) -> tuple[str, ...]:
    _require(isinstance(value, list) and all(isinstance(t, str) for t in value), "topics")
    assert isinstance(value, list)
    return tuple(value)


def decode_client(data: bytes) -> ClientCommand:
    """Decode one client command (untrusted input: checked field by field).

    Raises:
        BadMessage: not valid msgpack, unknown command, or wrong field types.
    """
    obj = _unpack_one(data)
    kind = obj[0]
    if kind == SUBSCRIBE:
        _require(len(obj) in (2, 3), "subscribe")
        position = obj[2] if len(obj) == 3 else None
        _require(position is None or isinstance(position, str), "subscribe")
        return Subscribe(_topics(obj[1]), position)
    if kind == UNSUBSCRIBE:
        _require(len(obj) == 2, "unsubscribe")
        return Unsubscribe(_topics(obj[1]))
    if kind == AUTHENTICATE:
        _require(len(obj) == 2 and isinstance(obj[1], str), "auth")
        return Authenticate(obj[1])
    raise BadMessage(f"unknown command {echo(kind)}; expected 'sub', 'unsub' or 'auth'")


# -- JSON (SSE) ---------------------------------------------------------------------

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_quote: Callable[[str], str] = json.encoder.encode_basestring
"""The C string encoder `_dumps` itself uses for `ensure_ascii=False`: same bytes."""


def json_data(data: dict[str, Any]) -> dict[str, Any]:
    """Message data in the JSON (SSE) form: prices and sizes as exact decimal strings."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in BOOK_SIDES:
            out[name] = [[format_nanos(p), format_nanos(s)] for p, s in value]
        elif name in NANOS_FIELDS and value is not None:
            out[name] = format_nanos(value)
        else:
            out[name] = value
    return out


def _render_json_general(message: DataMessage) -> str:
    """`render_json` through the json module: any value it can encode (the reference)."""
    return _dumps(
        {
            "topic": message.topic,
            "seq": message.seq,
            "offset": message.offset,
            "ts": message.ts_us,
            "data": json_data(message.data),
        }
    )


_DECIMALS_MAX: Final = 16_384
_decimals: dict[int, str] = {}
"""Recently rendered nanos -> '"decimal"' (prices and sizes repeat from message to
message). Bounded: emptied whenever it reaches `_DECIMALS_MAX` entries."""
# Each data field's JSON key, after the comma that separates it from the one before (the
# first one's is dropped at the end), by how its value renders. Any other name is plain.
_NANOS_KEYS: Final = {name: f",{_quote(name)}:" for name in NANOS_FIELDS}
_SIDE_KEYS: Final = {name: f",{_quote(name)}:" for name in BOOK_SIDES}
_EMPTY_SIDES: Final = {name: f",{_quote(name)}:[]" for name in BOOK_SIDES}
_PLAIN_KEYS: Final = {
    name: f",{_quote(name)}:" for name in ("side", "id", "venue", "venue_ts", "checksum")
}
_HEADS_MAX: Final = 4096
_heads: dict[str, str] = {}
"""topic -> the JSON text up to its seq; bounded like `_decimals`."""


# A one-level book delta's data around its level, by side (the text before the level and
# the text after it), and a one-field delta's before its value.
_ONE_BID: Final = ('"data":{"bids":[[', ']],"asks":[]}}')
_ONE_ASK: Final = ('"data":{"bids":[],"asks":[[', "]]}}")
_NANOS_DATA: Final = {name: f'"data":{{{_quote(name)}:' for name in NANOS_FIELDS}
_TRADE_KEYS: Final = ("price", "size", "side", "id", "venue", "venue_ts")
_TRADE_TYPES: Final = (int, int, str, str, str)
_last_tail: tuple[tuple[object, ...], str] = ((), "")
"""What the last one-level book delta or one-field delta was made of (its ts and values,
exact ints, and its side's or field's text) -> its text from `,"ts":` on. One entry:
the pair's venue message follows its composite's; replaced, never grown."""


class _Unusual(Exception):
    """A value the fast renderer does not handle: render through the json module."""


def _decimal(value: int) -> str:
    """`format_nanos(value)` as a JSON string, for an exact `int`, kept in `_decimals`.

    Called when `_decimals` has no text for `value` (callers look it up first): a third
    of the messages have a value seen for the first time (sizes seldom repeat), so the
    common cases slice the digits once.
    """
    if type(value) is not int:  # 2.0 would format, and find 2's entry later
        raise _Unusual
    if value >= 1_000_000_000:  # most prices and sizes: whole digits, then 9 fractional
        digits = str(value)
        frac = digits[-9:].rstrip("0")
        text = f'"{digits[:-9]}.{frac}"' if frac else f'"{digits[:-9]}"'
    elif value > 0:  # under one: the 9 fractional digits with their leading zeros
        text = f'"0.{str(value + 1_000_000_000)[1:].rstrip("0")}"'
    else:
        digits = str(-value)
        if len(digits) > 9:
            whole, frac = digits[:-9], digits[-9:].rstrip("0")
        else:
            whole, frac = "0", digits.rjust(9, "0").rstrip("0")
        sign = "-" if value else ""
        text = f'"{sign}{whole}.{frac}"' if frac else f'"{sign}{whole}"'
    if len(_decimals) >= _DECIMALS_MAX:
        _decimals.clear()
    _decimals[value] = text
    return text


def _scalar(value: object) -> str:
    """JSON of a plain value as `_dumps` writes it (str, int, None, bool)."""
    if type(value) is str:
        return _quote(value)
    if type(value) is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    raise _Unusual


def render_json(message: DataMessage) -> str:
    """The JSON text of a data message as SSE carries it (prices as decimal strings).

    Built as text: the same characters as `json` writes for these values (pinned by
    tests against `_render_json_general`), at a fraction of the cost. A value of any
    other type, or a shape it does not expect, goes through the json module, which
    renders it or raises as the reference does.
    """
    global _last_tail
    _, topic, seq, offset, ts_us, data = message
    if type(topic) is not str or type(seq) is not int or type(offset) is not int:
        return _render_json_general(message)
    if type(ts_us) is not int:
        return _render_json_general(message)
    head = _heads.get(topic)
    if head is None:
        if len(_heads) >= _HEADS_MAX:
            _heads.clear()
        head = _heads[topic] = f'{{"topic":{_quote(topic)},"seq":'
    decimals = _decimals  # hits inline, misses through `_decimal`: most values repeat
    try:
        # Most messages are a book delta of one level (~60%), {"bids": [], "asks": [[p,
        # s]]} or the other way round, or a delta of one price or size (~20%), and come
        # in pairs (the composite's, then its venue's, same ts and most often the same
        # data): each has a path of its own, and the text after the offset is keyed by
        # what it is made of (exact ints only), so the pair's second takes the first's.
        size_of = len(data)
        if size_of == 2:
            first, second = data  # the keys, in order: it decides the text's order
            if first == "bids" and second == "asks":
                bids, asks = data[first], data[second]
                if type(bids) is list and type(asks) is list:
                    if not bids and len(asks) == 1:
                        level, around = asks[0], _ONE_ASK
                    elif not asks and len(bids) == 1:
                        level, around = bids[0], _ONE_BID
                    else:
                        level, around = None, _ONE_BID
                    if type(level) is list:
                        price, size = level
                        if type(price) is not int or type(size) is not int:
                            raise _Unusual  # before any lookup: 2.0 would find 2's text
                        made_of: tuple[object, ...] = (ts_us, price, size, around)
                        last = _last_tail  # read once: the tuple is replaced, not changed
                        if last[0] == made_of:
                            tail = last[1]
                        else:
                            price_text = decimals.get(price) or _decimal(price)
                            size_text = decimals.get(size) or _decimal(size)
                            tail = f',"ts":{ts_us},{around[0]}{price_text},{size_text}{around[1]}'
                            _last_tail = (made_of, tail)
                        return f'{head}{seq},"offset":{offset}{tail}'
        elif size_of == 1:
            (name,) = data
            value = data[name]
            opening = _NANOS_DATA.get(name)
            if opening is not None and type(value) is int:
                made_of = (ts_us, value, opening)
                last = _last_tail
                if last[0] == made_of:
                    tail = last[1]
                else:
                    tail = f',"ts":{ts_us},{opening}{decimals.get(value) or _decimal(value)}}}}}'
                    _last_tail = (made_of, tail)
                return f'{head}{seq},"offset":{offset}{tail}'
        elif size_of == 6 and tuple(data) == _TRADE_KEYS:  # a trade: one f-string
            price, size, side, trade_id, venue, venue_ts = data.values()
            types = (type(price), type(size), type(side), type(trade_id), type(venue))
            if types == _TRADE_TYPES and type(venue_ts) is int:
                price_text = decimals.get(price) or _decimal(price)
                size_text = decimals.get(size) or _decimal(size)
                return (
                    f'{head}{seq},"offset":{offset},"ts":{ts_us},"data":{{"price":'
                    f'{price_text},"size":{size_text},"side":{_quote(side)},"id":'
                    f'{_quote(trade_id)},"venue":{_quote(venue)},"venue_ts":{venue_ts}}}}}'
                )
        # Otherwise one str grows field by field (CPython extends a local str in place;
        # no list and join), a field's key text is looked up with its leading comma, and
        # a side of one level or none is written without a loop.
        text = ""
        for name, value in data.items():
            key = _NANOS_KEYS.get(name)
            if key is not None:
                if type(value) is int:
                    text += key + (decimals.get(value) or _decimal(value))
                elif value is None:
                    text += key + "null"
                else:
                    raise _Unusual
                continue
            key = _SIDE_KEYS.get(name)
            if key is not None:
                if type(value) is not list:
                    raise _Unusual
                if not value:  # a book delta's untouched side
                    text += _EMPTY_SIDES[name]
                elif len(value) == 1:  # a book delta's one changed level
                    price, size = value[0]
                    p = decimals.get(price) if type(price) is int else None
                    s = decimals.get(size) if type(size) is int else None
                    text += f"{key}[[{p or _decimal(price)},{s or _decimal(size)}]]"
                else:
                    levels = []
                    for price, size in value:
                        p = decimals.get(price) if type(price) is int else None
                        s = decimals.get(size) if type(size) is int else None
                        levels.append(f"[{p or _decimal(price)},{s or _decimal(size)}]")
                    text += f"{key}[{','.join(levels)}]"
                continue
            key = _PLAIN_KEYS.get(name)
            if key is None:
                if type(name) is not str:
                    raise _Unusual
                key = f",{_quote(name)}:"
            if type(value) is str:
                text += key + _quote(value)
            elif type(value) is int:
                text += f"{key}{value}"
            else:
                text += key + _scalar(value)
    except (_Unusual, TypeError, ValueError):  # the json module renders it, or raises
        return _render_json_general(message)
    return f'{head}{seq},"offset":{offset},"ts":{ts_us},"data":{{{text[1:]}}}}}'


def _data_from_json(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in BOOK_SIDES:
            out[name] = [[parse_nanos(p), parse_nanos(s)] for p, s in value]
        elif name in NANOS_FIELDS and value is not None:
            out[name] = parse_nanos(value)
        else:
            out[name] = value
    return out


def parse_json(text: str, *, snapshot: bool) -> DataMessage:
    """Parse the JSON form back into a data message (the SSE event name gives `snapshot`).

    Raises:
        BadMessage: not JSON, or not a well-formed data message.
    """
    try:
        obj = json.loads(text)
        message = DataMessage(
            snapshot,
            obj["topic"],
            obj["seq"],
            obj["offset"],
            obj["ts"],
            _data_from_json(obj["data"]),
        )
    except (ValueError, KeyError, TypeError, FixedPointError) as exc:
        raise BadMessage(f"ill-formed JSON data message: {exc}") from None
    return message
