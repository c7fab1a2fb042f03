"""The follower and the sessions, against a real redis-server: a client that subscribed
while an edge did not yet hold the log's state (Redis away at start) is sent away once
the state is loaded, with a position in the stream it was served, never fed the log's
deltas on top of state it never got."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import trio

from tests.cluster.test_roles import (
    TAKEOVER_LEASE_TTL_S,
    cluster_config,
    leading,
    market,
    publish,
    start,
)
from tests.redis_server import RedisServer
from tests.server.conftest import RawWebSocket, until
from ticker.core.messages import DataMessage, Hello
from ticker.core.mirror import Applied, Mirror

DEADLINE_S = 60


async def test_a_client_of_an_edge_that_had_not_loaded_is_sent_away_once_it_has(
    persistent_redis: RedisServer,
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            # A second hub takes over from the stopped one: a lease that lapses soon.
            base = cluster_config(persistent_redis, "follow1", lease_ttl_s=TAKEOVER_LEASE_TTL_S)
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            rng = random.Random(11)
            status = hub.context.cluster
            assert status is not None
            sent = 0
            while status.checkpoints == 0:  # a checkpoint follows a batch, once due
                await publish(hub, market(rng, 10, sent))
                sent += 10
                await trio.sleep(base.checkpoint_interval_s / 2)
            await until(lambda: status.held_batches == 0)
            hub.stop()
            persistent_redis.stop()
            # The edge starts while Redis is away: it listens, but holds nothing yet.
            edge = await start(nursery, replace(base, role="edge"))
            ws = await RawWebSocket.connect(edge.port)
            await ws.subscribe("quote.*", "book.*", "trade.*", "ticker.*")
            (hello,) = await ws.messages()
            assert isinstance(hello, Hello)
            persistent_redis.start()
            await until(lambda: edge.hub.position.offset > 0)
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            await publish(hub, market(rng, 100, sent))
            mirror = Mirror()
            with pytest.raises(ConnectionAbortedError) as closed:
                while True:
                    for message in await ws.messages():
                        if isinstance(message, DataMessage):
                            assert isinstance(mirror.apply(message), Applied), message
            code, reason = closed.value.args
            assert code == 4001
            # The position names the stream this client was served (its hello's epoch).
            assert reason.decode().endswith(f"last={hello.epoch}-0")
            await ws.close()
            nursery.cancel_scope.cancel()
