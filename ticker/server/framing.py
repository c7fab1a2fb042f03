"""How each transport frames what a subscriber writes: WebSocket binary or SSE text.

A data message's frame is built once per message (see `Published`) and shared; this
module picks which form a connection gets and wraps one write's worth of frames (SSE:
one HTTP chunk). Control messages (hello, error, heartbeat, close) are rendered here, and
a reset together with its snapshots, as one unit. No sockets, no state beyond small
caches of shared bytes.
"""

from __future__ import annotations

import json
from typing import Protocol

from ticker.core.codec import encode_server
from ticker.core.compression import FrameCompressor
from ticker.core.hub import Published
from ticker.core.messages import Error, Heartbeat, Hello, Reset, ServerMessage
from ticker.core.position import Position
from ticker.errors import CLOSE_FORBIDDEN, CLOSE_SHUTDOWN, CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED
from ticker.server.stats import EndReason
from ticker.wire.sse import LAST_CHUNK, encode_chunk, encode_event
from ticker.wire.websocket import Opcode, encode_close, encode_frame

_SLOW = (EndReason.SLOW_OUTBOX, EndReason.SLOW_WRITE, EndReason.SLOW_REPLAY, EndReason.SLOW_PING)
_AUTH_ENDS = {
    EndReason.TOKEN_EXPIRED: (CLOSE_UNAUTHORIZED, "token expired"),
    EndReason.REVOKED: (CLOSE_FORBIDDEN, "token revoked"),
}
"""Ends of an authenticated stream: its close code and the text of its reason."""


class Framing(Protocol):
    """The transport-specific bytes of one connection."""

    def frame(self, item: Published) -> bytes: ...
    def snapshots(
        self, items: list[Published], position: Position, now_ns: int, reset: Reset | None = None
    ) -> bytes: ...
    def wrap(self, parts: list[bytes]) -> bytes: ...
    def heartbeat(self, position: Position, now_ns: int) -> bytes: ...
    def control(self, message: ServerMessage) -> bytes: ...
    def closing(self, reason: EndReason, position: str) -> bytes | None: ...


class WebSocketFraming:
    """Binary frames of msgpack, optionally zstd-compressed with the shipped dictionary."""

    def __init__(self, compressor: FrameCompressor | None = None) -> None:
        self.compressor = compressor
        self._heartbeat_key: tuple[int, int, int] | None = None
        self._heartbeat = b""

    def frame(self, item: Published) -> bytes:
        if self.compressor is None:
            return item.ws
        return item.ws_zstd(self.compressor)

    def snapshots(
        self, items: list[Published], position: Position, now_ns: int, reset: Reset | None = None
    ) -> bytes:
        """Snapshots consistent with `position` go in one frame: a client has all or none.
        A reset goes first in the same frame (alone if there are no snapshots), so its
        position is never a client's resume point without the state it names. A
        heartbeat at `position` ends the frame: each snapshot carries its own topic's
        last offset, so the burst's position, the client's resume point, needs its own
        message."""
        heartbeat = Heartbeat(position.epoch, position.offset, now_ns // 1000)
        payload = b"".join(item.payload for item in items) + encode_server(heartbeat)
        if reset is not None:
            payload = encode_server(reset) + payload
        if self.compressor is not None:
            payload = self.compressor.compress(payload)
        return encode_frame(Opcode.BINARY, payload)

    def wrap(self, parts: list[bytes]) -> bytes:
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def control(self, message: ServerMessage) -> bytes:
        payload = encode_server(message)
        if self.compressor is not None:
            payload = self.compressor.compress(payload)
        return encode_frame(Opcode.BINARY, payload)

    def heartbeat(self, position: Position, now_ns: int) -> bytes:
        # Shared by every connection heartbeating in the same second at the same position.
        key = (position.epoch, position.offset, now_ns // 1_000_000_000)
        if key != self._heartbeat_key:
            self._heartbeat_key = key
            self._heartbeat = self.control(
                Heartbeat(position.epoch, position.offset, now_ns // 1000)
            )
        return self._heartbeat

    def closing(self, reason: EndReason, position: str) -> bytes | None:
        if reason in _SLOW:
            return encode_close(
                CLOSE_SLOW_CONSUMER, f"slow consumer ({reason.value}); last={position}"
            )
        if reason is EndReason.SHUTDOWN:
            return encode_close(CLOSE_SHUTDOWN, f"server shutdown; last={position}")
        if reason in _AUTH_ENDS:
            code, text = _AUTH_ENDS[reason]
            return encode_close(code, f"{text}; last={position}")
        return None


class SseFraming:
    """`text/event-stream` events, sent as HTTP/1.1 chunks; or, for an HTTP/1.0 client
    (`chunked=False`), as a plain body that ends when the connection closes."""

    def __init__(self, *, chunked: bool = True) -> None:
        self.chunked = chunked
        self._heartbeat_key: tuple[int, int, int] | None = None
        self._heartbeat = b""

    def frame(self, item: Published) -> bytes:
        return item.sse

    def snapshots(
        self, items: list[Published], position: Position, now_ns: int, reset: Reset | None = None
    ) -> bytes:
        """A burst's events carry no `id:`; a `heartbeat` at `position` ends it and
        carries the id. A browser keeps its previous Last-Event-ID for events without
        one, so it resumes from the burst's position only once it has every snapshot
        of it. A reset comes first: a client cut before the heartbeat resumes from
        where it was and gets the reset again. (Each snapshot's own `offset` is its
        topic's last message, not the burst's position.)"""
        parts = []
        if reset is not None:
            data = f'{{"epoch":{reset.epoch},"offset":{reset.offset},"reason":"{reset.reason}"}}'
            parts.append(encode_event("reset", data).encode())
        parts += [encode_event("snapshot", item.json).encode("utf-8") for item in items]
        data = f'{{"epoch":{position.epoch},"offset":{position.offset},"ts":{now_ns // 1000}}}'
        parts.append(encode_event("heartbeat", data, str(position)).encode())
        return b"".join(parts)

    def wrap(self, parts: list[bytes]) -> bytes:
        body = b"".join(parts)
        return encode_chunk(body) if self.chunked else body

    def control(self, message: ServerMessage) -> bytes:
        if isinstance(message, Hello):
            data = (
                f'{{"version":{message.version},"epoch":{message.epoch},'
                f'"offset":{message.offset},"heartbeat_s":{message.heartbeat_s:g}'
            )
            if message.zstd_dictionary is not None:
                data += f',"zstd_dictionary":{message.zstd_dictionary}'
            data += "}"
            return encode_event("hello", data).encode()
        if isinstance(message, Error):
            data = json.dumps({"code": message.code, "message": message.message})
            return encode_event("error", data).encode()
        raise TypeError(f"no SSE form for {type(message).__name__}")

    def heartbeat(self, position: Position, now_ns: int) -> bytes:
        key = (position.epoch, position.offset, now_ns // 1_000_000_000)
        if key != self._heartbeat_key:
            self._heartbeat_key = key
            data = f'{{"epoch":{position.epoch},"offset":{position.offset},"ts":{now_ns // 1000}}}'
            self._heartbeat = encode_event("heartbeat", data, str(position)).encode()
        return self._heartbeat

    def closing(self, reason: EndReason, position: str) -> bytes | None:
        if reason in (*_SLOW, EndReason.SHUTDOWN, *_AUTH_ENDS):
            data = f'{{"reason":"{reason.value}","last":"{position}"}}'
            event = encode_event("end", data).encode()
            return encode_chunk(event) + LAST_CHUNK if self.chunked else event
        return None
