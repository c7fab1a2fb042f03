"""Graceful drain: readiness off, new connections refused, every stream sent away with
its position in batches, and the drain ends within its deadline."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import trio

from tests.server.conftest import TEST_CONFIG, RawWebSocket, SseClient, start_server
from ticker.core.messages import DataMessage, Hello
from ticker.errors import CLOSE_SHUTDOWN
from ticker.model.events import Quote
from ticker.server.drain import drain


async def test_drain_sends_every_stream_away_with_its_position(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, drain_batch_size=3))
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    sockets = []
    for _ in range(7):
        ws = await RawWebSocket.connect(server.port)
        assert isinstance((await ws.messages())[0], Hello)
        await ws.subscribe("quote.BTC-USD")
        assert isinstance((await ws.messages())[0], DataMessage)
        sockets.append(ws)
    streams = []
    for _ in range(4):
        sse = await SseClient.connect(server.port, "topics=quote.*")
        assert sse.status == 200
        while (await sse.event()).get("event") != "heartbeat":  # ends the burst
            pass
        streams.append(sse)
    ready_before = server.context.ready

    with trio.fail_after(30):
        result = await drain(server.context, deadline_s=2, batch_size=3, rng=random.Random(1))

    assert (result.ended, result.cut) == (11, 0)
    assert (ready_before, server.context.ready) == (True, False)
    position = f"7-{server.hub.position.offset}"
    for ws in sockets:
        with pytest.raises(ConnectionAbortedError) as closed:
            await ws.messages()
        code, reason = closed.value.args
        assert code == CLOSE_SHUTDOWN
        assert reason.decode().endswith(f"last={position}")
        await ws.close()
    for sse in streams:
        event = await sse.event()
        assert event["event"] == "end"
        assert event["data"] == f'{{"reason":"shutdown","last":"{position}"}}'
        await sse.stream.aclose()
    assert server.context.stats.ends["shutdown"] == 11
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", server.port)


async def test_a_drain_with_no_clients_ends_at_once(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    with trio.fail_after(5):
        result = await drain(server.context, deadline_s=30, batch_size=10, rng=random.Random(1))
    assert (result.ended, result.cut) == (0, 0)
    assert result.seconds < 30


async def test_a_stream_request_that_arrives_while_draining_is_sent_away(
    nursery: trio.Nursery,
) -> None:
    """Between the drain starting and the listener closing, a request can slip in: a
    WebSocket gets the shutdown close with the position, SSE a 503."""
    server = await start_server(nursery)
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    server.context.shutting_down = True
    ws = await RawWebSocket.connect(server.port)
    with pytest.raises(ConnectionAbortedError) as closed:
        await ws.messages()
    assert closed.value.args == (CLOSE_SHUTDOWN, b"server shutdown; last=7-1")
    await ws.close()
    sse = await SseClient.connect(server.port, "topics=quote.*")
    assert sse.status == 503
    assert b"shutting down" in await sse.body()
    await sse.stream.aclose()


async def test_a_stream_with_a_write_in_progress_gets_the_rest_then_the_close(
    nursery: trio.Nursery,
) -> None:
    """At shutdown a connection whose kernel buffer is full is not cut mid-frame: its
    write (and what was queued behind it) finishes, then the close names the last
    position, which is the last message it received."""
    config = replace(TEST_CONFIG, send_buffer_bytes=4096, write_timeout_s=10)
    server = await start_server(nursery, config)
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    ws = await RawWebSocket.connect(server.port, rcvbuf=4096)
    await ws.messages()  # hello
    await ws.subscribe("quote.BTC-USD")
    await ws.messages()  # the snapshot
    for i in range(1, 1500):  # far more than the two kernel buffers hold
        await server.publish(Quote("cbx", "BTC-USD", i, 100 + i, 1, 200 + i, 1))
    (subscriber,) = server.context.fanout.subscribers()
    assert subscriber.draining  # a write is in progress: the client does not read

    async def drain_now() -> None:
        await drain(server.context, deadline_s=20, batch_size=10, rng=random.Random(1))

    nursery.start_soon(drain_now)
    offsets = []
    with trio.fail_after(30), pytest.raises(ConnectionAbortedError) as closed:
        while True:
            offsets += [m.offset for m in await ws.messages() if isinstance(m, DataMessage)]
    code, reason = closed.value.args
    assert code == CLOSE_SHUTDOWN
    assert offsets == list(range(2, server.hub.position.offset + 1))
    assert reason.decode().endswith(f"last=7-{offsets[-1]}")
    await ws.close()
