"""An authenticating server for tests, and raw clients that present tokens their way."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import trio

from tests.server.conftest import RawWebSocket, SseClient
from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import Authenticate, ServerMessage
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


class WsClient(RawWebSocket):
    """`RawWebSocket` opened with a token's headers; frames wait at most 20 s, and a
    close frame raises ConnectionAbortedError(code, reason as text)."""

    @classmethod
    async def connect(  # type: ignore[override]
        cls, port: int, headers: dict[str, str]
    ) -> WsClient:
        response, stream = await request(
            port, "/v1/ws", upgrade_headers() | headers, read_body=False
        )
        assert response.status == 101, response.head
        client = cls(stream)
        client.buffer += response.body
        return client

    async def send(self, payload: bytes) -> None:
        await self.send_binary(payload)

    async def refresh(self, token: str) -> None:
        await self.send(encode_client(Authenticate(token)))

    async def frame(self) -> tuple[int, bytes]:
        with trio.fail_after(20):
            return await super().frame()

    async def messages(self) -> list[ServerMessage]:
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x2:
                return decode_frame(payload)
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big")
                raise ConnectionAbortedError(code, payload[2:].decode())


class SseStream(SseClient):
    """`SseClient` over a stream opened with a token's headers; events wait at most 20 s."""

    @classmethod
    async def connect(  # type: ignore[override]
        cls, port: int, query: str, headers: dict[str, str]
    ) -> SseStream:
        response, stream = await request(port, f"/v1/sse?{query}", headers, read_body=False)
        assert response.status == 200, response.head
        return cls(stream, response.status, response.head, response.body)

    async def event(self) -> dict[str, str]:
        with trio.fail_after(20):
            return await super().event()
