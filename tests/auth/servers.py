"""An authenticating server for tests, and raw clients that present tokens their way."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import trio

from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import Authenticate, ServerMessage, Subscribe
from ticker.model.events import BookUpdate, Quote, Trade
from ticker.server.process import ServerHandle, serve
from ticker.server.stream_auth import Gate

from .keyring import AUDIENCE, ISSUER, NOW, SECRET

AUTH_CONFIG = Config(
    port=0,
    heartbeat_s=3600,
    ping_interval_s=3600,
    auth="required",
    auth_secret=SECRET,
    auth_audience=AUDIENCE,
    auth_issuer=ISSUER,
    auth_leeway_s=0.0,
    publish_token="p" * 32,
)


class WallClock:
    """A wall clock for the gate that starts at NOW and follows trio's clock, so a
    token's `exp` falls at a known trio time."""

    def __init__(self) -> None:
        self.offset = NOW - trio.current_time()

    def __call__(self) -> float:
        return trio.current_time() + self.offset


async def start_auth_server(nursery: trio.Nursery, config: Config = AUTH_CONFIG) -> ServerHandle:
    handle: ServerHandle = await nursery.start(
        partial(serve, replace(config, port=0), run_venues=False, epoch=7)
    )
    gate = handle.context.auth
    if gate is not None:
        gate.clock = WallClock()
    return handle


def gate_of(server: ServerHandle) -> Gate:
    gate = server.context.auth
    assert gate is not None
    return gate


def quote(i: int, symbol: str = "BTC-USD") -> Quote:
    return Quote("cbx", symbol, i, 100 + i, 1, 10_000, 1)


def trade(i: int, symbol: str = "BTC-USD") -> Trade:
    from ticker.model.events import TakerSide

    return Trade("cbx", symbol, i, 100 + i, 1, TakerSide.BUY, f"t{i}")


def book(i: int, symbol: str = "BTC-USD") -> BookUpdate:
    return BookUpdate("itx", symbol, i, ((100 + i, 1),), (), False)


async def publish(server: ServerHandle, *events: Quote | Trade | BookUpdate) -> None:
    target = server.context.stats.ingest_events + len(events)
    await server.publish(*events)
    with trio.fail_after(20):
        while server.context.stats.ingest_events < target:  # noqa: ASYNC110
            await trio.sleep(0.005)


async def until(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.005)


class Response:
    """What a refused or accepted request got: status, head, and every byte after it
    up to where we stopped reading (EOF for refusals)."""

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        self.head = head
        self.body = body


async def request(
    port: int, target: str, headers: dict[str, str], *, read_body: bool
) -> tuple[Response, trio.SocketStream]:
    """Send a GET and read its head (and, with `read_body`, everything to EOF)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    lines = [f"GET {target} HTTP/1.1", "Host: t"] + [f"{k}: {v}" for k, v in headers.items()]
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
    buffer = b""
    with trio.fail_after(20):
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                break
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if read_body:
            while data := await stream.receive_some(65536):
                rest += data
    status = int(head.split(b" ")[1]) if head else 0
    return Response(status, head, rest), stream


def upgrade_headers(protocol: str = "ticker.v1") -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": protocol,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class WsClient:
    """A raw WebSocket client (masking, frames) for the authenticated tests."""

    def __init__(self, stream: trio.SocketStream, rest: bytes) -> None:
        self.stream = stream
        self.buffer = bytearray(rest)

    @classmethod
    async def connect(cls, port: int, headers: dict[str, str]) -> WsClient:
        response, stream = await request(
            port, "/v1/ws", upgrade_headers() | headers, read_body=False
        )
        assert response.status == 101, response.head
        return cls(stream, response.body)

    async def send(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        if length < 126:
            header = bytes([0x82, 0x80 | length])
        else:
            header = bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big")
        await self.stream.send_all(header + mask + masked)

    async def subscribe(self, *topics: str, position: str | None = None) -> None:
        await self.send(encode_client(Subscribe(topics, position)))

    async def refresh(self, token: str) -> None:
        await self.send(encode_client(Authenticate(token)))

    async def frame(self) -> tuple[int, bytes]:
        with trio.fail_after(20):
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
        """The next data frame's messages; a close frame raises ConnectionAbortedError
        with its code and reason."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x2:
                return decode_frame(payload)
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big")
                raise ConnectionAbortedError(code, payload[2:].decode())

    async def close(self) -> None:
        await self.stream.aclose()


class SseStream:
    """A raw SSE reader over an accepted stream."""

    def __init__(self, stream: trio.SocketStream, rest: bytes) -> None:
        self.stream = stream
        self.raw = bytearray(rest)
        self.text = ""

    @classmethod
    async def connect(cls, port: int, query: str, headers: dict[str, str]) -> SseStream:
        response, stream = await request(port, f"/v1/sse?{query}", headers, read_body=False)
        assert response.status == 200, response.head
        return cls(stream, response.body)

    async def _chunk(self) -> bytes:
        while b"\r\n" not in self.raw:
            await self._fill()
        line = bytes(self.raw).partition(b"\r\n")[0]
        size = int(line, 16)
        need = len(line) + 2 + size + 2
        while len(self.raw) < need:
            await self._fill()
        payload = bytes(self.raw[len(line) + 2 : len(line) + 2 + size])
        del self.raw[:need]
        if size == 0:
            raise EOFError
        return payload

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError
        self.raw += data

    async def event(self) -> dict[str, str]:
        with trio.fail_after(20):
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
