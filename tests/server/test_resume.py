"""Resume after a disconnect: no gap, no duplicate; reset when the position is unusable."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import trio

from tests.server.conftest import TEST_CONFIG, RawWebSocket, SseClient, start_server, until
from ticker.core.codec import parse_json
from ticker.core.messages import DataMessage, Reset
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle

SYMBOLS = ["BTC-USD", "ETH-USD"]


def random_event(rng: random.Random, i: int) -> NormalizedEvent:
    symbol = rng.choice(SYMBOLS)
    kind = rng.random()
    if kind < 0.4:
        return Quote("cbx", symbol, i, 100 + rng.randrange(5), 1 + rng.randrange(3), 200, 1)
    if kind < 0.7:
        return Trade("fxa", symbol, i, 100 + rng.randrange(9), 1, TakerSide.BUY, f"t{i}")
    level = (100 - rng.randrange(5), rng.randrange(4))
    return BookUpdate("itx", symbol, i, (level,), (), False)


async def publish(server: ServerHandle, rng: random.Random, count: int, start: int) -> None:
    for i in range(start, start + count):
        await server.publish(random_event(rng, i))
    target = start + count
    await until(lambda: server.context.stats.ingest_events >= target)


async def test_ws_resume_at_random_points_has_no_gap_and_no_duplicate(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    rng = random.Random(3)
    await publish(server, rng, 50, 0)
    sent = 50
    mirror = Mirror()
    offsets: list[int] = []
    position: str | None = None
    first_snapshot_offset = None
    for _ in range(12):
        client = await RawWebSocket.connect(server.port)
        await client.messages()  # hello
        await client.subscribe("quote.*", "trade.*", "book.*", "ticker.*", position=position)
        await publish(server, rng, rng.randrange(1, 60), sent)
        sent = server.context.stats.ingest_events
        # Read up to a random point between where we are and the newest message.
        start = int(position.split("-")[1]) if position else 0
        stop_at = rng.randrange(start, server.hub.position.offset + 1)
        reached = -1
        while reached < stop_at:
            for message in await client.messages():
                assert isinstance(message, DataMessage), message
                result = mirror.apply(message)
                assert isinstance(result, Applied), (result, message, position)
                if message.snapshot and first_snapshot_offset is None:
                    first_snapshot_offset = message.offset
                elif not message.snapshot:
                    offsets.append(message.offset)
                position = f"7-{message.offset}"
                reached = message.offset
        await client.close()
        await publish(server, rng, rng.randrange(0, 30), sent)  # while disconnected
        sent = server.context.stats.ingest_events
    # Catch up fully on a last connection, then compare with the hub's log.
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.subscribe("quote.*", "trade.*", "book.*", "ticker.*", position=position)
    last = server.hub.position.offset
    while not offsets or offsets[-1] < last:
        for message in await client.messages():
            assert isinstance(message, DataMessage)
            assert isinstance(mirror.apply(message), Applied)
            offsets.append(message.offset)
    await client.close()
    assert first_snapshot_offset is not None
    # Every message after the first snapshot, exactly once and in order.
    assert offsets == list(range(first_snapshot_offset + 1, last + 1))
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic, 0).data
    assert server.context.stats.resumes == 12
    assert server.context.stats.resets == 0


async def check_reset(server: ServerHandle, position: str, reason: str) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.subscribe("quote.*", position=position)
    messages = await client.messages()
    while len(messages) < 1 + len(SYMBOLS):
        messages += await client.messages()
    reset, *snapshots = messages
    assert isinstance(reset, Reset) and reset.reason == reason
    assert reset.offset == server.hub.position.offset
    mirror = Mirror()
    for snapshot in snapshots:
        assert isinstance(snapshot, DataMessage) and snapshot.snapshot
        assert isinstance(mirror.apply(snapshot), Applied)
    for topic in mirror.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic, 0).data
    await client.close()


async def test_positions_that_cannot_be_replayed_get_reset_and_snapshots(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, replay_max_messages=20))
    rng = random.Random(5)
    await publish(server, rng, 200, 0)
    await check_reset(server, "7-1", "too_old")
    await check_reset(server, "6-150", "other_epoch")
    await check_reset(server, "7-99999", "ahead")
    assert server.context.stats.resets == 3


async def read_sse_data(client: SseClient, count: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    while len(events) < count:
        event = await client.event()
        if event.get("event") in ("snapshot", "delta"):
            events.append(event)
    return events


async def test_sse_resumes_from_last_event_id_without_gap_or_duplicate(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    rng = random.Random(9)
    await publish(server, rng, 40, 0)
    client = await SseClient.connect(server.port, "topics=quote.*,trade.*,book.*,ticker.*")
    assert client.status == 200
    assert b"text/event-stream" in client.head and b"X-Accel-Buffering: no" in client.head
    assert (await client.event())["retry"] == "1000"
    hello = await client.event()
    assert hello["event"] == "hello" and "id" not in hello
    assert json.loads(hello["data"]) == {
        "version": 1,
        "epoch": 7,
        "offset": server.hub.position.offset,
        "heartbeat_s": 3600,
    }
    snapshots = await read_sse_data(client, len(server.hub.topics()))
    await publish(server, rng, 30, 40)
    first = await read_sse_data(client, 10)
    await client.close()
    await publish(server, rng, 30, 70)  # while disconnected
    last_id = first[-1]["id"]
    resumed = await SseClient.connect(
        server.port, "topics=quote.*,trade.*,book.*,ticker.*", last_event_id=last_id
    )
    await resumed.event()  # retry
    await resumed.event()  # hello
    rest = await read_sse_data(resumed, server.hub.position.offset - int(last_id.split("-")[1]))
    await resumed.close()
    mirror = Mirror()
    offsets = []
    # A burst of snapshots shares one position; only its last event carries the id.
    assert all("id" not in event for event in snapshots[:-1])
    for event in snapshots + first + rest:
        message = parse_json(event["data"], snapshot=event["event"] == "snapshot")
        assert event.get("id", f"7-{message.offset}") == f"7-{message.offset}"
        assert isinstance(mirror.apply(message), Applied)
        if not message.snapshot:
            offsets.append(message.offset)
    snapshot_offset = int(snapshots[-1]["id"].split("-")[1])
    assert offsets == list(range(snapshot_offset + 1, server.hub.position.offset + 1))
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic, 0).data


async def test_sse_query_parameter_resume_and_reset(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, replay_max_messages=10))
    await publish(server, random.Random(1), 50, 0)
    client = await SseClient.connect(server.port, "topics=quote.*&last_event_id=7-1")
    await client.event()
    await client.event()
    reset = await client.event()
    assert reset["event"] == "reset" and json.loads(reset["data"])["reason"] == "too_old"
    await client.close()


async def test_sse_bad_queries_get_400_with_the_reason(server: ServerHandle) -> None:
    cases = {
        "": "give the topics",
        "topics=qoute.*": "unknown channel",
        "topics=quote.NOPE-USD": "unknown symbol",
        "topics=quote.*&last_event_id=abc": "bad position",
        "topics=quote.*&max_rate=0": "max_rate",
        "topics=quote.*&max_rate=fast": "max_rate",
    }
    for query, reason in cases.items():
        client = await SseClient.connect(server.port, query)
        body = await client.body()
        await client.close()
        assert client.status == 400, (query, client.head)
        assert reason.encode() in body, (query, body)
    assert server.context.stats.bad_requests == len(cases)


async def test_sse_heartbeat_carries_the_position(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, heartbeat_s=15))
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    await until(lambda: server.hub.position.offset == 1)
    client = await SseClient.connect(server.port, "topics=trade.*")
    await client.event()
    await client.event()
    heartbeat = await client.event()  # no trades: the next thing is a heartbeat
    assert heartbeat["event"] == "heartbeat" and heartbeat["id"] == "7-1"
    assert json.loads(heartbeat["data"])["offset"] == 1
    await client.close()


async def test_sse_max_rate_conflates_updates_per_topic(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    client = await SseClient.connect(server.port, "topics=quote.BTC-USD&max_rate=2")
    await client.event()
    await client.event()
    await client.event()  # the first snapshot
    for i in range(100):  # 100 updates over 1 s of (virtual) time
        await server.publish(Quote("cbx", "BTC-USD", i, 101 + i, 1, 200, 1))
        await trio.sleep(0.01)
    updates = []
    with trio.move_on_after(1.0):
        while True:
            updates.append(await client.event())
    # 2 per second: about 2 in the publishing second, at most one more in the next.
    assert 1 <= len(updates) <= 4, len(updates)
    last = parse_json(updates[-1]["data"], snapshot=True)
    assert last.data == server.hub.snapshot("quote.BTC-USD", 0).data
    await client.close()
