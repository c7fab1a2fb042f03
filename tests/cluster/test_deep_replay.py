"""A resume older than an edge's replay buffer but still in the cluster log is served from
Redis, with no reset, no gap and no repeat; older than the log, it gets a reset and
fresh snapshots in one unit."""

from __future__ import annotations

import random
from dataclasses import replace

import coredis
import trio

from tests.cluster.test_roles import (
    ALL_TOPICS,
    Follower,
    cluster_config,
    leading,
    market,
    publish,
    start,
)
from tests.redis_server import RedisServer
from tests.server.conftest import RawWebSocket, until
from ticker.core.messages import DataMessage, Reset
from ticker.core.position import Position
from ticker.model.events import TakerSide, Trade

TOPICS = ALL_TOPICS
DEADLINE_S = 60


async def test_a_resume_older_than_the_edges_buffer_is_served_from_the_log(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "deep1")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge", replay_max_messages=50))
            rng = random.Random(5)
            await publish(hub, market(rng, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*TOPICS)
            await client.read_until(hub.hub.position.offset)
            await client.ws.close()
            assert client.position is not None
            held = client.position
            await publish(hub, market(rng, 600, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            assert edge.hub.replay.first_offset > held.offset + 1  # out of the edge's memory
            client.ws = await RawWebSocket.connect(edge.port)
            await client.ws.subscribe(*TOPICS, position=str(held))
            await client.read_until(hub.hub.position.offset)
            assert client.resets == []
            assert edge.context.stats.deep_resumes == 1
            # Live messages published while it replays follow with no gap.
            await publish(hub, market(rng, 100, 700))
            await until(lambda: edge.hub.position == hub.hub.position)
            await client.read_until(hub.hub.position.offset)
            for topic in hub.hub.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_resume_older_than_the_log_gets_one_reset_unit(redis_server: RedisServer) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "deep2")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge", replay_max_messages=50))
            rng = random.Random(6)
            await publish(hub, market(rng, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*TOPICS)
            await client.read_until(hub.hub.position.offset)
            await client.ws.close()
            assert client.position is not None
            held = client.position
            await publish(hub, market(rng, 600, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:  # the log forgets everything but its last entries
                await redis.xtrim("ticker:{deep2}:log", coredis.PureToken.MAXLEN, 5)
            client.ws = await RawWebSocket.connect(edge.port)
            await client.ws.subscribe(*TOPICS, position=str(held))
            await client.read_until(hub.hub.position.offset)
            assert [r.reason for r in client.resets] == ["too_old"]
            for topic in hub.hub.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_live_messages_during_a_deep_replay_are_not_sent_twice(
    redis_server: RedisServer,
) -> None:
    """What is published while the log is read reaches the client once: the replay ends
    at the position the resume was taken at, the outbox holds what came after."""
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "deep3")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge", replay_max_messages=50))
            rng = random.Random(9)
            await publish(hub, market(rng, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*TOPICS)
            await client.read_until(hub.hub.position.offset)
            await client.ws.close()
            assert client.position is not None
            held = client.position
            await publish(hub, market(rng, 600, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            # Hold the log's first answer until the market has moved on (a live market).
            source = edge.context.deep_source
            assert source is not None
            moved_on = trio.Event()

            async def slow_source(after: Position, count: int) -> list[tuple[DataMessage, bytes]]:
                await moved_on.wait()
                return await source(after, count)

            edge.context.deep_source = slow_source
            client.ws = await RawWebSocket.connect(edge.port)
            await client.ws.subscribe(*TOPICS, position=str(held))
            await until(lambda: edge.context.stats.deep_resumes == 1)
            await publish(hub, market(rng, 30, 700))
            await until(lambda: edge.hub.position == hub.hub.position)
            moved_on.set()
            await client.read_until(hub.hub.position.offset)
            # Then the live stream: a message sent twice would be refused by the mirror.
            await publish(hub, market(rng, 30, 730))
            await until(lambda: edge.hub.position == hub.hub.position)
            await client.read_until(hub.hub.position.offset)
            assert client.resets == []
            for topic in hub.hub.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_deep_resume_from_inside_a_log_entry_is_served(redis_server: RedisServer) -> None:
    """A client of some topics holds a position inside a hub batch (one log entry); the
    log serves it from there, not a reset."""
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "deep4")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge", replay_max_messages=50))
            rng = random.Random(10)
            # One batch: a trade (offset N+1) and its ticker update (N+2), one log entry.
            await publish(hub, market(rng, 100))
            trade = Trade("cbx", "BTC-USD", 1_800_000_001_000_000_000, 1000, 1, TakerSide.BUY, "x")
            await publish(hub, [trade])
            await until(lambda: edge.hub.position == hub.hub.position)
            entry_end = hub.hub.position
            held = Position(entry_end.epoch, entry_end.offset - 1)  # the trade: mid-entry
            await publish(hub, market(rng, 600, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            assert edge.hub.replay.first_offset > held.offset + 1
            ws = await RawWebSocket.connect(edge.port)
            await ws.subscribe("trade.*", position=str(held))
            first: DataMessage | Reset | None = None
            while first is None:
                for message in await ws.messages():
                    if isinstance(message, DataMessage | Reset):
                        first = message
                        break
            assert not isinstance(first, Reset), first
            # The next trade after the one held, as a delta: the replay went on from there.
            assert first.offset > held.offset and not first.snapshot
            assert edge.context.stats.deep_resumes == 1
            await ws.close()
            nursery.cancel_scope.cancel()
