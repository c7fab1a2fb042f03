"""A resume older than an edge's replay buffer but still in the cluster log is served from
Redis, with no reset, no gap and no repeat; older than the log, it gets a reset and
fresh snapshots in one unit."""

from __future__ import annotations

import random
from dataclasses import replace

import coredis
import trio

from tests.cluster.test_roles import (
    Follower,
    cluster_config,
    leading,
    market,
    publish,
    start,
)
from tests.redis_server import RedisServer
from tests.server.conftest import RawWebSocket, until

TOPICS = ("quote.*", "trade.*", "book.*", "ticker.*")
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
