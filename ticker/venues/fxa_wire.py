"""Codec for the fxa venue: FIX 4.4 tag=value messages with SOH delimiters.

Owns the framing (8=FIX.4.4, 9=BodyLength, 10=CheckSum mod 256, validated), the
message layouts (A logon, 5 logout, 0 heartbeat, V request, W full refresh, X
incremental refresh) and their native dataclasses, shared by simulator and adapter.
The adapter's hot path uses the tuple scanners; dataclasses are built on top of them.
Pure: must not keep session or sequence state.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from ticker.venues.decimals import DecimalCache
from ticker.venues.errors import DecodeError
from ticker.venues.fxa_messages import (
    BID,
    CHANGE,
    DELETE,
    ENTRY_TYPES,
    NEW,
    OFFER,
    SOH,
    EntryTuple,
    FxaEntry,
    FxaHeader,
    FxaHeartbeat,
    FxaIncremental,
    FxaLevel,
    FxaLogon,
    FxaLogout,
    FxaMessage,
    FxaSnapshot,
    FxaSnapshotRequest,
)
from ticker.venues.timestamps import format_fix_ms, parse_fix_ms

_PREFIX: Final = b"8=FIX.4.4\x019="
_DECIMALS: Final = DecimalCache()
_NANOS: Final = _DECIMALS.memo


def checksum(data: bytes) -> int:
    """FIX CheckSum: the sum of all bytes mod 256.

    zlib.adler32's low half is 1 + sum(bytes) mod 65521, exact for chunks of at most
    257 bytes, so summing it per 256-byte chunk is a C loop instead of a Python one.
    """
    if len(data) <= 257:
        return ((zlib.adler32(data) & 0xFFFF) - 1) % 256
    total = 0
    for start in range(0, len(data), 256):
        total += (zlib.adler32(data[start : start + 256]) & 0xFFFF) - 1
    return total % 256


# ---------------------------------------------------------------- encoding


def _value(text: str) -> str:
    if not text or SOH in text or not text.isascii():
        raise ValueError(f"fxa field value must be non-empty ASCII without SOH: {text!r}")
    return text


# encode_frame and the *_body functions are the layout; encode_message validates the
# strings of a dataclass and calls them. They trust strings to be ASCII without SOH.


def encode_frame(
    msg_type: str,
    seq: int,
    sender: str,
    target: str,
    sending_time_ns: int,
    body: str,
    poss_dup: bool = False,
    orig_sending_time_ns: int | None = None,
) -> bytes:
    """A whole message: 8, 9, the header fields, `body` (ending in SOH or empty), 10."""
    head = (
        f"35={msg_type}\x0149={sender}\x0156={target}\x0134={seq}"
        f"\x0152={format_fix_ms(sending_time_ns)}\x01"
    )
    if poss_dup:
        orig = orig_sending_time_ns
        head += "43=Y\x01" if orig is None else f"43=Y\x01122={format_fix_ms(orig)}\x01"
    full = head + body
    raw = f"8=FIX.4.4\x019={len(full)}\x01{full}".encode()
    return raw + b"10=%03d\x01" % checksum(raw)


def incremental_body(entries: Sequence[EntryTuple]) -> str:
    """The body of a 35=X: 268 and its groups."""
    text = _DECIMALS.text
    parts = [f"268={len(entries)}\x01"]
    for action, kind, symbol, rpt_seq, price, size, trade_id, aggressor in entries:
        head = f"279={action}\x01269={kind}\x0155={symbol}\x0183={rpt_seq}\x01"
        if price is not None and size is not None and trade_id is None and aggressor is None:
            parts.append(f"{head}270={text(price)}\x01271={text(size)}\x01")
            continue
        parts.append(head)
        if price is not None:
            parts.append(f"270={text(price)}\x01")
        if size is not None:
            parts.append(f"271={text(size)}\x01")
        if trade_id is not None:
            parts.append(f"1003={trade_id}\x01")
        if aggressor is not None:
            parts.append(f"5797={aggressor}\x01")
    return "".join(parts)


def snapshot_body(req_id: str | None, symbol: str, rpt_seq: int, levels: Sequence[FxaLevel]) -> str:
    """The body of a 35=W: 262 (optional), 55, 83, 268 and its groups."""
    text = _DECIMALS.text
    req = "" if req_id is None else f"262={req_id}\x01"
    groups = "".join([f"269={t}\x01270={text(p)}\x01271={text(s)}\x01" for t, p, s in levels])
    return f"{req}55={symbol}\x0183={rpt_seq}\x01268={len(levels)}\x01{groups}"


def _entry(e: FxaEntry) -> EntryTuple:
    return (
        int(e.action),
        _value(e.entry_type),
        _value(e.symbol),
        int(e.rpt_seq),
        e.price,
        e.size,
        None if e.trade_id is None else _value(e.trade_id),
        None if e.aggressor is None else int(e.aggressor),
    )


def encode_message(msg: FxaMessage) -> bytes:
    """Encode one native message with header, BodyLength and CheckSum.

    Raises:
        ValueError: a string field that is empty, non-ASCII or holds SOH.
    """
    h = msg.header
    head = (int(h.seq), _value(h.sender), _value(h.target), h.sending_time_ns)
    dup = (h.poss_dup, h.orig_sending_time_ns)
    if isinstance(msg, FxaIncremental):
        return encode_frame("X", *head, incremental_body([_entry(e) for e in msg.entries]), *dup)
    if isinstance(msg, FxaSnapshot):
        req_id = None if msg.req_id is None else _value(msg.req_id)
        body = snapshot_body(req_id, _value(msg.symbol), int(msg.rpt_seq), msg.entries)
        return encode_frame("W", *head, body, *dup)
    if isinstance(msg, FxaHeartbeat):
        return encode_frame("0", *head, "", *dup)
    if isinstance(msg, FxaSnapshotRequest):
        body = (
            f"262={_value(msg.req_id)}\x01263=0\x01264=0\x01267=2\x01269=0\x01269=1\x01"
            f"146=1\x0155={_value(msg.symbol)}\x01"
        )
        return encode_frame("V", *head, body, *dup)
    if isinstance(msg, FxaLogon):
        reset = "141=Y\x01" if msg.reset_seq else ""
        body = f"98=0\x01108={int(msg.heartbeat_interval_s)}\x01{reset}"
        return encode_frame("A", *head, body, *dup)
    return encode_frame("5", *head, f"58={_value(msg.text)}\x01" if msg.text else "", *dup)


# ---------------------------------------------------------------- decoding


def _digits(text: str) -> int:
    # Callers pass text decoded as ASCII, so isdigit() admits only 0-9.
    if not text.isdigit():
        raise DecodeError(f"fxa: expected digits, got {text!r}")
    return int(text)


_ACTIONS: Final = {"0": NEW, "1": CHANGE, "2": DELETE}


def split_fields(data: bytes) -> list[str]:
    """Check framing, BodyLength and CheckSum; return the body as a flat tag/value list.

    The result alternates tag, value, tag, value, starting at 35 MsgType; 8, 9 and 10
    are not in it.

    Raises:
        DecodeError: bad begin string, length, checksum, non-ASCII, a field without "=".
    """
    size = len(data)
    if size < 30 or not data.startswith(_PREFIX) or data[-8:-4] != b"\x0110=" or data[-1] != 1:
        raise DecodeError("fxa: bad framing (begin string or trailer)")
    want = data[-4:-1]
    if not want.isdigit() or int(want) != checksum(data[:-7]):
        raise DecodeError("fxa: checksum mismatch")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("fxa: non-ASCII bytes") from None
    body_start = text.find(SOH, 12) + 1
    if not body_start or text[12 : body_start - 1] != str(size - 7 - body_start):
        raise DecodeError("fxa: BodyLength mismatch")
    body = text[body_start : size - 8]
    # Fast path: one split when no value holds "="; the count proves it.
    parts = body.replace(SOH, "=").split("=")
    if len(parts) != 2 * body.count(SOH) + 2:
        parts = []
        for field in body.split(SOH):
            tag, eq, value = field.partition("=")
            if not eq:
                raise DecodeError("fxa: field without tag=value")
            parts += (tag, value)
    return parts


HeaderTuple = tuple[str, int, str, str, int, bool, int | None, int]
"""(35 MsgType, 34, 49, 56, 52 ns, 43, 122 ns or None, index of the first body tag)."""


def scan_header(parts: list[str]) -> HeaderTuple:
    """Read the standard header that follows 35 MsgType.

    Raises:
        DecodeError: 35 not first, or 34/49/56/52 missing or malformed.
    """
    if parts[0] != "35":
        raise DecodeError("fxa: 35 MsgType must follow BodyLength")
    n = len(parts)
    if (
        n > 10
        and parts[2] == "49"
        and parts[4] == "56"
        and parts[6] == "34"
        and parts[8] == "52"
        and parts[10] != "43"
        and parts[10] != "122"
    ):
        # The usual order: read it in place.
        try:
            sending = parse_fix_ms(parts[9])
        except ValueError as exc:
            raise DecodeError(f"fxa: bad header field: {exc}") from None
        sender, target, seq_text = parts[3], parts[5], parts[7]
        if sender and target:
            if not seq_text.isdigit():  # `_digits`, inline on the hot path
                raise DecodeError(f"fxa: expected digits, got {seq_text!r}")
            return parts[1], int(seq_text), sender, target, sending, False, None, 10
    seq = sending = -1
    sender = target = ""
    poss_dup = False
    orig: int | None = None
    i = 2
    try:
        while i < n:
            tag = parts[i]
            if tag == "49":
                sender = parts[i + 1]
            elif tag == "56":
                target = parts[i + 1]
            elif tag == "34":
                seq = _digits(parts[i + 1])
            elif tag == "52":
                sending = parse_fix_ms(parts[i + 1])
            elif tag == "43":
                poss_dup = parts[i + 1] == "Y"
            elif tag == "122":
                orig = parse_fix_ms(parts[i + 1])
            else:
                break
            i += 2
    except ValueError as exc:
        raise DecodeError(f"fxa: bad header field: {exc}") from None
    if seq < 0 or sending < 0 or not sender or not target:
        raise DecodeError("fxa: header lacks 34, 49, 56 or 52")
    return parts[1], seq, sender, target, sending, poss_dup, orig, i


def scan_incremental(parts: list[str], i: int) -> list[EntryTuple]:
    """Read the 268 groups of a 35=X body starting at parts[i].

    Raises:
        DecodeError: count mismatch, missing required tag, unknown tag, bad value.
    """
    n = len(parts)
    if i >= n or parts[i] != "268":
        raise DecodeError("fxa: X without 268 NoMDEntries")
    count_text = parts[i + 1]
    if not count_text.isdigit():  # `_digits`, inline on the hot path
        raise DecodeError(f"fxa: expected digits, got {count_text!r}")
    count = int(count_text)
    i += 2
    nanos = _NANOS  # indexed: a hit is one C dict lookup, no Python call
    entries: list[EntryTuple] = []
    try:
        while i < n:
            if parts[i] != "279":
                raise DecodeError(f"fxa: X group must start with 279, got {parts[i]}")
            action = _ACTIONS[parts[i + 1]]
            if (
                i + 11 < n
                and parts[i + 2] == "269"
                and parts[i + 4] == "55"
                and parts[i + 6] == "83"
                and parts[i + 8] == "270"
                and parts[i + 10] == "271"
                and (i + 12 == n or parts[i + 12] == "279")
            ):
                # A level in the usual layout: read it in place.
                entry_type = parts[i + 3]
                symbol = parts[i + 5]
                if entry_type not in ENTRY_TYPES or not symbol:
                    raise DecodeError("fxa: X group lacks a valid 269 or 55")
                rpt_text = parts[i + 7]
                if not rpt_text.isdigit():  # `_digits`, inline on the hot path
                    raise DecodeError(f"fxa: expected digits, got {rpt_text!r}")
                entries.append(
                    (
                        action,
                        entry_type,
                        symbol,
                        int(rpt_text),
                        nanos[parts[i + 9]],
                        nanos[parts[i + 11]],
                        None,
                        None,
                    )
                )
                i += 12
                continue
            entry_type = symbol = ""
            rpt_seq = -1
            price = size = aggressor = None
            trade_id = None
            i += 2
            while i < n:
                tag = parts[i]
                if tag == "269":
                    entry_type = parts[i + 1]
                elif tag == "55":
                    symbol = parts[i + 1]
                elif tag == "83":
                    rpt_seq = _digits(parts[i + 1])
                elif tag == "270":
                    price = nanos[parts[i + 1]]
                elif tag == "271":
                    size = nanos[parts[i + 1]]
                elif tag == "1003":
                    trade_id = parts[i + 1]
                elif tag == "5797":
                    aggressor = _digits(parts[i + 1])
                elif tag == "279":
                    break
                else:
                    raise DecodeError(f"fxa: unexpected tag {tag!r} in X group")
                i += 2
            if entry_type not in ENTRY_TYPES or not symbol or rpt_seq < 0:
                raise DecodeError("fxa: X group lacks a valid 269, 55 or 83")
            entries.append((action, entry_type, symbol, rpt_seq, price, size, trade_id, aggressor))
    except (KeyError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"fxa: bad X group value: {exc!r}") from None
    if len(entries) != count:
        raise DecodeError(f"fxa: 268={count} but {len(entries)} groups")
    return entries


SnapshotTuple = tuple[str | None, str, int, list[FxaLevel]]
"""(262 MDReqID or None, 55 Symbol, 83 RptSeq, entries)."""


def scan_snapshot(parts: list[str], i: int) -> SnapshotTuple:
    """Read a 35=W body starting at parts[i].

    Raises:
        DecodeError: missing 55/83/268, count mismatch, bad group.
    """
    n = len(parts)
    req_id: str | None = None
    if i < n and parts[i] == "262":
        req_id = parts[i + 1]
        i += 2
    if i + 5 >= n or parts[i] != "55" or parts[i + 2] != "83" or parts[i + 4] != "268":
        raise DecodeError("fxa: W needs 55, 83, 268 in order")
    symbol = parts[i + 1]
    rpt_seq = _digits(parts[i + 3])
    count = _digits(parts[i + 5])
    i += 6
    if n - i != 6 * count:
        raise DecodeError(f"fxa: 268={count} but {(n - i) / 6:g} groups")
    nanos = _NANOS  # indexed: a hit is one C dict lookup, no Python call
    entries: list[FxaLevel] = []
    try:
        for j in range(i, n, 6):
            t1, kind, t2, price, t3, size = parts[j : j + 6]
            if t1 != "269" or t2 != "270" or t3 != "271" or kind not in (BID, OFFER):
                raise DecodeError("fxa: W group must be 269 (0|1), 270, 271")
            entries.append((kind, nanos[price], nanos[size]))
    except ValueError as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"fxa: bad W group value: {exc!r}") from None
    return req_id, symbol, rpt_seq, entries


def _body(parts: list[str], i: int) -> dict[str, str]:
    body = dict(zip(parts[i::2], parts[i + 1 :: 2], strict=True))
    if "" in body:
        raise DecodeError("fxa: field with an empty tag")
    return body


def decode_message(data: bytes) -> FxaMessage:
    """Decode one native message into its dataclass.

    Raises:
        DecodeError: bad framing or checksum, unknown MsgType, bad or missing field.
    """
    parts = split_fields(data)
    msg_type, seq, sender, target, sending, poss_dup, orig, i = scan_header(parts)
    header = FxaHeader(seq, sender, target, sending, poss_dup, orig)
    if msg_type == "X":
        return FxaIncremental(header, tuple(FxaEntry(*e) for e in scan_incremental(parts, i)))
    if msg_type == "W":
        req_id, symbol, rpt_seq, levels = scan_snapshot(parts, i)
        return FxaSnapshot(header, req_id, symbol, rpt_seq, tuple(levels))
    body = _body(parts, i)
    try:
        if msg_type == "0":
            return FxaHeartbeat(header)
        if msg_type == "V":
            if body.get("263") != "0":
                raise DecodeError("fxa: only 263=0 snapshot requests are supported")
            return FxaSnapshotRequest(header, body["262"], body["55"])
        if msg_type == "A":
            return FxaLogon(header, _digits(body["108"]), body.get("141") == "Y")
        if msg_type == "5":
            return FxaLogout(header, body.get("58", ""))
    except KeyError as exc:
        raise DecodeError(f"fxa: {msg_type} lacks tag {exc}") from None
    raise DecodeError(f"fxa: unsupported MsgType {msg_type!r}")
