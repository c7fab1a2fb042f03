"""One binary WebSocket connection of a feed: wsproto over a trio stream, read in place.

It opens the stream itself, offers `ticker.v1.zstd` and/or `ticker.v1`, sends the one
subscribe command, and then hands over whole frames, decompressed when zstd was chosen
(the tracker decodes them). The socket is read by the task that calls `receive`, and every
frame one read brought is handed over before the next read: no reader task and no
channel between it and the caller (with trio-websocket, each message crossed tasks, and
at a few thousand messages a second the hops alone put the client behind). Every way
it can end becomes an `Ending`. No topic state here.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any, Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ticker.client.endings import (
    CLOSE_TOO_BIG,
    ConnectionEnded,
    Ending,
    EndingKind,
    ending_from_close,
    ending_from_status,
)
from ticker.client.endpoint import Endpoint
from ticker.client.errors import FeedProtocolError
from ticker.client.network import open_stream
from ticker.core.codec import encode_client
from ticker.core.compression import FrameDecompressor, load_dictionary
from ticker.core.messages import Authenticate, Subscribe
from ticker.core.position import Position
from ticker.errors import BadMessage

SUBPROTOCOL: Final = "ticker.v1"
SUBPROTOCOL_ZSTD: Final = "ticker.v1.zstd"
CLOSE_TIMEOUT_S: Final = 1.0
RECEIVE_BYTES: Final = 65536
"""Bytes per socket read: a caller that stops calling `receive` stops the reads, and
the server sees a slow consumer (and evicts it) once the kernel buffers fill."""
MAX_REJECTION_BODY_BYTES: Final = 64 * 1024
"""The most of a refusal's body kept for the ending's detail (which shows 200 chars)."""
CLOSE_ABNORMAL: Final = 1006
"""No close frame: the socket ended or broke (RFC 6455 7.1.5)."""


class WebSocketFeedConnection:
    """An open, subscribed connection: `receive` returns the next frame's messages."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: WSConnection,
        decompressor: FrameDecompressor | None,
        max_message_bytes: int,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._decompressor = decompressor
        self._max_message_bytes = max_message_bytes
        self.compression: str | None = "zstd" if decompressor is not None else None
        self._frames: collections.deque[bytes | str] = collections.deque()
        self._parts: list[Any] = []  # bytes, or str for a text message
        self._size = 0
        self._ending: Ending | None = None
        self._outgoing = b""
        self._sending = trio.StrictFIFOLock()
        """`receive`'s task answers pings while another may send (`authenticate`)."""

    async def receive(self) -> bytes | Ending:
        """The next frame's bytes (decompressed; `Tracker.receive_frame` decodes them
        and applies their messages in one pass), or how the connection ended (after
        every frame that arrived before the end)."""
        frames = self._frames
        while not frames:
            if self._ending is not None:
                return self._ending
            await self._read()
        frame = frames.popleft()
        if isinstance(frame, str):
            return protocol_ending("the server sent a text frame")
        if self._decompressor is not None:
            try:
                return self._decompressor.decompress(frame)
            except BadMessage as exc:
                return protocol_ending(str(exc))
        return frame

    async def authenticate(self, token: str) -> None:
        """Replace the connection's token in flight (`["auth", token]`); a refusal comes
        back as an `error` message. A connection already closed ignores it."""
        await self._send(BytesMessage(encode_client(Authenticate(token))))

    async def abort(self) -> None:
        """Drop the socket now; `receive` then returns an Ending."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        """Close politely (bounded in time, even when cancelled), then drop the socket."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                if self._ws.state is ConnectionState.OPEN:
                    await self._send(CloseConnection(code=1000))
                # Wait for the server's close frame (RFC 6455: the server closes TCP).
                while self._ending is None:
                    await self._read()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await trio.aclose_forcefully(self._stream)

    async def _read(self) -> None:
        """One socket read: queue the frames it completes, answer pings, note the end."""
        try:
            data = bytes(await self._stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._ending = ending_from_close(CLOSE_ABNORMAL, None)
            return
        ws = self._ws
        try:
            ws.receive_data(data)
            # Lazily: a pong must be sent before a close later in the same read is taken.
            for event in ws.events():
                if isinstance(event, BytesMessage | TextMessage):
                    self._message(event.data, event.message_finished)
                elif isinstance(event, Ping):
                    self._reply(event.response())
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        self._reply(event.response())
                    if self._ending is None:
                        self._ending = ending_from_close(event.code, event.reason or None)
        except RemoteProtocolError as exc:
            if exc.event_hint is not None:
                self._reply(exc.event_hint)
            self._ending = ending_from_close(CLOSE_ABNORMAL, None)
        if self._outgoing:
            outgoing, self._outgoing = self._outgoing, b""
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async with self._sending:
                    await self._stream.send_all(outgoing)

    def _message(self, data: bytes | bytearray | str, finished: bool) -> None:
        """One part of a message; a whole one is queued. Past `max_message_bytes` the
        connection ends with 1009, as a too-big message always ended it."""
        if self._ending is not None:
            return
        self._size += len(data)
        if self._size > self._max_message_bytes:
            reason = f"Exceeded maximum message size: {self._max_message_bytes} bytes"
            self._parts = []  # frames whole before it are still handed over, then the end
            self._ending = ending_from_close(CLOSE_TOO_BIG, reason)
            self._reply(CloseConnection(CLOSE_TOO_BIG, reason))
            return
        if not finished:
            self._parts.append(data)
            return
        if self._parts:
            self._parts.append(data)
            parts, self._parts = self._parts, []
            data = "".join(parts) if isinstance(data, str) else b"".join(parts)
        self._size = 0
        self._frames.append(data if isinstance(data, str) else bytes(data))

    def _reply(self, event: Event) -> None:
        """Queue `event`'s bytes; `_read` sends what one read queued in one write."""
        with contextlib.suppress(LocalProtocolError):  # e.g. a pong once closing
            self._outgoing += self._ws.send(event)

    async def _send(self, event: Event) -> None:
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError
        ):
            data = self._ws.send(event)
            async with self._sending:
                await self._stream.send_all(data)


def protocol_ending(detail: str) -> Ending:
    """How a connection ends on bytes the client cannot read (close 1002's kind)."""
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
    """Connect, upgrade and subscribe. `headers` go with the upgrade request (the
    token's `Authorization`).

    The caller must `aclose()` the connection. `nursery` is not used (the connection
    runs no task of its own); it stays for the interface the feed shares with SSE.

    Raises:
        ConnectionEnded: the connection could not be made, was refused, or chose a
            subprotocol this client did not offer.
    """
    del nursery
    # One deadline for TCP, TLS and the upgrade together.
    deadline = trio.current_time() + connect_timeout_s
    stream = await open_stream(endpoint, ssl_context, connect_timeout_s)
    offered = [SUBPROTOCOL_ZSTD, SUBPROTOCOL] if zstd else [SUBPROTOCOL]
    ws = WSConnection(ConnectionType.CLIENT)
    connection: WebSocketFeedConnection | None = None
    try:
        ending: Ending | None = None
        accepted: AcceptConnection | None = None
        with trio.move_on_at(deadline):
            accepted, ending = await _handshake(stream, ws, endpoint, offered, headers)
        if accepted is None and ending is None:
            ending = Ending(
                EndingKind.CONNECT_FAILED, f"no WebSocket upgrade within {connect_timeout_s} s"
            )
        if accepted is not None and accepted.subprotocol not in offered:
            ending = protocol_ending(f"server chose subprotocol {accepted.subprotocol!r}")
        if ending is None and accepted is not None:
            zstd_chosen = accepted.subprotocol == SUBPROTOCOL_ZSTD
            decompressor = (
                FrameDecompressor(load_dictionary(), max_message_bytes) if zstd_chosen else None
            )
            connection = WebSocketFeedConnection(stream, ws, decompressor, max_message_bytes)
            # What came with the upgrade response (the hello, often) is kept for `receive`.
            for event in ws.events():
                if isinstance(event, BytesMessage | TextMessage):
                    connection._message(event.data, event.message_finished)
            command = Subscribe(tuple(topics), str(position) if position else None)
            try:
                await stream.send_all(ws.send(BytesMessage(encode_client(command))))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                ending = Ending(EndingKind.DROPPED, "closed before the subscribe was sent")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    if ending is not None or connection is None:
        await trio.aclose_forcefully(stream)
        raise ConnectionEnded(ending or Ending(EndingKind.CONNECT_FAILED, "no upgrade"))
    return connection


async def _handshake(
    stream: trio.abc.Stream,
    ws: WSConnection,
    endpoint: Endpoint,
    offered: list[str],
    headers: Sequence[tuple[str, str]],
) -> tuple[AcceptConnection | None, Ending | None]:
    """Send the upgrade request and read the answer: the acceptance, or the ending."""
    request = Request(
        host=endpoint.host_header,
        target=endpoint.path,
        subprotocols=offered,
        extra_headers=[(k.encode(), v.encode()) for k, v in headers],
    )
    try:
        await stream.send_all(ws.send(request))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return None, Ending(EndingKind.CONNECT_FAILED, "connection closed during the handshake")
    rejection: RejectConnection | None = None
    body = bytearray()
    while True:
        try:
            data = bytes(await stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data and rejection is None:
            return None, Ending(EndingKind.CONNECT_FAILED, "connection closed during the handshake")
        try:
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return event, None
                if isinstance(event, RejectConnection):
                    rejection = event
                    if not event.has_body:
                        return None, ending_from_status(event.status_code, "")
                elif isinstance(event, RejectData):
                    if len(body) < MAX_REJECTION_BODY_BYTES:
                        body += event.data
                    if event.body_finished:
                        break
            else:
                if data:
                    continue
        except RemoteProtocolError as exc:
            return None, Ending(EndingKind.CONNECT_FAILED, f"bad upgrade response: {exc}")
        assert rejection is not None
        text = bytes(body[:MAX_REJECTION_BODY_BYTES]).decode("utf-8", "replace")
        return None, ending_from_status(rejection.status_code, text)
