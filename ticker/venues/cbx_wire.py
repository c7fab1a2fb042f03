"""Codec for the cbx venue: one JSON object per message, Coinbase/Binance style.

Owns the wire layout (field names, decimal-string prices and sizes, ISO-8601 us times)
and the native message dataclasses that the simulator encodes and the adapter decodes,
so the layout is written once. Prices and sizes are held as int nanos. Pure: must not
keep sequence state, books or normalized events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ticker.model.events import PriceLevel
from ticker.venues.decimals import DecimalCache
from ticker.venues.errors import DecodeError
from ticker.venues.timestamps import format_iso_us, parse_iso_us

CbxSide = Literal["buy", "sell"]
CbxChange = tuple[CbxSide, int, int]
"""One l2update change: (side, price nanos, absolute size nanos); size 0 removes."""

_DECIMALS: Final = DecimalCache()
_NANOS: Final = _DECIMALS.memo
_SIDE_NAMES: Final[dict[bool, CbxSide]] = {True: "buy", False: "sell"}
_UNKNOWN: Final = object()
_JSON: Final = json.JSONDecoder()
# Set by JSONDecoder.__init__ (the C scanner), though typeshed does not declare it.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _JSON.scan_once  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CbxSnapshot:
    """Full book of one product; `sequence` is the last product sequence it includes."""

    product_id: str
    sequence: int
    time_ns: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]


@dataclass(frozen=True, slots=True)
class CbxL2Update:
    """Absolute sizes of changed levels; takes the next product sequence."""

    product_id: str
    sequence: int
    time_ns: int
    changes: tuple[CbxChange, ...]


@dataclass(frozen=True, slots=True)
class CbxMatch:
    """A trade; takes the next product sequence.

    As on Coinbase, `side` is the MAKER's side: "sell" means a buyer lifted the offer.
    """

    product_id: str
    sequence: int
    time_ns: int
    trade_id: int
    side: CbxSide
    price: int
    size: int


@dataclass(frozen=True, slots=True)
class CbxTicker:
    """Rolling statistics after a trade; takes the next product sequence."""

    product_id: str
    sequence: int
    time_ns: int
    price: int
    open_24h: int
    high_24h: int
    low_24h: int
    volume_24h: int


@dataclass(frozen=True, slots=True)
class CbxHeartbeat:
    """Liveness for one product; carries its current sequence without taking one."""

    product_id: str
    sequence: int
    time_ns: int
    last_trade_id: int


CbxMessage = CbxSnapshot | CbxL2Update | CbxMatch | CbxTicker | CbxHeartbeat


def _token(text: str) -> str:
    # Strings are spliced into JSON unescaped, so only plain tokens are allowed.
    if not (text.isascii() and text.replace("-", "").replace("/", "").isalnum()):
        raise ValueError(f"cbx string field must be a plain token: {text!r}")
    return text


# ---------------------------------------------------------------- encoding
# The encode_* functions are the layout; `encode_message` validates and calls them.
# They trust `product_id` to be a plain token (letters, digits, "-", "/").


def _head(kind: str, product_id: str, sequence: int, time_ns: int) -> str:
    return (
        f'{{"type":"{kind}","product_id":"{product_id}","sequence":{sequence},'
        f'"time":"{format_iso_us(time_ns)}"'
    )


def encode_l2update(
    product_id: str, sequence: int, time_ns: int, changes: Sequence[tuple[bool, int, int]]
) -> bytes:
    """An l2update; `changes` are (is bid, price nanos, absolute size nanos)."""
    text = _DECIMALS.text
    body = ",".join(
        [f'["{"buy" if is_bid else "sell"}","{text(p)}","{text(s)}"]' for is_bid, p, s in changes]
    )
    return f'{_head("l2update", product_id, sequence, time_ns)},"changes":[{body}]}}'.encode()


def encode_match(
    product_id: str,
    sequence: int,
    time_ns: int,
    trade_id: int,
    maker_side: CbxSide,
    price: int,
    size: int,
) -> bytes:
    """A match; `maker_side` is the resting order's side, as on Coinbase."""
    text = _DECIMALS.text
    return (
        f'{_head("match", product_id, sequence, time_ns)},"trade_id":{trade_id},'
        f'"side":"{maker_side}","price":"{text(price)}","size":"{text(size)}"}}'
    ).encode()


def encode_snapshot(
    product_id: str,
    sequence: int,
    time_ns: int,
    bids: Sequence[PriceLevel],
    asks: Sequence[PriceLevel],
) -> bytes:
    """A snapshot; bids and asks best first."""
    text = _DECIMALS.text
    bid_text = ",".join([f'["{text(p)}","{text(s)}"]' for p, s in bids])
    ask_text = ",".join([f'["{text(p)}","{text(s)}"]' for p, s in asks])
    head = _head("snapshot", product_id, sequence, time_ns)
    return f'{head},"bids":[{bid_text}],"asks":[{ask_text}]}}'.encode()


def encode_ticker(
    product_id: str,
    sequence: int,
    time_ns: int,
    price: int,
    open_24h: int,
    high_24h: int,
    low_24h: int,
    volume_24h: int,
) -> bytes:
    """A ticker (statistics after a trade)."""
    text = _DECIMALS.text
    return (
        f'{_head("ticker", product_id, sequence, time_ns)},"price":"{text(price)}",'
        f'"open_24h":"{text(open_24h)}","high_24h":"{text(high_24h)}",'
        f'"low_24h":"{text(low_24h)}","volume_24h":"{text(volume_24h)}"}}'
    ).encode()


def encode_heartbeat(product_id: str, sequence: int, time_ns: int, last_trade_id: int) -> bytes:
    """A heartbeat carrying the product's current sequence."""
    head = _head("heartbeat", product_id, sequence, time_ns)
    return f'{head},"last_trade_id":{last_trade_id}}}'.encode()


def _side(side: str) -> CbxSide:
    if side == "buy":
        return "buy"
    if side == "sell":
        return "sell"
    raise ValueError(f"side must be buy or sell: {side!r}")


def encode_message(msg: CbxMessage) -> bytes:
    """Encode one native message as compact JSON (no trailing newline).

    Raises:
        ValueError: a string field that is not a plain token, a bad side.
    """
    product, seq, ts = _token(msg.product_id), int(msg.sequence), msg.time_ns
    if isinstance(msg, CbxL2Update):
        changes = [(_side(side) == "buy", p, s) for side, p, s in msg.changes]
        return encode_l2update(product, seq, ts, changes)
    if isinstance(msg, CbxMatch):
        return encode_match(
            product, seq, ts, int(msg.trade_id), _side(msg.side), msg.price, msg.size
        )
    if isinstance(msg, CbxSnapshot):
        return encode_snapshot(product, seq, ts, msg.bids, msg.asks)
    if isinstance(msg, CbxTicker):
        return encode_ticker(
            product, seq, ts, msg.price, msg.open_24h, msg.high_24h, msg.low_24h, msg.volume_24h
        )
    return encode_heartbeat(product, seq, ts, int(msg.last_trade_id))


# ---------------------------------------------------------------- decoding


def parse_object(data: bytes) -> dict[str, Any]:
    """Parse one message's JSON object, strictly (no trailing data, UTF-8 only).

    Raises:
        DecodeError: not exactly one JSON object.
    """
    try:
        text = data.decode("utf-8")
        # The scanner `raw_decode` calls, without its Python frame: the same grammar.
        obj, end = _SCAN(text, 0)
    except StopIteration as stop:  # what raw_decode turns into "Expecting value"
        raise DecodeError(f"cbx: invalid JSON: Expecting value at char {stop.value}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"cbx: invalid JSON: {exc}") from None
    if end != len(text) or type(obj) is not dict:
        raise DecodeError("cbx: not exactly one JSON object")
    return obj


Fields = tuple[str, str, int, int, Any]
"""(type, product_id, sequence, time ns, payload); the payload by type:
l2update: list of (is bid, price, size); match: (trade_id, maker side, price, size);
snapshot: (bids, asks) lists of (price, size); ticker: (price, open, high, low,
volume); heartbeat: last_trade_id. Prices and sizes in nanos."""


def decode_fields(obj: dict[str, Any]) -> Fields:
    """Validate a parsed message and extract its fields (the adapter's hot path).

    Raises:
        DecodeError: unknown type, missing or ill-typed field, inexact decimal.
    """
    try:
        kind = obj["type"]
        product = obj["product_id"]
        seq = obj["sequence"]
        stamp = obj["time"]
        if type(product) is not str or type(seq) is not int or type(stamp) is not str:
            raise ValueError("product_id, sequence or time has the wrong type")
        time_ns = parse_iso_us(stamp)
        nanos = _NANOS  # indexed: a hit is one C dict lookup, no Python call
        payload: Any
        if kind == "l2update":
            payload = []
            for side, p, s in obj["changes"]:
                if side == "buy":
                    payload.append((True, nanos[p], nanos[s]))
                elif side == "sell":
                    payload.append((False, nanos[p], nanos[s]))
                else:
                    raise ValueError(f"side must be buy or sell: {side!r}")
        elif kind == "match":
            trade_id = obj["trade_id"]
            if type(trade_id) is not int:
                raise ValueError("trade_id must be an integer")
            payload = (trade_id, _side(obj["side"]), nanos[obj["price"]], nanos[obj["size"]])
        elif kind == "snapshot":
            payload = (
                [(nanos[p], nanos[s]) for p, s in obj["bids"]],
                [(nanos[p], nanos[s]) for p, s in obj["asks"]],
            )
        elif kind == "ticker":
            payload = (
                nanos[obj["price"]],
                nanos[obj["open_24h"]],
                nanos[obj["high_24h"]],
                nanos[obj["low_24h"]],
                nanos[obj["volume_24h"]],
            )
        elif kind == "heartbeat":
            payload = obj["last_trade_id"]
            if type(payload) is not int:
                raise ValueError("last_trade_id must be an integer")
        else:
            payload = _UNKNOWN
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"cbx: bad {obj.get('type')!r} message: {exc!r}") from None
    if payload is _UNKNOWN:
        raise DecodeError(f"cbx: unknown message type {kind!r}")
    return kind, product, seq, time_ns, payload


def decode_message(data: bytes) -> CbxMessage:
    """Decode one native message into its dataclass.

    Raises:
        DecodeError: invalid JSON, unknown type, missing or ill-typed field.
    """
    kind, product, seq, time_ns, payload = decode_fields(parse_object(data))
    if kind == "l2update":
        changes = tuple([(_SIDE_NAMES[b], p, s) for b, p, s in payload])
        return CbxL2Update(product, seq, time_ns, changes)
    if kind == "match":
        return CbxMatch(product, seq, time_ns, *payload)
    if kind == "snapshot":
        return CbxSnapshot(product, seq, time_ns, tuple(payload[0]), tuple(payload[1]))
    if kind == "ticker":
        return CbxTicker(product, seq, time_ns, *payload)
    return CbxHeartbeat(product, seq, time_ns, payload)
