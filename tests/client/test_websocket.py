"""The client's WebSocket connection reads its socket in the caller's task.

A raw wsproto server on 127.0.0.1 plays the server side, so each test controls exactly
which bytes arrive in which write: frames, pings, a close, an oversized message, a
refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
)

from ticker.client.endings import ConnectionEnded, EndingKind
from ticker.client.endpoint import Endpoint
from ticker.client.websocket import SUBPROTOCOL, WebSocketFeedConnection, connect_websocket
from ticker.core.codec import decode_client, encode_server
from ticker.core.messages import DataMessage, Heartbeat, Hello, Subscribe

pytestmark = pytest.mark.usefixtures("deadline")

Script = Callable[[trio.SocketStream, WSConnection, list[Event]], Awaitable[None]]


async def _events(stream: trio.SocketStream, ws: WSConnection) -> list[Event]:
    data = await stream.receive_some(65536)
    ws.receive_data(bytes(data) or None)
    return list(ws.events())


async def _serve(script: Script, seen: list[Event], stream: trio.SocketStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    events: list[Event] = []
    while not any(isinstance(e, Request) for e in events):
        events += await _events(stream, ws)
    await script(stream, ws, seen)


async def _accept_and_read_subscribe(
    stream: trio.SocketStream, ws: WSConnection, seen: list[Event]
) -> None:
    await stream.send_all(ws.send(AcceptConnection(subprotocol=SUBPROTOCOL)))
    while not any(isinstance(e, BytesMessage) for e in seen):
        seen += await _events(stream, ws)


async def _connect(
    nursery: trio.Nursery, script: Script, seen: list[Event], max_bytes: int = 1 << 20
) -> WebSocketFeedConnection:
    listeners = await nursery.start(
        partial(trio.serve_tcp, partial(_serve, script, seen), 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    return await connect_websocket(
        nursery,
        Endpoint.parse(f"ws://127.0.0.1:{port}"),
        ["quote.*"],
        None,
        ssl_context=None,
        zstd=False,
        connect_timeout_s=10,
        max_message_bytes=max_bytes,
    )


HELLO = Hello(1, 5, 0, 30.0, None)
DATA = [DataMessage(i == 1, "quote.X-Y", i, i, i, {"bid": i}) for i in range(1, 6)]


async def test_frames_of_one_write_come_out_in_order_then_the_close_without_a_task(
    nursery: trio.Nursery,
) -> None:
    async def script(stream: trio.SocketStream, ws: WSConnection, seen: list[Event]) -> None:
        await _accept_and_read_subscribe(stream, ws, seen)
        burst = ws.send(BytesMessage(encode_server(HELLO)))
        for message in DATA:
            burst += ws.send(BytesMessage(encode_server(message)))
        burst += ws.send(Ping(b"p1"))
        burst += ws.send(CloseConnection(4008, "slow"))
        await stream.send_all(burst)  # one write: one read brings every frame
        while not any(isinstance(e, CloseConnection) for e in seen):
            seen += await _events(stream, ws)

    seen: list[Event] = []
    tasks_before = len(nursery.child_tasks)
    connection = await _connect(nursery, script, seen)
    # The old connection ran trio-websocket's reader as a task of its own, and every
    # message crossed a channel from it to `receive`.
    assert len(nursery.child_tasks) == tasks_before + 1  # the listener only
    received = [await connection.receive() for _ in range(7)]
    # Frames are handed over as bytes: the tracker decodes and applies them in one pass.
    assert received[:6] == [encode_server(HELLO)] + [encode_server(m) for m in DATA]
    ending = received[6]
    assert not isinstance(ending, bytes) and ending.kind is EndingKind.SLOW_CONSUMER
    assert await connection.receive() == ending  # it stays ended
    await connection.aclose()
    subscribe = next(e for e in seen if isinstance(e, BytesMessage))
    assert decode_client(bytes(subscribe.data)) == Subscribe(("quote.*",), None)
    assert Pong(b"p1") in seen  # the ping was answered from inside `receive`
    closes = [e for e in seen if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [4008]  # the close was answered


async def test_a_message_over_the_bound_ends_the_connection_with_1009(
    nursery: trio.Nursery,
) -> None:
    async def script(stream: trio.SocketStream, ws: WSConnection, seen: list[Event]) -> None:
        await _accept_and_read_subscribe(stream, ws, seen)
        beat = encode_server(Heartbeat(5, 0, 1))
        await stream.send_all(ws.send(BytesMessage(beat)))
        big = ws.send(BytesMessage(b"x" * 300, message_finished=False))
        big += ws.send(BytesMessage(b"x" * 300))
        await stream.send_all(big)
        while not any(isinstance(e, CloseConnection) for e in seen):
            seen += await _events(stream, ws)
        await stream.send_all(ws.send(CloseConnection(1009)))

    seen: list[Event] = []
    connection = await _connect(nursery, script, seen, max_bytes=500)
    assert await connection.receive() == encode_server(Heartbeat(5, 0, 1))
    ending = await connection.receive()
    assert not isinstance(ending, bytes) and ending.kind is EndingKind.PROTOCOL
    assert "1009" in str(ending.error)
    await connection.aclose()
    assert [e.code for e in seen if isinstance(e, CloseConnection)] == [1009]


async def test_a_dropped_socket_ends_as_dropped(nursery: trio.Nursery) -> None:
    async def script(stream: trio.SocketStream, ws: WSConnection, seen: list[Event]) -> None:
        await _accept_and_read_subscribe(stream, ws, seen)
        await stream.send_all(ws.send(BytesMessage(encode_server(HELLO))))
        await stream.aclose()

    connection = await _connect(nursery, script, [])
    assert await connection.receive() == encode_server(HELLO)
    ending = await connection.receive()
    assert not isinstance(ending, bytes) and ending.kind is EndingKind.DROPPED
    await connection.aclose()


async def test_a_refusal_with_a_body_is_read_whole(nursery: trio.Nursery) -> None:
    async def script(stream: trio.SocketStream, ws: WSConnection, seen: list[Event]) -> None:
        headers = [(b"content-length", b"9")]
        reply = ws.send(RejectConnection(status_code=429, headers=headers, has_body=True))
        reply += ws.send(RejectData(b"too ", body_finished=False))
        await stream.send_all(reply)
        await trio.sleep(0.01)  # the rest in a later read
        await stream.send_all(ws.send(RejectData(b"many!")))

    with pytest.raises(ConnectionEnded) as caught:
        await _connect(nursery, script, [])
    assert caught.value.ending.kind is EndingKind.LIMIT
    assert caught.value.ending.detail == "HTTP 429: too many!"
