"""What a client may start from and resume from: first messages and reset units.

A topic's first message is a snapshot, so a strict mirror never needs a special case;
a reset travels with its snapshots as one unit (one WebSocket frame; on SSE one `id:`),
so a client cut anywhere resumes from a position it holds the state of.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import trio

from tests.server.conftest import TEST_CONFIG, RawWebSocket, SseClient, start_server, until
from ticker.core.codec import decode_frame, parse_json
from ticker.core.compression import FrameDecompressor, load_dictionary
from ticker.core.messages import DataMessage, Heartbeat, Hello, Reset, ServerMessage
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle

ALL = ("quote.*", "trade.*", "book.*", "ticker.*")


def event(rng: random.Random, i: int) -> NormalizedEvent:
    symbol = rng.choice(["BTC-USD", "ETH-USD", "SOL-USD"])
    kind = rng.random()
    if kind < 0.4:
        return Quote("cbx", symbol, i, 100 + rng.randrange(5), 1 + rng.randrange(3), 200, 1)
    if kind < 0.7:
        return Trade("fxa", symbol, i, 100 + rng.randrange(9), 1, TakerSide.BUY, f"t{i}")
    return BookUpdate("itx", symbol, i, ((100 - rng.randrange(5), rng.randrange(4)),), (), False)


async def publish(server: ServerHandle, *events: NormalizedEvent) -> None:
    target = server.context.stats.ingest_events + len(events)
    for item in events:
        await server.publish(item)
    await until(lambda: server.context.stats.ingest_events >= target)


async def read_until(client: RawWebSocket, offset: int, mirror: Mirror) -> list[DataMessage]:
    """Apply every data message up to `offset` to a strict mirror; return them."""
    seen: list[DataMessage] = []
    while not seen or seen[-1].offset < offset:
        for message in await client.messages():
            assert isinstance(message, DataMessage), message
            assert mirror.apply(message) == Applied(message.seq), message
            seen.append(message)
    return seen


def assert_mirror_equals_hub(mirror: Mirror, server: ServerHandle) -> None:
    assert sorted(mirror.topics()) == sorted(server.hub.topics())
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data


async def test_a_topic_born_after_subscribing_starts_with_a_snapshot(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.subscribe(*ALL)  # before any trade: no topic has state, no burst
    fanout = server.context.fanout
    await until(lambda: any(s.patterns for s in fanout.subscribers()))  # subscribed
    await publish(server, Trade("fxa", "LINK-USD", 1, 15, 2, TakerSide.SELL, "t1"))
    mirror = Mirror()
    first = await read_until(client, server.hub.position.offset, mirror)
    assert sorted((m.topic, m.seq, m.snapshot) for m in first) == [
        ("ticker.LINK-USD", 1, True),
        ("trade.LINK-USD", 1, True),
    ]
    rng = random.Random(1)
    await publish(server, *(event(rng, i) for i in range(60)))
    later = await read_until(client, server.hub.position.offset, mirror)
    # Every topic's first message is a snapshot at seq 1 holding its whole state.
    firsts = {m.topic: m for m in reversed(first + later)}
    assert all(m.snapshot and m.seq == 1 for m in firsts.values())
    assert_mirror_equals_hub(mirror, server)
    await client.close()


async def test_resuming_from_offset_0_replays_each_topic_from_its_first_snapshot(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    rng = random.Random(2)
    await publish(server, *(event(rng, i) for i in range(80)))
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.subscribe(*ALL, position="7-0")
    mirror = Mirror()
    replayed = await read_until(client, server.hub.position.offset, mirror)
    assert [m.offset for m in replayed] == list(range(1, server.hub.position.offset + 1))
    assert_mirror_equals_hub(mirror, server)
    assert server.context.stats.resumes == 1 and server.context.stats.resets == 0
    await client.close()


async def busy_server(nursery: trio.Nursery) -> ServerHandle:
    """A server whose replay buffer no longer holds offset 1; quotes and books only."""
    server = await start_server(nursery, replace(TEST_CONFIG, replay_max_messages=20))
    rng = random.Random(3)
    events = [event(rng, i) for i in range(200)]
    await publish(server, *(e for e in events if not isinstance(e, Trade)))
    return server


@pytest.mark.parametrize("zstd", [False, True])
async def test_a_reset_and_all_its_snapshots_travel_in_one_websocket_frame(
    nursery: trio.Nursery, zstd: bool
) -> None:
    server = await busy_server(nursery)
    decompressor = FrameDecompressor(load_dictionary()) if zstd else None

    async def frame(client: RawWebSocket) -> list[ServerMessage]:
        opcode, payload = await client.frame()
        assert opcode == 0x2
        return decode_frame(decompressor.decompress(payload) if decompressor else payload)

    protocol = "ticker.v1.zstd" if zstd else "ticker.v1"
    for patterns, expected in ((ALL, len(server.hub.topics())), (("trade.*",), 0)):
        client = await RawWebSocket.connect(server.port, protocol=protocol)
        (hello,) = await frame(client)
        assert isinstance(hello, Hello)
        await client.subscribe(*patterns, position="7-1")
        reset, *snapshots, heartbeat = await frame(client)  # one frame: all of it or none
        assert reset == Reset(7, server.hub.position.offset, "too_old")
        # The frame ends with a heartbeat at the reset's position: the unit's resume point.
        assert isinstance(heartbeat, Heartbeat)
        assert (heartbeat.epoch, heartbeat.offset) == (7, reset.offset)
        assert len(snapshots) == expected  # trade.*: nothing matches, the reset alone
        mirror = Mirror()
        for snapshot in snapshots:
            assert isinstance(snapshot, DataMessage) and snapshot.snapshot
            # Each carries its own topic's last offset, at or below the reset's.
            assert snapshot == server.hub.current_snapshot(snapshot.topic).message
            assert snapshot.offset <= reset.offset
            assert isinstance(mirror.apply(snapshot), Applied)
        if expected:
            assert_mirror_equals_hub(mirror, server)
            assert min(s.offset for s in snapshots if isinstance(s, DataMessage)) < reset.offset
        await client.close()
    assert server.context.stats.resets == 2


async def test_an_sse_reset_and_its_snapshots_have_no_id_and_a_heartbeat_ends_the_burst(
    nursery: trio.Nursery,
) -> None:
    server = await busy_server(nursery)
    position = f"7-{server.hub.position.offset}"
    client = await SseClient.connect(server.port, "topics=quote.*,book.*", last_event_id="7-1")
    assert (await client.event())["retry"] == "1000"
    assert (await client.event())["event"] == "hello"
    reset = await client.event()
    assert reset["event"] == "reset" and "id" not in reset
    assert json.loads(reset["data"])["reason"] == "too_old"
    *events, heartbeat = [await client.event() for _ in range(len(server.hub.topics()) + 1)]
    assert [e["event"] for e in events] == ["snapshot"] * len(events)
    assert all("id" not in e for e in events)
    # The burst's position is the heartbeat's id: each snapshot's offset is its topic's.
    assert heartbeat["event"] == "heartbeat" and heartbeat["id"] == position
    assert json.loads(heartbeat["data"])["offset"] == server.hub.position.offset
    mirror = Mirror()
    for item in events:
        message = parse_json(item["data"], snapshot=True)
        assert message == server.hub.current_snapshot(message.topic).message
        assert isinstance(mirror.apply(message), Applied)
    assert_mirror_equals_hub(mirror, server)
    await client.close()
    # With nothing to snapshot, the unit is the reset and the heartbeat that carries the id.
    alone = await SseClient.connect(server.port, "topics=trade.*", last_event_id="7-1")
    await alone.event()
    await alone.event()
    reset = await alone.event()
    assert reset["event"] == "reset" and "id" not in reset
    heartbeat = await alone.event()
    assert heartbeat["event"] == "heartbeat" and heartbeat["id"] == position
    await alone.close()


async def test_no_heartbeat_goes_out_before_the_first_sub_is_answered(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # A heartbeat written before the sub was taken would precede its replay: a client
    # resuming from it after a cut would skip what the replay carried.
    server = await start_server(nursery, replace(TEST_CONFIG, heartbeat_s=15))
    await publish(server, *(Quote("cbx", "BTC-USD", i, 100 + i, 1, 200, 1) for i in range(5)))
    client = await RawWebSocket.connect(server.port)
    assert isinstance((await client.messages())[0], Hello)
    await trio.sleep(40)  # two heartbeat periods with no subscription
    await client.subscribe("quote.*", position="7-2")
    received = await client.messages()
    while not isinstance(received[-1], Heartbeat):  # now subscribed: heartbeats come
        received += await client.messages()
    *replayed, heartbeat = received
    assert isinstance(heartbeat, Heartbeat)
    assert [m.offset for m in replayed if isinstance(m, DataMessage)] == [3, 4, 5]
    assert (heartbeat.epoch, heartbeat.offset) == (7, 5)
    await client.close()


async def test_a_burst_resumes_from_its_heartbeat_not_from_its_snapshots(
    nursery: trio.Nursery,
) -> None:
    # A quiet topic's snapshot carries its last change, long gone from the replay
    # buffer; the burst's resume point is the heartbeat that ends it.
    server = await start_server(nursery, replace(TEST_CONFIG, replay_max_messages=30))
    await publish(server, Quote("cbx", "ETH-USD", 0, 50, 1, 60, 1))
    await publish(server, *(Quote("cbx", "BTC-USD", i, 100 + i, 1, 900, 1) for i in range(60)))
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.subscribe("quote.*")
    quiet, busy, heartbeat = await client.messages()
    assert isinstance(quiet, DataMessage) and (quiet.topic, quiet.seq, quiet.offset) == (
        "quote.ETH-USD",
        1,
        1,
    )
    assert isinstance(busy, DataMessage) and busy.offset == server.hub.position.offset
    assert isinstance(heartbeat, Heartbeat) and heartbeat.offset == server.hub.position.offset
    assert quiet.offset < server.hub.replay.first_offset  # resuming from it: a reset
    await client.close()
    burst_position = f"7-{heartbeat.offset}"
    await publish(server, *(Quote("cbx", "BTC-USD", i, 200 + i, 1, 900, 1) for i in range(5)))
    mirror = Mirror()
    for message in (quiet, busy):
        mirror.apply(message)
    resumed = await RawWebSocket.connect(server.port)
    await resumed.messages()  # hello
    await resumed.subscribe("quote.*", position=burst_position)
    replayed = await read_until(resumed, server.hub.position.offset, mirror)
    assert [m.offset for m in replayed] == list(
        range(heartbeat.offset + 1, server.hub.position.offset + 1)
    )
    assert_mirror_equals_hub(mirror, server)
    await resumed.close()
    # SSE: the heartbeat carries the burst's id; Last-Event-ID resumes from it alike.
    sse = await SseClient.connect(server.port, "topics=quote.*")
    await sse.event()  # retry
    await sse.event()  # hello
    events = [await sse.event() for _ in range(3)]
    assert [e["event"] for e in events] == ["snapshot", "snapshot", "heartbeat"]
    assert [json.loads(e["data"])["offset"] for e in events[:2]] == [1, server.hub.position.offset]
    assert events[2]["id"] == str(server.hub.position)
    await sse.close()
    start = server.hub.position.offset
    await publish(server, *(Quote("cbx", "BTC-USD", i, 300 + i, 1, 900, 1) for i in range(3)))
    again = await SseClient.connect(server.port, "topics=quote.*", last_event_id=events[2]["id"])
    await again.event()
    await again.event()
    deltas = [await again.event() for _ in range(3)]
    assert [json.loads(e["data"])["offset"] for e in deltas] == [start + 1, start + 2, start + 3]
    assert server.context.stats.resets == 0
    await again.close()
