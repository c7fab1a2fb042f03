"""One binary WebSocket connection of a feed, on trio-websocket.

It opens the stream itself (so a refused handshake never leaks its socket: trio-websocket
0.12 leaves it open), offers `ticker.v1.zstd` and/or `ticker.v1`, sends the one
subscribe command, and then hands over whole frames as decoded messages, decompressed
when zstd was chosen. Every way it can end becomes an `Ending`. No topic state here.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence
from typing import Final

import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection
from wsproto import ConnectionType, WSConnection

from ticker.client.endings import (
    ConnectionEnded,
    Ending,
    EndingKind,
    ending_from_close,
    ending_from_status,
)
from ticker.client.endpoint import Endpoint
from ticker.client.errors import FeedProtocolError
from ticker.client.network import open_stream
from ticker.core.codec import decode_frame, decode_server, encode_client
from ticker.core.compression import FrameDecompressor, load_dictionary
from ticker.core.messages import Authenticate, ServerMessage, Subscribe
from ticker.core.position import Position
from ticker.errors import BadMessage

SUBPROTOCOL: Final = "ticker.v1"
SUBPROTOCOL_ZSTD: Final = "ticker.v1.zstd"
MESSAGE_QUEUE_SIZE: Final = 4
"""Frames trio-websocket holds for us; small, so a caller that stops reading stops the
socket reads soon and the server sees a slow consumer (and evicts it) early."""
CLOSE_TIMEOUT_S: Final = 1.0
RECEIVE_BYTES: Final = 65536
"""Bytes per socket read (trio-websocket's default is 4 KiB: many reads per burst)."""


class WebSocketFeedConnection:
    """An open, subscribed connection: `receive` returns the next frame's messages."""

    def __init__(
        self,
        ws: WebSocketConnection,
        stream: trio.abc.Stream,
        decompressor: FrameDecompressor | None,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._decompressor = decompressor
        self.compression: str | None = "zstd" if decompressor is not None else None

    async def receive(self) -> list[ServerMessage] | Ending:
        """The messages of the next frame, or how the connection ended."""
        try:
            frame = await self._ws.get_message()
        except ConnectionClosed as exc:
            reason = exc.reason
            if reason is None:
                return Ending(EndingKind.DROPPED, "connection closed")
            return ending_from_close(reason.code, reason.reason)
        if isinstance(frame, str):
            return _protocol_ending("the server sent a text frame")
        try:
            if self._decompressor is not None:
                frame = self._decompressor.decompress(frame)
            return decode_messages(frame)
        except BadMessage as exc:
            return _protocol_ending(str(exc))

    async def authenticate(self, token: str) -> None:
        """Replace the connection's token in flight (`["auth", token]`); a refusal comes
        back as an `error` message. A connection already closed ignores it."""
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send_message(encode_client(Authenticate(token)))

    async def abort(self) -> None:
        """Drop the socket now; `receive` then returns an Ending."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        """Close politely (bounded in time, even when cancelled), then drop the socket."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await self._ws.aclose()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await trio.aclose_forcefully(self._stream)


def decode_messages(frame: bytes) -> list[ServerMessage]:
    """The messages of one frame: almost always one, which `decode_server` reads in
    half the time `decode_frame` needs; a burst of several goes to `decode_frame`.

    Raises:
        BadMessage: the frame does not hold well-formed messages.
    """
    try:
        return [decode_server(frame)]
    except BadMessage:
        return decode_frame(frame)


def _protocol_ending(detail: str) -> Ending:
    return Ending(EndingKind.PROTOCOL, detail, FeedProtocolError(detail))


async def connect_websocket(
    nursery: trio.Nursery,
    endpoint: Endpoint,
    topics: Sequence[str],
    position: Position | None,
    *,
    ssl_context: ssl.SSLContext | None,
    zstd: bool,
    connect_timeout_s: float,
    max_message_bytes: int,
    headers: Sequence[tuple[str, str]] = (),
) -> WebSocketFeedConnection:
    """Connect, upgrade and subscribe; the reader task runs in `nursery`. `headers` go
    with the upgrade request (the token's `Authorization`).

    The caller must `aclose()` the connection and then cancel `nursery`.

    Raises:
        ConnectionEnded: the connection could not be made, was refused, or chose a
            subprotocol this client did not offer.
    """
    # One deadline for TCP, TLS and the upgrade together.
    deadline = trio.current_time() + connect_timeout_s
    stream = await open_stream(endpoint, ssl_context, connect_timeout_s)
    offered = [SUBPROTOCOL_ZSTD, SUBPROTOCOL] if zstd else [SUBPROTOCOL]
    ws = WebSocketConnection(
        stream,
        WSConnection(ConnectionType.CLIENT),
        host=endpoint.host_header,
        path=endpoint.path,
        client_subprotocols=offered,
        client_extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        message_queue_size=MESSAGE_QUEUE_SIZE,
        max_message_size=max_message_bytes,
        receive_buffer_size=RECEIVE_BYTES,
    )
    try:
        ending = await _handshake(nursery, ws, deadline, connect_timeout_s)
        if ending is None and ws.subprotocol not in offered:
            ending = _protocol_ending(f"server chose subprotocol {ws.subprotocol!r}")
        if ending is None:
            command = Subscribe(tuple(topics), str(position) if position else None)
            try:
                await ws.send_message(encode_client(command))
            except ConnectionClosed:
                ending = Ending(EndingKind.DROPPED, "closed before the subscribe was sent")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    if ending is not None:
        await trio.aclose_forcefully(stream)
        raise ConnectionEnded(ending)
    zstd_chosen = ws.subprotocol == SUBPROTOCOL_ZSTD
    decompressor = FrameDecompressor(load_dictionary(), max_message_bytes) if zstd_chosen else None
    return WebSocketFeedConnection(ws, stream, decompressor)


async def _handshake(
    nursery: trio.Nursery, ws: WebSocketConnection, deadline: float, timeout_s: float
) -> Ending | None:
    """Run the reader and wait (until `deadline`, the end of the `timeout_s` the whole
    connect may take) for the upgrade; None when it succeeded."""
    settled = trio.Event()
    failure: list[Ending] = []

    async def read() -> None:
        # trio-websocket's reader raises ConnectionRejected into its nursery; here it
        # becomes an Ending so the caller's nursery never sees it.
        try:
            await ws._reader_task()
        except ConnectionRejected as exc:
            body = (exc.body or b"").decode("utf-8", "replace")
            failure.append(ending_from_status(exc.status_code, body))
        except Exception as exc:  # a library bug must end this connection, not the feed
            failure.append(Ending(EndingKind.DROPPED, f"websocket reader failed: {exc!r}"))
        finally:
            settled.set()

    async def opened() -> None:
        await ws._open_handshake.wait()
        settled.set()

    nursery.start_soon(read)
    nursery.start_soon(opened)
    with trio.move_on_at(deadline):
        await settled.wait()
    if failure:
        return failure[0]
    if not ws._open_handshake.is_set():
        if settled.is_set():
            return Ending(EndingKind.CONNECT_FAILED, "connection closed during the handshake")
        return Ending(EndingKind.CONNECT_FAILED, f"no WebSocket upgrade within {timeout_s} s")
    return None
