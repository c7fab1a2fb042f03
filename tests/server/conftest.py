"""Fixtures and small clients for server tests: real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial

import pytest
import trio
from trio_websocket import WebSocketConnection

from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import ServerMessage, Subscribe
from ticker.server.process import ServerHandle, serve

TEST_CONFIG = Config(port=0, heartbeat_s=3600, ping_interval_s=3600, max_venues=0)
"""No venue topics: these tests count the messages an event publishes (one per topic
it changes). Venue topics are tested in tests/core/test_venue_topics.py, through the
client (tests/client/conftest.py turns them on) and with entitlements (tests/auth)."""


async def start_server(nursery: trio.Nursery, config: Config = TEST_CONFIG) -> ServerHandle:
    handle: ServerHandle = await nursery.start(
        partial(serve, replace(config, port=0), run_venues=False, epoch=7)
    )
    return handle


TEST_DEADLINE_S = 60


@pytest.fixture(autouse=True)
async def deadline(nursery: trio.Nursery) -> None:
    """Every test gets an absolute deadline: past it, it fails instead of hanging."""

    async def watchdog() -> None:
        await trio.sleep(TEST_DEADLINE_S)
        raise TimeoutError(f"test still running after {TEST_DEADLINE_S} s")

    nursery.start_soon(watchdog)


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ServerHandle]:
    handle = await start_server(nursery)
    yield handle
    handle.stop()


class RawWebSocket:
    """A minimal WebSocket client over a plain socket, for clients that misbehave."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(
        cls, port: int, *, protocol: str = "ticker.v1", rcvbuf: int | None = None
    ) -> RawWebSocket:
        sock = trio.socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
            ).encode()
        )
        client = cls(stream)
        head = await client._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return client

    async def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buffer += data
        end = self.buffer.index(marker) + len(marker)
        head = bytes(self.buffer[:end])
        del self.buffer[:end]
        return head

    async def send_binary(self, payload: bytes, *, opcode: int = 0x2, fin: bool = True) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        first = (0x80 if fin else 0) | opcode
        if length < 126:
            header = bytes([first, 0x80 | length])
        elif length < 65536:
            header = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
        await self.stream.send_all(header + mask + masked)

    async def subscribe(self, *topics: str, position: str | None = None) -> None:
        await self.send_binary(encode_client(Subscribe(topics, position)))

    async def frame(self) -> tuple[int, bytes]:
        """The next whole frame: (opcode, payload)."""
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    offset, length = 4, int.from_bytes(self.buffer[2:4], "big")
                elif length == 127:
                    offset, length = 10, int.from_bytes(self.buffer[2:10], "big")
                if len(self.buffer) >= offset + length:
                    opcode = self.buffer[0] & 0x0F
                    payload = bytes(self.buffer[offset : offset + length])
                    del self.buffer[: offset + length]
                    return opcode, payload
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buffer += data

    async def messages(self) -> list[ServerMessage]:
        """Messages of the next data frame (skips pings)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x2:
                return decode_frame(payload)
            if opcode == 0x8:
                raise ConnectionAbortedError(int.from_bytes(payload[:2], "big"), payload[2:])

    async def close(self) -> None:
        await self.stream.aclose()


class SseClient:
    """A plain HTTP/1.1 SSE client: reads the chunked body and splits events."""

    def __init__(self, stream: trio.SocketStream, status: int, head: bytes, rest: bytes) -> None:
        self.stream = stream
        self.status = status
        self.head = head
        self.raw = bytearray(rest)
        self.text = ""

    @classmethod
    async def connect(cls, port: int, query: str, last_event_id: str | None = None) -> SseClient:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        request = f"GET /v1/sse?{query} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"
        await stream.send_all(request.encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                break
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head else 0
        return cls(stream, status, head, rest)

    async def body(self) -> bytes:
        """Everything until the server closes (for error responses)."""
        data = bytes(self.raw)
        while chunk := await self.stream.receive_some(65536):
            data += chunk
        return data

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError
        self.raw += data

    async def _chunk(self) -> bytes:
        while b"\r\n" not in self.raw:
            await self._fill()
        line, _, _ = bytes(self.raw).partition(b"\r\n")
        size = int(line, 16)
        need = len(line) + 2 + size + 2
        while len(self.raw) < need:
            await self._fill()
        payload = bytes(self.raw[len(line) + 2 : len(line) + 2 + size])
        del self.raw[:need]
        if size == 0:
            raise EOFError
        return payload

    async def event(self) -> dict[str, str]:
        """The next event's fields (event, id, data, retry)."""
        while "\n\n" not in self.text:
            self.text += (await self._chunk()).decode()
        block, _, self.text = self.text.partition("\n\n")
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = value
        return fields

    async def close(self) -> None:
        await self.stream.aclose()


async def receive(ws: WebSocketConnection) -> list[ServerMessage]:
    """The messages of the next binary frame a trio-websocket client receives."""
    frame = await ws.get_message()
    assert isinstance(frame, bytes), frame
    return decode_frame(frame)


async def until(predicate: Callable[[], bool], *, timeout_s: float = 20) -> None:
    """Wait for server state to change; it has no event to wait on, so poll, bounded."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


def live_tasks() -> int:
    """Tasks under the test's root nursery (the server's tasks included)."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return sum(len(n.child_tasks) for n in root.child_nurseries)
