"""A TCP relay between a client and a server, with faults on demand (tests only).

It can cut each connection after a number of bytes towards the client (at any point,
mid-frame included) or after a number of whole WebSocket frames, refuse new
connections, abort every connection at once (like a crashed server: TCP reset), drop
one WebSocket frame of deltas (a gap only the client can notice), and terminate TLS in
front of a plain server.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections.abc import Callable

import trio

from ticker.client.network import connect_tcp
from ticker.core.codec import decode_frame
from ticker.core.messages import DataMessage

RECEIVE_BYTES = 65536
LINGER_RESET = struct.pack("ii", 1, 0)
OPEN = trio.Event()
OPEN.set()


def _reset(stream: trio.abc.Stream) -> None:
    """Make closing `stream` send a TCP reset, like a process that died."""
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(inner, trio.SocketStream):
        with contextlib.suppress(OSError):  # already closed
            inner.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, LINGER_RESET)


class Proxy:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`upstream_port`."""

    def __init__(self, upstream_port: int, *, tls: ssl.SSLContext | None = None) -> None:
        self.upstream_port = upstream_port
        self.tls = tls
        self.port = 0
        self.cut_after: Callable[[], int | None] = lambda: None
        """Bytes towards the client before each new connection is cut (None: never)."""
        self.cut_after_frames: Callable[[], int | None] = lambda: None
        """WebSocket frames towards the client before each new connection is cut."""
        self.refusing = False
        self.drop_next_delta_frame = False
        self.dropped_frames = 0
        self.accepted = 0
        self.cuts = 0
        self._scopes: set[trio.CancelScope] = set()
        self._gates: dict[trio.CancelScope, trio.Event] = {}

    async def run(
        self, *, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._relay, listeners, task_status=task_status)

    def freeze_all(self) -> None:
        """Stop forwarding to the clients of every open connection, keeping them open
        (a server or a path that went silent); new connections are not affected."""
        for scope in self._scopes:
            self._gates[scope] = trio.Event()

    def kill_all(self) -> None:
        """Abort every open connection (both sides see a reset)."""
        for scope in list(self._scopes):
            scope.cancel()

    async def _relay(self, client: trio.SocketStream) -> None:
        # OSError: the upstream server is down; the client sees its connection closed.
        with contextlib.suppress(OSError):
            await self._relay_to_upstream(client)

    async def _relay_to_upstream(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        if self.refusing:
            _reset(client)
            await trio.aclose_forcefully(client)
            return
        downstream: trio.abc.Stream = client
        if self.tls is not None:
            downstream = trio.SSLStream(client, self.tls, server_side=True)
        try:
            upstream = await connect_tcp("127.0.0.1", self.upstream_port)
        except BaseException:
            await trio.aclose_forcefully(downstream)
            raise
        budget = self.cut_after()
        frame_limit = self.cut_after_frames()
        try:
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                self._gates[scope] = OPEN
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, downstream, upstream, None, scope)
                    nursery.start_soon(self._down, upstream, downstream, budget, scope, frame_limit)
        finally:
            self._scopes.discard(scope)
            self._gates.pop(scope, None)
            for stream in (upstream, downstream):
                _reset(stream)
                # Closing a TLS stream whose handshake failed raises; close it anyway.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await trio.aclose_forcefully(stream)

    async def _pump(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        budget: int | None,
        scope: trio.CancelScope,
    ) -> None:
        try:
            while data := await source.receive_some(RECEIVE_BYTES):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    async def _down(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        budget: int | None,
        scope: trio.CancelScope,
        frame_limit: int | None = None,
    ) -> None:
        """Server to client: count bytes against the budget (and frames against their
        limit), and drop a frame if asked."""
        frames = _FrameFilter(self, frame_limit)
        try:
            while data := await source.receive_some(RECEIVE_BYTES):
                await self._gates[scope].wait()
                data = frames.feed(bytes(data))
                if frames.limit_reached:
                    await sink.send_all(data)
                    self.cuts += 1
                    break
                if budget is not None and len(data) >= budget:
                    await sink.send_all(data[:budget])
                    self.cuts += 1
                    break
                if budget is not None:
                    budget -= len(data)
                if data:
                    await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


class _FrameFilter:
    """Passes bytes through; on a WebSocket connection it forwards whole frames only,
    and leaves out the first frame of only deltas while the proxy asks for a drop."""

    def __init__(self, proxy: Proxy, frame_limit: int | None = None) -> None:
        self.proxy = proxy
        self.frames_left = frame_limit
        self.limit_reached = False
        self.buffer = bytearray()
        self.mode = "head"  # then "frames" (WebSocket) or "raw" (anything else)

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        if self.mode == "head":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            self.mode = "frames" if self.buffer.startswith(b"HTTP/1.1 101") else "raw"
            out += self.buffer[: end + 4]
            del self.buffer[: end + 4]
        if self.mode == "raw":
            out += self.buffer
            self.buffer.clear()
            return bytes(out)
        while not self.limit_reached and (frame := self._frame()) is not None:
            raw, payload = frame
            if self.proxy.drop_next_delta_frame and _only_deltas(payload):
                self.proxy.drop_next_delta_frame = False
                self.proxy.dropped_frames += 1
                continue
            out += raw
            if self.frames_left is not None:
                self.frames_left -= 1
                self.limit_reached = self.frames_left <= 0
        return bytes(out)

    def _frame(self) -> tuple[bytes, bytes] | None:
        """The next whole frame (raw bytes, binary payload or b""), or None."""
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length = buffer[1] & 0x7F
        start = 2
        if length == 126:
            start, length = 4, int.from_bytes(buffer[2:4], "big")
        elif length == 127:
            start, length = 10, int.from_bytes(buffer[2:10], "big")
        if len(buffer) < start or len(buffer) < start + length:
            return None
        raw = bytes(buffer[: start + length])
        payload = raw[start:] if buffer[0] & 0x0F == 0x2 else b""
        del buffer[: start + length]
        return raw, payload


def _only_deltas(payload: bytes) -> bool:
    if not payload:
        return False
    try:
        messages = decode_frame(payload)
    except Exception:
        return False
    return bool(messages) and all(isinstance(m, DataMessage) and not m.snapshot for m in messages)
