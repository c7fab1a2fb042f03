"""An edge with authentication: a resume served from the cluster log (deep replay)
carries only the topics the token allows, like every other path."""

from __future__ import annotations

import random
from dataclasses import replace

import trio

from tests.auth.keyring import NOW, SECRET, claims, hs_token
from tests.auth.servers import WallClock, WsClient, bearer
from tests.cluster.test_roles import cluster_config, leading, market, publish, start
from tests.redis_server import RedisServer
from tests.server.conftest import until
from ticker.core.messages import DataMessage
from ticker.model.events import TakerSide, Trade

DEADLINE_S = 60


async def read_past(ws: WsClient, offset: int) -> set[str]:
    """Topics of every data message up to the first trade after `offset`."""
    topics: set[str] = set()
    while True:
        for message in await ws.messages():
            if isinstance(message, DataMessage):
                topics.add(message.topic)
                if message.offset > offset and message.topic.startswith("trade."):
                    return topics


async def test_a_deep_replay_on_an_edge_obeys_the_entitlements(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "authdeep")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge_config = replace(
                base, role="edge", replay_max_messages=50, auth="required", auth_secret=SECRET
            )
            edge = await start(nursery, edge_config)
            assert edge.context.auth is not None
            edge.context.auth.clock = WallClock()
            token = hs_token(claims(aud=None, iss=None, exp=NOW + 3600, topics=["trade.*"]))
            rng = random.Random(5)
            await publish(hub, market(rng, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            held = str(edge.hub.position)
            await publish(hub, market(rng, 600, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            assert edge.hub.replay.first_offset > edge.hub.position.offset - 100
            ws = await WsClient.connect(edge.port, bearer(token))
            await ws.messages()
            await ws.subscribe("quote.*", "trade.*", "book.*", position=held)
            # Read through the replay to a trade published after it.
            last = Trade("cbx", "BTC-USD", 1_900_000_000_000_000_000, 1000, 1, TakerSide.BUY, "z")
            before = hub.hub.position.offset
            await publish(hub, [last])
            await until(lambda: edge.hub.position == hub.hub.position)
            topics = await read_past(ws, before)
            assert edge.context.stats.deep_resumes == 1
            assert topics and all(t.startswith("trade.") for t in topics), topics
            await ws.close()
            nursery.cancel_scope.cancel()
