"""The binary WebSocket endpoint against real clients on 127.0.0.1."""

from __future__ import annotations

import msgpack
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.server.conftest import RawWebSocket, receive
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import DataMessage, Error, Heartbeat, Hello, Subscribe, Unsubscribe
from ticker.core.mirror import Applied, Mirror
from ticker.core.position import Position
from ticker.model.events import Quote, TakerSide, Trade
from ticker.server.process import ServerHandle


def quote(i: int, symbol: str = "BTC-USD") -> Quote:
    return Quote("cbx", symbol, 0, 100 + i, 1, 10_000, 1)


def url(server: ServerHandle) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/ws"


async def test_subscribe_gets_hello_then_snapshot_then_deltas(server: ServerHandle) -> None:
    await server.publish(quote(0))
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        (hello,) = await receive(ws)
        assert isinstance(hello, Hello) and hello.epoch == 7 and hello.compression is None
        assert hello.zstd_dictionary == 32769  # named even when not compressing
        await ws.send_message(encode_client(Subscribe(("quote.*",))))
        snapshot, heartbeat = await receive(ws)
        assert isinstance(snapshot, DataMessage) and snapshot.snapshot
        assert snapshot.data == {"bid": 100, "bid_size": 1, "ask": 10_000, "ask_size": 1}
        # The burst ends with a heartbeat at the position it reflects.
        assert isinstance(heartbeat, Heartbeat)
        assert Position(heartbeat.epoch, heartbeat.offset) == server.hub.position
        mirror = Mirror()
        assert mirror.apply(snapshot) == Applied(1)
        for i in range(1, 20):
            await server.publish(quote(i))
        received = 0
        while received < 19:
            for message in await receive(ws):
                assert isinstance(message, DataMessage)
                assert isinstance(mirror.apply(message), Applied)
                received += 1
        assert mirror.data("quote.BTC-USD") == server.hub.snapshot("quote.BTC-USD").data


async def test_unsubscribe_stops_a_topic(server: ServerHandle) -> None:
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        await ws.get_message()
        await ws.send_message(encode_client(Subscribe(("quote.BTC-USD", "quote.ETH-USD"))))
        await ws.get_message()  # two empty snapshots
        await ws.send_message(encode_client(Unsubscribe(("quote.BTC-USD",))))
        await server.publish(quote(1, "BTC-USD"))
        await server.publish(quote(1, "ETH-USD"))
        messages = await receive(ws)
        assert [m.topic for m in messages if isinstance(m, DataMessage)] == ["quote.ETH-USD"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\xc1", "invalid msgpack"),
        (msgpack.packb(["dance", []]), "unknown command"),
        (encode_client(Subscribe(("qoute.BTC-USD",))), "unknown channel"),
        (encode_client(Subscribe(("quote.NOPE-USD",))), "unknown symbol"),
        (encode_client(Subscribe(("quote.*",), "yesterday")), "bad position"),
        (encode_client(Subscribe(tuple(f"quote.X{i}-USD" for i in range(1)))), "unknown symbol"),
    ],
)
async def test_bad_commands_get_an_error_and_the_connection_lives_on(
    server: ServerHandle, payload: bytes, needle: str
) -> None:
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        await ws.get_message()
        await ws.send_message(payload)
        (error,) = await receive(ws)
        assert isinstance(error, Error) and error.code == 4400 and needle in error.message
        await ws.send_message(encode_client(Subscribe(("quote.BTC-USD",))))
        snapshot, heartbeat = await receive(ws)
        assert isinstance(snapshot, DataMessage) and isinstance(heartbeat, Heartbeat)
    assert server.context.stats.bad_requests == 1


async def test_text_frames_are_refused(server: ServerHandle) -> None:
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        await ws.get_message()
        await ws.send_message("subscribe please")
        (error,) = await receive(ws)
        assert isinstance(error, Error) and "binary" in error.message


async def test_too_many_subscriptions_is_a_limit_error(nursery: trio.Nursery) -> None:
    from dataclasses import replace

    from tests.server.conftest import TEST_CONFIG, start_server

    server = await start_server(nursery, replace(TEST_CONFIG, max_subscriptions=2))
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        await ws.get_message()
        await ws.send_message(encode_client(Subscribe(("quote.*", "trade.*", "book.*"))))
        (error,) = await receive(ws)
        assert isinstance(error, Error) and error.code == 4429
    server.stop()


async def test_oversized_frame_closes_with_1009(server: ServerHandle) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.send_binary(b"\x00" * (server.context.config.max_frame_bytes + 1))
    with pytest.raises(ConnectionAbortedError) as info:
        await client.messages()
    assert info.value.args[0] == 1009
    await client.close()


async def test_a_message_of_endless_empty_fragments_closes_with_1009(
    server: ServerHandle,
) -> None:
    bound = server.context.config.max_message_fragments
    client = await RawWebSocket.connect(server.port)
    bystander = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await bystander.messages()
    await client.send_binary(b"", opcode=0x2, fin=False)
    empty = b"\x00\x80\0\0\0\0"  # a masked, non-final, empty continuation frame
    await client.stream.send_all(empty * (bound - 1))  # the bound: still open
    await client.stream.send_all(empty * 10_000)
    with pytest.raises(ConnectionAbortedError) as info:
        await client.messages()
    assert info.value.args[0] == 1009
    assert b"fragments" in info.value.args[1]
    await client.close()
    # Others are served on.
    await bystander.subscribe("quote.BTC-USD")
    snapshot, _ = await bystander.messages()
    assert isinstance(snapshot, DataMessage) and snapshot.topic == "quote.BTC-USD"
    assert server.context.stats.ends["protocol_error"] == 1
    await bystander.close()


async def http_exchange(server: ServerHandle, request: bytes) -> bytes:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(request)
        response = b""
        while chunk := await stream.receive_some():
            response += chunk
    return response


async def test_handshake_without_our_subprotocol_is_refused(server: ServerHandle) -> None:
    # (trio-websocket's client leaks its socket on ConnectionRejected, so a raw request.)
    response = await http_exchange(
        server,
        b"GET /v1/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 400")
    assert b"ticker.v1" in response


async def test_the_zstd_dictionary_is_served_on_the_same_port(server: ServerHandle) -> None:
    from ticker.core.compression import dictionary_bytes

    response = await http_exchange(
        server, b"GET /v1/zstd-dictionary/32769 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"immutable" in head.lower()
    assert body == dictionary_bytes()


async def test_unknown_paths_get_404(server: ServerHandle) -> None:
    response = await http_exchange(server, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 404")


async def test_trades_are_never_conflated_and_arrive_in_order(server: ServerHandle) -> None:
    async with open_websocket_url(url(server), subprotocols=["ticker.v1"]) as ws:
        await ws.get_message()
        await ws.send_message(encode_client(Subscribe(("trade.BTC-USD",))))
        await ws.get_message()
        for i in range(50):
            await server.publish(Trade("fxa", "BTC-USD", i, 100 + i, 1, TakerSide.BUY, str(i)))
        prices: list[int] = []
        while len(prices) < 50:
            for m in await receive(ws):
                assert isinstance(m, DataMessage)
                prices.append(m.data["price"])
        assert prices == [100 + i for i in range(50)]


async def test_zstd_subprotocol_sends_frames_compressed_with_the_shipped_dictionary(
    server: ServerHandle,
) -> None:
    from ticker.core.compression import (
        DICTIONARY_ID,
        FrameCompressor,
        FrameDecompressor,
        load_dictionary,
    )

    decompressor = FrameDecompressor(load_dictionary())
    sub_quotes = encode_client(Subscribe(("quote.*",)))
    await server.publish(quote(0))
    protocols = ["ticker.v1.zstd", "ticker.v1"]
    async with open_websocket_url(url(server), subprotocols=protocols) as ws:
        assert ws.subprotocol == "ticker.v1.zstd"

        async def next_messages() -> list[object]:
            frame = await ws.get_message()
            assert isinstance(frame, bytes)
            return list(decode_frame(decompressor.decompress(frame)))

        (hello,) = await next_messages()
        assert isinstance(hello, Hello) and hello.compression == "zstd"
        assert hello.zstd_dictionary == DICTIONARY_ID
        # Commands stay plain msgpack: a compressed one is not understood.
        await ws.send_message(FrameCompressor(load_dictionary()).compress(sub_quotes))
        (error,) = await next_messages()
        assert isinstance(error, Error) and "invalid msgpack" in error.message
        await ws.send_message(sub_quotes)
        snapshot, heartbeat = await next_messages()
        assert isinstance(snapshot, DataMessage) and snapshot.snapshot
        assert isinstance(heartbeat, Heartbeat)
        await server.publish(quote(1))
        (delta,) = await next_messages()
        assert isinstance(delta, DataMessage) and delta.data == {"bid": 101}
