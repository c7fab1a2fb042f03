"""Slow consumers: eviction, conflation, and that nobody else is hurt."""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
from dataclasses import replace
from functools import partial

import trio
import trio.lowlevel
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.server.conftest import (
    TEST_CONFIG,
    RawWebSocket,
    SseClient,
    live_tasks,
    receive,
    start_server,
    until,
)
from ticker.core.codec import encode_client
from ticker.core.messages import DataMessage, Subscribe, Unsubscribe
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import BookUpdate, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle

SLOW = replace(
    TEST_CONFIG, outbox_max_bytes=16 * 1024, send_buffer_bytes=16 * 1024, write_timeout_s=0.5
)


async def reader(
    ws: WebSocketConnection, final_seq: int, results: list[Mirror], topic: str
) -> None:
    """Subscribe, then read until `topic` reaches `final_seq`; each message must apply."""
    await ws.get_message()
    await ws.send_message(encode_client(Subscribe((topic,))))
    mirror = Mirror()
    while mirror.seq(topic) < final_seq:
        for message in await receive(ws):
            if isinstance(message, DataMessage):
                assert isinstance(mirror.apply(message), Applied), message
    results.append(mirror)


def all_subscribed(server: ServerHandle, count: int) -> bool:
    subscribers = list(server.context.fanout.subscribers())
    return len(subscribers) == count and all(s.patterns for s in subscribers)


async def test_stuck_client_is_evicted_while_50_others_get_every_trade_in_order(
    nursery: trio.Nursery,
) -> None:
    # Every reader must see every trade from seq 1: trades are never conflated, and a
    # missing or repeated one would be refused by its mirror.
    server = await start_server(nursery, SLOW)
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    stuck = await RawWebSocket.connect(server.port, rcvbuf=4096)
    await stuck.messages()
    await stuck.subscribe("trade.BTC-USD")
    trades = 1500
    results: list[Mirror] = []
    async with trio.open_nursery() as clients:
        for _ in range(50):

            async def one() -> None:
                async with open_websocket_url(url, subprotocols=["ticker.v1"]) as ws:
                    await reader(ws, trades, results, "trade.BTC-USD")

            clients.start_soon(one)
        await until(lambda: all_subscribed(server, 51))
        for i in range(trades):
            side = TakerSide.BUY if i % 2 else TakerSide.SELL
            await server.publish(Trade("itx", "BTC-USD", i, 10_000 + i, 1 + i, side, f"id-{i}"))
    assert len(results) == 50
    final = server.hub.snapshot("trade.BTC-USD")
    assert all(m.data("trade.BTC-USD") == final.data for m in results)
    assert all(m.seq("trade.BTC-USD") == trades for m in results)
    assert server.context.stats.messages_sent >= 50 * trades
    ends = server.context.stats.ends
    assert ends["slow_outbox"] + ends["slow_write"] == 1
    await stuck.close()
    server.stop()


async def test_stalled_writes_evict_after_the_write_timeout(nursery: trio.Nursery) -> None:
    # Quotes conflate, so the outbox never overflows: only the write deadline can act.
    server = await start_server(nursery, SLOW)
    stuck = await RawWebSocket.connect(server.port, rcvbuf=4096)
    await stuck.messages()
    await stuck.subscribe("book.*")
    await until(lambda: all_subscribed(server, 1))
    # Small batches, each waited for: every batch makes one write, so the kernel buffers
    # fill however busy the machine is (a conflated topic writes once per batch).
    stats = server.context.stats
    for i in range(50_000):
        levels = tuple((10_000 + j, 1 + i) for j in range(20))
        await server.publish(BookUpdate("cbx", "BTC-USD", i, levels, (), False))
        if i % 10 == 9:
            await until(partial(lambda n: stats.ingest_events >= n, i + 1))
            if stats.ends["slow_write"]:
                break
    await until(lambda: stats.ends["slow_write"] == 1)
    assert len(server.context.fanout) == 0
    await stuck.close()
    server.stop()


async def test_a_slow_reader_that_keeps_up_with_conflation_is_not_evicted(
    nursery: trio.Nursery,
) -> None:
    config = replace(
        TEST_CONFIG, outbox_max_bytes=2048, send_buffer_bytes=4096, write_timeout_s=5.0
    )
    server = await start_server(nursery, config)
    symbols = ["BTC-USD", "ETH-USD", "SOL-USD"]
    client = await RawWebSocket.connect(server.port, rcvbuf=4096)
    await client.messages()
    await client.subscribe("quote.*")
    await until(lambda: all_subscribed(server, 1))
    mirror = Mirror()

    async def publish() -> None:
        for i in range(3000):
            symbol = symbols[i % 3]
            await server.publish(Quote("cbx", symbol, i, 100 + i, 1 + i % 7, 10_000, 1))

    async with trio.open_nursery() as inner:
        inner.start_soon(publish)
        done = False
        while not done:
            with trio.move_on_after(1.0) as quiet:
                for message in await client.messages():
                    if isinstance(message, DataMessage):
                        assert isinstance(mirror.apply(message), Applied)
                await trio.sleep(0.002)  # a slow reader
            done = quiet.cancelled_caught
    for symbol in symbols:
        topic = f"quote.{symbol}"
        assert mirror.data(topic) == server.hub.snapshot(topic).data
    assert server.context.stats.conflations > 0
    assert not server.context.stats.ends["slow_outbox"]
    assert not server.context.stats.ends["slow_write"]
    await client.close()
    server.stop()


async def test_silent_peer_is_closed_after_the_ping_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    config = replace(TEST_CONFIG, ping_interval_s=5.0, ping_timeout_s=5.0)
    server = await start_server(nursery, config)
    silent = await RawWebSocket.connect(server.port)
    await until(lambda: server.context.stats.ends["ping_timeout"] == 1, timeout_s=60)
    opcode, _ = await silent.frame()  # the hello, then the ping it never answered
    assert opcode == 0x2
    opcode, payload = await silent.frame()
    assert (opcode, payload) == (0x9, b"ticker")
    await silent.close()
    server.stop()


async def test_a_client_that_stops_reading_a_quiet_stream_is_evicted_at_the_ping_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # Data keeps coming, far too little to fill the kernel buffers, so no write ever
    # blocks: the unanswered ping is what finds this slow consumer, and it counts as one.
    config = replace(TEST_CONFIG, ping_interval_s=5.0, ping_timeout_s=5.0)
    server = await start_server(nursery, config)
    stuck = await RawWebSocket.connect(server.port)
    await stuck.subscribe("quote.BTC-USD")
    stats = server.context.stats
    for i in range(30):
        await server.publish(Quote("cbx", "BTC-USD", i, 100 + i, 1, 10_000, 1))
        await trio.sleep(0.5)
    await until(lambda: len(server.context.fanout) == 0, timeout_s=60)
    assert stats.ends["slow_ping"] == 1 and stats.ends["ping_timeout"] == 0
    frames = []
    with contextlib.suppress(EOFError):
        while True:
            frames.append(await stuck.frame())
    opcode, payload = frames[-1]
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 4008
    assert b"slow_ping" in payload
    await stuck.close()
    server.stop()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_task_socket_or_memory_leak_after_1000_connect_disconnect_cycles(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))

    async def cycle(i: int) -> None:
        if i % 2:
            client = await RawWebSocket.connect(server.port)
            await client.subscribe("quote.*")
            await client.messages()
            await client.messages()
            await client.close()
        else:
            sse = await SseClient.connect(server.port, "topics=quote.*")
            assert (await sse.event()).get("retry") == "1000"
            await sse.event()  # hello
            await sse.event()  # snapshot
            await sse.close()

    async def settle() -> None:
        await until(lambda: len(server.context.fanout) == 0)
        await until(lambda: sum(server.context.stats.connections_open.values()) == 0)
        for _ in range(10):
            await trio.lowlevel.checkpoint()
        gc.collect()

    for i in range(100):  # warm caches and allocator pools
        await cycle(i)
    await settle()
    tasks_before = live_tasks()
    fds_before = open_fds()
    tracemalloc.start()
    memory_before = tracemalloc.get_traced_memory()[0]
    for i in range(1000):
        await cycle(i)
    await settle()
    memory_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert (
        server.context.stats.connections_total["ws"] + server.context.stats.connections_total["sse"]
        == 1100
    )
    assert live_tasks() == tasks_before
    assert open_fds() == fds_before
    # Well under 100 bytes per cycle: nothing per connection survives it.
    assert memory_after - memory_before < 100_000, memory_after - memory_before
    server.stop()


async def test_subscribe_churn_from_a_client_that_does_not_read_stays_bounded(
    nursery: trio.Nursery,
) -> None:
    """A later sub queues no burst (its new topics conflate in the outbox), so churn from
    a client that never reads holds at most the outbox bound and never grows a queue."""
    # A long write timeout: only the outbox bound can act.
    server = await start_server(nursery, replace(SLOW, write_timeout_s=60))
    for i, symbol in enumerate(["BTC-USD", "ETH-USD", "SOL-USD"]):
        await server.publish(Quote("cbx", symbol, i, 100 + i, 1, 10_000, 1))
    await until(lambda: server.context.stats.ingest_events >= 3)
    client = await RawWebSocket.connect(server.port, rcvbuf=4096)
    await client.subscribe("quote.*")
    unsub = encode_client(Unsubscribe(("quote.BTC-USD",)))
    stats = server.context.stats
    with contextlib.suppress(trio.BrokenResourceError):  # evicted while still sending
        for _ in range(2_000):
            await client.subscribe("quote.BTC-USD")
            await client.send_binary(unsub)
            if stats.ends["slow_outbox"]:
                break
    for subscriber in server.context.fanout.subscribers():
        assert len(subscriber.backlog) <= 1
        assert subscriber.outbox.bytes + subscriber.outbox.held <= subscriber.outbox.max_bytes
    assert stats.internal_errors == 0
    await client.close()
    server.stop()
