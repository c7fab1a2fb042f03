"""Resume after a disconnect: no gap, no duplicate; reset when the position is unusable."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import trio

from tests.server.conftest import TEST_CONFIG, RawWebSocket, SseClient, start_server, until
from ticker.core.codec import parse_json
from ticker.core.messages import DataMessage, Error, Heartbeat, Reset, ServerMessage
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle
from ticker.server.subscriber import Subscriber

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
    first_burst_offset = None
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
            # Resume from the position of the last frame read whole: a data frame's
            # offset, or the heartbeat that ends a burst of snapshots (each of which
            # carries its own topic's last offset, not the burst's position).
            *messages, final = await client.messages()
            assert isinstance(final, DataMessage | Heartbeat), final
            burst = isinstance(final, Heartbeat)
            for message in messages if burst else [*messages, final]:
                assert isinstance(message, DataMessage), message
                result = mirror.apply(message)
                assert isinstance(result, Applied), (result, message, position)
                if not burst:
                    offsets.append(message.offset)
            reached = final.offset
            if burst and first_burst_offset is None:
                first_burst_offset = reached
            position = f"7-{reached}"
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
    assert first_burst_offset is not None
    # Every message after the first burst, exactly once and in order.
    assert offsets == list(range(first_burst_offset + 1, last + 1))
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data
    assert server.context.stats.resumes == 12
    assert server.context.stats.resets == 0


async def check_reset(server: ServerHandle, position: str, reason: str) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.subscribe("quote.*", position=position)
    reset, *snapshots, heartbeat = await client.messages()  # one frame
    assert isinstance(reset, Reset) and reset.reason == reason
    assert reset.offset == server.hub.position.offset
    assert isinstance(heartbeat, Heartbeat) and heartbeat.offset == reset.offset
    assert len(snapshots) == len(SYMBOLS)
    mirror = Mirror()
    for snapshot in snapshots:
        assert isinstance(snapshot, DataMessage) and snapshot.snapshot
        assert isinstance(mirror.apply(snapshot), Applied)
    for topic in mirror.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data
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
        "zstd_dictionary": 32769,
    }
    snapshots = await read_sse_data(client, len(server.hub.topics()))
    burst_end = await client.event()  # the burst's position, the first resume point
    assert burst_end["event"] == "heartbeat" and burst_end["id"] == str(server.hub.position)
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
    # A burst's snapshots carry no id; the heartbeat that ends it does.
    assert all("id" not in event for event in snapshots)
    for event in snapshots + first + rest:
        message = parse_json(event["data"], snapshot=event["event"] == "snapshot")
        assert event.get("id", f"7-{message.offset}") == f"7-{message.offset}"
        assert isinstance(mirror.apply(message), Applied)
        if not message.snapshot:
            offsets.append(message.offset)
    snapshot_offset = int(burst_end["id"].split("-")[1])
    assert offsets == list(range(snapshot_offset + 1, server.hub.position.offset + 1))
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data


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
    assert (await client.event())["event"] == "snapshot"  # the first burst
    assert (await client.event())["event"] == "heartbeat"
    for i in range(100):  # 100 updates over 1 s of (virtual) time
        await server.publish(Quote("cbx", "BTC-USD", i, 101 + i, 1, 200, 1))
        await trio.sleep(0.01)
    events = []
    with trio.move_on_after(1.0):
        while True:
            events.append(await client.event())
    # Each tick is a burst: the snapshot, then a heartbeat with its position (the id).
    assert [e["event"] for e in events] == ["snapshot", "heartbeat"] * (len(events) // 2)
    updates = events[::2]
    # 2 per second: about 2 in the publishing second, at most one more in the next.
    assert 1 <= len(updates) <= 4, len(updates)
    last = parse_json(updates[-1]["data"], snapshot=True)
    assert last.data == server.hub.snapshot("quote.BTC-USD").data
    await client.close()


# -- a resume from the oldest position of a full buffer --------------------------------

BIG_REPLAY = 20_000
BIG = replace(TEST_CONFIG, replay_max_messages=BIG_REPLAY)
ALL_TOPICS = ("quote.*", "trade.*", "book.*", "ticker.*")


async def fill_replay(server: ServerHandle, rng: random.Random) -> None:
    """Publish until the buffer is all but full, still holding offset 1 (so a client
    resuming from 7-0 can check what it gets against a mirror built from nothing)."""
    sent = server.context.stats.ingest_events
    while server.hub.position.offset < BIG_REPLAY - 300:
        await server.publish(*(random_event(rng, sent + i) for i in range(100)))
        sent += 100

        def taken(target: int = sent) -> bool:
            return server.context.stats.ingest_events >= target

        await until(taken)
    while server.hub.position.offset < BIG_REPLAY - 10:
        await publish(server, rng, 1, sent)
        sent += 1
    assert server.hub.replay.first_offset == 1


def server_side(server: ServerHandle, client: RawWebSocket) -> Subscriber:
    """The server's end of `client`'s connection."""
    port = client.stream.socket.getsockname()[1]
    for leaf in server.context.fanout.leaves:
        for subscriber in leaf.subscribers:
            if subscriber.peer == f"127.0.0.1:{port}":
                return subscriber
    raise LookupError(port)


def check_against_hub(server: ServerHandle, messages: list[DataMessage]) -> None:
    """Every message after 7-0 exactly once, in order, and the state they build is the
    hub's."""
    mirror = Mirror()
    for message in messages:
        assert isinstance(mirror.apply(message), Applied), message
    assert [m.offset for m in messages] == list(range(1, server.hub.position.offset + 1))
    assert sorted(mirror.topics()) == sorted(server.hub.topics())
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data


async def read_until_offset(client: RawWebSocket, last: int, into: list[DataMessage]) -> None:
    while not into or into[-1].offset < last:
        for message in await client.messages():
            assert isinstance(message, DataMessage), message
            into.append(message)


async def test_ws_resume_from_the_oldest_position_streams_the_whole_buffer_unprompted(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, BIG)
    await fill_replay(server, random.Random(11))
    client = await RawWebSocket.connect(server.port, rcvbuf=4 * 1024 * 1024)
    await client.messages()  # hello
    await client.subscribe(*ALL_TOPICS, position="7-0")
    received: list[DataMessage] = []
    # Nothing is published from here on: no publish or heartbeat pushes the replay on.
    with trio.fail_after(20):
        await read_until_offset(client, server.hub.position.offset, received)
    check_against_hub(server, received)
    assert server.context.stats.resumes == 1
    await client.close()


async def test_a_live_client_is_served_while_another_replays_the_whole_buffer(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, replace(BIG, send_buffer_bytes=16 * 1024))
    rng = random.Random(12)
    live = await RawWebSocket.connect(server.port)
    await live.messages()  # hello
    await live.subscribe(*ALL_TOPICS)
    live_received: list[DataMessage] = []

    async def read_live() -> None:
        while True:
            for message in await live.messages():
                assert isinstance(message, DataMessage)
                live_received.append(message)

    async with trio.open_nursery() as reading:
        reading.start_soon(read_live)
        await fill_replay(server, rng)
        # The resuming client reads nothing yet, through small buffers: its replay of
        # the whole buffer is far from written while the live client is served.
        resuming = await RawWebSocket.connect(server.port, rcvbuf=16 * 1024)
        await resuming.messages()  # hello
        await resuming.subscribe(*ALL_TOPICS, position="7-0")
        await until(lambda: server.context.stats.resumes == 1)
        replay_end = server.hub.position.offset
        replaying = server_side(server, resuming)
        assert replaying.backlog  # the replay is queued, not walked
        sent = server.context.stats.ingest_events
        for i in range(20):
            await publish(server, rng, 1, sent + i)

            def delivered(target: int = server.hub.position.offset) -> bool:
                return bool(live_received) and live_received[-1].offset >= target

            await until(delivered)
            assert replaying.backlog, "the replay finished before the live messages arrived"
        reading.cancel_scope.cancel()
    # Then it reads: the whole replay, then what was published meanwhile (held in its
    # outbox until the replay was written), no gap, no duplicate.
    received: list[DataMessage] = []
    await read_until_offset(resuming, server.hub.position.offset, received)
    assert received[-1].offset > replay_end
    check_against_hub(server, received)
    # The live client may have been conflated while the buffer filled; its state holds.
    mirror = Mirror()
    for message in live_received:
        assert isinstance(mirror.apply(message), Applied), message
    assert live_received[-1].offset == server.hub.position.offset
    for topic in server.hub.topics():
        assert mirror.data(topic) == server.hub.snapshot(topic).data
    await resuming.close()
    await live.close()


async def test_sse_resume_from_the_oldest_position_streams_the_whole_buffer_unprompted(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, BIG)
    await fill_replay(server, random.Random(13))
    client = await SseClient.connect(server.port, "topics=" + ",".join(ALL_TOPICS), "7-0")
    assert client.status == 200
    await client.event()  # retry
    await client.event()  # hello
    received: list[DataMessage] = []
    with trio.fail_after(30):
        for event in await read_sse_data(client, server.hub.position.offset):
            message = parse_json(event["data"], snapshot=event["event"] == "snapshot")
            assert event["id"] == f"7-{message.offset}"
            received.append(message)
    check_against_hub(server, received)
    await client.close()


# -- the per-address resume rate limit -----------------------------------------------------

LIMITED = replace(TEST_CONFIG, resume_burst_per_ip=2, resume_rate_per_ip_per_s=0.5)


async def resume_ws(
    server: ServerHandle, position: str
) -> tuple[RawWebSocket, list[ServerMessage]]:
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.subscribe("quote.*", position=position)
    return client, await client.messages()


async def test_resumes_over_the_per_address_limit_get_4429_and_429(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, LIMITED)
    rng = random.Random(14)
    await publish(server, rng, 40, 0)
    position = f"7-{server.hub.position.offset - 20}"
    kept = []
    for _ in range(2):  # the burst
        client, messages = await resume_ws(server, position)
        assert all(isinstance(m, DataMessage) for m in messages), messages
        kept.append(client)
    client, messages = await resume_ws(server, position)
    [error] = messages
    assert isinstance(error, Error) and error.code == 4429
    assert "too many resumes" in error.message
    # The connection stays: a subscribe without a position is served at once.
    await client.subscribe("trade.*")
    *snapshots, heartbeat = await client.messages()
    assert snapshots and all(isinstance(m, DataMessage) and m.snapshot for m in snapshots)
    assert isinstance(heartbeat, Heartbeat)
    # SSE with Last-Event-ID (or last_event_id) gets an HTTP 429 with the reason.
    sse = await SseClient.connect(server.port, "topics=quote.*", last_event_id=position)
    body = await sse.body()
    assert sse.status == 429 and b"too many resumes" in body
    await sse.close()
    stats = server.context.stats
    assert (stats.resumes, stats.resumes_limited) == (2, 2)
    # Subscribing without a position is never limited.
    fresh = await SseClient.connect(server.port, "topics=quote.*")
    assert fresh.status == 200
    await fresh.close()
    # Tokens come back at resume_rate_per_ip_per_s (mock time: refill the whole burst).
    await trio.sleep(10.0)
    sse = await SseClient.connect(server.port, f"topics=quote.*&last_event_id={position}")
    assert sse.status == 200
    await sse.close()
    assert (stats.resumes_limited, stats.bad_requests) == (2, 2)
    for each in (*kept, client):
        await each.close()


async def test_a_resume_rate_of_zero_turns_the_limit_off(nursery: trio.Nursery) -> None:
    server = await start_server(
        nursery, replace(LIMITED, resume_burst_per_ip=1, resume_rate_per_ip_per_s=0)
    )
    await publish(server, random.Random(15), 20, 0)
    assert server.context.resume_limit is None
    for _ in range(4):
        client, messages = await resume_ws(server, "7-5")
        assert all(isinstance(m, DataMessage) for m in messages), messages
        await client.close()
    assert server.context.stats.resumes_limited == 0


async def test_a_later_subs_position_is_ignored_and_takes_no_resume(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, replace(LIMITED, resume_burst_per_ip=1))
    await publish(server, random.Random(16), 40, 0)
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.subscribe("quote.*")
    await client.messages()  # its burst
    for pattern in ("trade.BTC-USD", "book.*", "ticker.ETH-USD"):
        # Not refused, not rate-limited: snapshots of the new topics, then the position.
        await client.subscribe(pattern, position="7-3")
        *snapshots, heartbeat = await client.messages()
        assert snapshots and all(isinstance(m, DataMessage) and m.snapshot for m in snapshots)
        assert all(isinstance(m, DataMessage) and m.offset > 0 for m in snapshots)
        assert isinstance(heartbeat, Heartbeat)
        assert heartbeat.offset == server.hub.position.offset
    stats = server.context.stats
    assert (stats.resumes, stats.resumes_limited, stats.bad_requests) == (0, 0, 0)
    await client.close()


async def test_sse_last_event_id_header_wins_over_the_query_parameter(
    nursery: trio.Nursery,
) -> None:
    # A page opens the stream with ?last_event_id=<snapshot position>; on reconnect the
    # browser adds the Last-Event-ID header with the last id it saw, to the same URL.
    # The header is the newer position: it wins.
    server = await start_server(nursery, replace(TEST_CONFIG, replay_max_messages=10))
    await publish(server, random.Random(17), 50, 0)
    newest = server.hub.position.offset
    client = await SseClient.connect(
        server.port, "topics=quote.*,trade.*,book.*,ticker.*&last_event_id=7-1", f"7-{newest - 2}"
    )
    await client.event()  # retry
    await client.event()  # hello
    replayed = await read_sse_data(client, 2)
    assert [json.loads(e["data"])["offset"] for e in replayed] == [newest - 1, newest]
    assert [e["id"] for e in replayed] == [f"7-{newest - 1}", f"7-{newest}"]
    await client.close()
    # The query parameter alone (7-1, long evicted) would have been a reset.
    alone = await SseClient.connect(server.port, "topics=quote.*&last_event_id=7-1")
    await alone.event()
    await alone.event()
    assert (await alone.event())["event"] == "reset"
    await alone.close()
    assert (server.context.stats.resumes, server.context.stats.resets) == (1, 1)
