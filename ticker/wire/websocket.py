"""WebSocket (RFC 6455) framing for the server side: handshake, frames out, frames in.

Server frames are built here directly: a data frame is a 2-10 byte header in front of
payload that was encoded once for every subscriber. Client frames are parsed by a small
incremental reader that unmasks, reassembles fragments, bounds message size and
fragment count, and hands out control frames. We do not keep a wsproto connection per
client: it measured 4.8 KB each, half our per-connection memory budget. No compression
extension is negotiated.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from ticker.errors import ProtocolError
from ticker.wire.http import BadRequest, RequestHead, render_response

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """RFC 6455 codes we use besides our own 4xxx (see `ticker.errors`)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    TOO_BIG = 1009


class WebSocketProtocolError(ProtocolError):
    """The peer broke RFC 6455; close with `close_code`."""

    def __init__(self, message: str, close_code: int = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.close_code = close_code


def accept_key(client_key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.

    Raises:
        BadRequest: the key is not the base64 of 16 bytes (RFC 6455 4.1), e.g. not ASCII.
    """
    try:
        nonce = base64.b64decode(client_key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError):  # binascii.Error is a ValueError
        nonce = b""
    if len(nonce) != 16:
        raise BadRequest("Sec-WebSocket-Key must be the base64 of 16 bytes")
    digest = hashlib.sha1(client_key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one unmasked, final server frame carrying `length` payload bytes."""
    first = 0x80 | opcode
    if length < 126:
        return _SHORT.pack(first, length)
    if length < 65536:
        return _MEDIUM.pack(first, 126, length)
    return _LONG.pack(first, 127, length)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One whole unmasked server frame."""
    return frame_header(opcode, len(payload)) + payload


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control frame limit."""
    body = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return encode_frame(Opcode.CLOSE, body)


@dataclass(frozen=True, slots=True)
class Message:
    """A whole data message from the client (fragments reassembled)."""

    binary: bool
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    code: int | None
    reason: str


FrameEvent = Message | Ping | Pong | Close


DEFAULT_MAX_FRAGMENTS: Final = 128
"""Frames one client message may arrive in, unless the caller says otherwise."""


class FrameReader:
    """Incremental reader of masked client frames.

    What it holds is bounded by the limits, not by what the peer sends: at most one
    frame's bytes not yet parsed (plus the chunk just fed) and the message so far, kept
    as one bytearray; a message may take at most `max_fragments` frames, so endless
    empty continuation frames cannot keep a connection busy (or a list growing) forever.

    Args:
        max_message_bytes: the largest data message accepted, fragments included.
        max_fragments: the most frames (first frame and continuations) one data
            message may arrive in; the next one closes with 1009.
    """

    __slots__ = (
        "_buffer",
        "_fragment_count",
        "_fragments",
        "_fragments_binary",
        "max_fragments",
        "max_message_bytes",
    )

    def __init__(self, max_message_bytes: int, max_fragments: int = DEFAULT_MAX_FRAGMENTS) -> None:
        if max_fragments < 1:
            raise ValueError("max_fragments must be >= 1")
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max_fragments
        self._buffer = bytearray()
        # One growing buffer, not a list of fragments: a list of many small bytes objects
        # costs ~40 bytes of heap per fragment however small the fragment is.
        self._fragments = bytearray()
        self._fragment_count = 0  # frames of the message in progress (0: none)
        self._fragments_binary = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held now: unparsed input plus the fragmented message so far."""
        return len(self._buffer) + len(self._fragments)

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add received bytes; return every event now complete.

        Raises:
            WebSocketProtocolError: unmasked or malformed frame, bad opcode or
                fragmentation (1002), a message over the byte limit or in more than
                `max_fragments` frames (1009), an oversized control frame (1002).
        """
        # The buffer stays bounded: a frame whose header announces more than the limit is
        # refused before its payload is awaited, and the shell reads in bounded chunks.
        self._buffer += data
        events: list[FrameEvent] = []
        while True:
            event = self._next()
            if event is None:
                return events
            if event is not _CONSUMED:
                assert not isinstance(event, _Consumed)
                events.append(event)

    def _next(self) -> FrameEvent | _Consumed | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            raise WebSocketProtocolError("reserved bits set without a negotiated extension")
        if not second & 0x80:
            raise WebSocketProtocolError("client frames must be masked")
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = int.from_bytes(buf[2:4], "big")
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = int.from_bytes(buf[2:10], "big")
            offset = 10
        is_control = opcode >= 0x8
        if is_control and (length > 125 or not fin):
            raise WebSocketProtocolError("control frames must be final and at most 125 bytes")
        if not is_control and len(self._fragments) + length > self.max_message_bytes:
            raise WebSocketProtocolError(
                f"message larger than {self.max_message_bytes} bytes", CloseCode.TOO_BIG
            )
        if opcode == Opcode.CONTINUATION and self._fragment_count >= self.max_fragments:
            # Legal framing, but a message we will not assemble: refused like one too big,
            # from its header, before its payload is awaited.
            raise WebSocketProtocolError(
                f"message in more than {self.max_fragments} fragments", CloseCode.TOO_BIG
            )
        end = offset + 4 + length
        if len(buf) < end:
            return None
        mask = bytes(buf[offset : offset + 4])
        payload = _unmask(bytes(buf[offset + 4 : end]), mask)
        del buf[:end]
        return self._event(opcode, fin, payload)

    def _event(self, opcode: int, fin: bool, payload: bytes) -> FrameEvent | _Consumed:
        if opcode == Opcode.PING:
            return Ping(payload)
        if opcode == Opcode.PONG:
            return Pong(payload)
        if opcode == Opcode.CLOSE:
            return _parse_close(payload)
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            if self._fragment_count:
                raise WebSocketProtocolError("new message before the last one finished")
            if fin:
                return Message(opcode == Opcode.BINARY, payload)
            self._fragments_binary = opcode == Opcode.BINARY
        elif opcode == Opcode.CONTINUATION:
            if not self._fragment_count:
                raise WebSocketProtocolError("continuation frame without a message")
        else:
            raise WebSocketProtocolError(f"unknown opcode {opcode:#x}")
        self._fragments += payload
        self._fragment_count += 1
        if not fin:
            return _CONSUMED
        whole = bytes(self._fragments)
        self._fragments = bytearray()  # a new one: give the message's memory back now
        self._fragment_count = 0
        return Message(self._fragments_binary, whole)


class _Consumed:
    """A frame was consumed but completes no event yet (a non-final fragment)."""


_CONSUMED: Final = _Consumed()


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    # XOR as one big integer: fast in CPython for the small frames clients send.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def close_code_allowed(code: int) -> bool:
    """Whether a peer may send `code` in a close frame (RFC 6455 7.4): the defined
    codes except 1004-1006 and 1015 (reserved, never on the wire), the registered
    1012-1014, and 3000-4999 (libraries, applications). 0-999, 1016-2999 and 5000+ are
    a protocol error."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _parse_close(payload: bytes) -> Close:
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        raise WebSocketProtocolError("close frame with a 1-byte body")
    code = int.from_bytes(payload[:2], "big")
    if not close_code_allowed(code):
        raise WebSocketProtocolError(f"close code {code} is not allowed on the wire")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketProtocolError("close reason is not UTF-8") from None
    return Close(code, reason)


def upgrade_response(head: RequestHead, subprotocols: tuple[str, ...]) -> tuple[bytes, str]:
    """The 101 response to a valid upgrade request, and the subprotocol chosen: the
    first of `subprotocols` (in our order of preference) that the client offers.

    Raises:
        BadRequest: not a GET WebSocket upgrade over HTTP/1.1, a key that is not the
            base64 of 16 bytes, wrong version, or none of `subprotocols`.
    """
    if head.method != "GET":
        raise BadRequest("WebSocket upgrade must be GET", 405)
    if head.http_version != "1.1":
        raise BadRequest("a WebSocket upgrade needs HTTP/1.1 (RFC 6455 4.1)")
    if "websocket" not in head.header("upgrade").lower():
        raise BadRequest("this endpoint needs a WebSocket upgrade (Upgrade: websocket)", 426)
    key = head.header("sec-websocket-key")
    if not key or head.header("sec-websocket-version") != "13":
        raise BadRequest("missing Sec-WebSocket-Key or Sec-WebSocket-Version is not 13")
    offered = {p.strip() for p in head.header("sec-websocket-protocol").split(",")}
    chosen = next((p for p in subprotocols if p in offered), None)
    if chosen is None:
        raise BadRequest(f"offer the subprotocol {' or '.join(subprotocols)}")
    accept = accept_key(key)
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept),
        ("Sec-WebSocket-Protocol", chosen),
    ]
    return render_response(101, headers, content_length=False), chosen
