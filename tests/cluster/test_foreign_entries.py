"""Entries in the cluster log that no ticker hub wrote, against a real redis-server.

Someone XADDs by hand (no `m` field), or an entry holds a format this version cannot
read: the follower and a rebuilding leader skip it, log it once and count it; if it took
the place of messages a node needs, the hole is seen at the next batch and the node waits
for a checkpoint past it (never a silent gap). docs/CLUSTER.md, "Foreign entries".
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import coredis
import pytest
import trio

from tests.cluster.test_roles import (
    ALL_TOPICS,
    TAKEOVER_LEASE_TTL_S,
    Follower,
    cluster_config,
    leading,
    market,
    publish,
    start,
)
from tests.redis_server import RedisServer
from tests.server.conftest import RawWebSocket, until
from ticker.core.position import Position

DEADLINE_S = 60
TOPICS = ALL_TOPICS


async def test_an_entry_added_by_hand_is_skipped_logged_and_counted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ticker.cluster")
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "foreign1")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge"))
            rng = random.Random(21)
            await publish(hub, market(rng, 50))
            await until(lambda: edge.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*TOPICS)
            await client.read_until(hub.hub.position.offset)
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:
                # Redis numbers it just after the last entry (its clock is far behind the
                # epoch's milliseconds): it sits where our next batch would begin.
                foreign = await redis.xadd("ticker:{foreign1}:log", {"note": "hello"})
            await publish(hub, market(rng, 100, 50))
            await until(lambda: edge.hub.position == hub.hub.position)
            await client.read_until(hub.hub.position.offset)
            edge_status = edge.context.cluster
            assert edge_status is not None
            assert edge_status.foreign_entries == 1
            assert edge_status.rebuilds == 1  # no rebuild, no client sent away
            assert client.resets == []
            for topic in hub.hub.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
            skipped = [r for r in caplog.records if "not a ticker hub batch" in r.getMessage()]
            assert len(skipped) == 1
            assert foreign is not None and foreign.decode() in skipped[0].getMessage()
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_new_leader_rebuilds_across_a_foreign_entry(redis_server: RedisServer) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = replace(
                cluster_config(redis_server, "foreign2", lease_ttl_s=TAKEOVER_LEASE_TTL_S),
                checkpoint_interval_s=3600,  # the rebuild reads the whole log
            )
            first = await start(nursery, replace(base, role="hub"))
            await until(leading(first))
            rng = random.Random(22)
            await publish(first, market(rng, 50))
            first_status = first.context.cluster
            assert first_status is not None
            await until(lambda: first_status.held_batches == 0)
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:
                await redis.xadd("ticker:{foreign2}:log", {"m": b"\xc1 not msgpack"})
            await publish(first, market(rng, 50, 50))
            await until(lambda: first_status.held_batches == 0)
            position = first.hub.position
            first.stop()
            second = await start(nursery, replace(base, role="hub"))
            second_status = second.context.cluster
            assert second_status is not None
            await until(lambda: second_status.leading and not second_status.rebuilding)
            assert second.hub.position == position
            assert second_status.foreign_entries == 1
            assert second.context.ready
            nursery.cancel_scope.cancel()


async def test_a_foreign_entry_in_place_of_a_batch_is_a_hole_never_skipped_silently(
    redis_server: RedisServer,
) -> None:
    """An entry of a format this version cannot read took the place of one of ours: the
    edge applies nothing past it and waits (not ready) for a checkpoint past the hole."""
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = replace(cluster_config(redis_server, "foreign3"), checkpoint_interval_s=3600)
            hub = await start(nursery, replace(base, role="hub"))
            status = hub.context.cluster
            assert status is not None
            # Rebuilt, its writer running: events published earlier wait for it and go as
            # two batches of up to 64 (two entries), too few to put one in the middle.
            await until(lambda: status.leading and not status.rebuilding)
            await publish(hub, market(random.Random(23), 100))
            await until(lambda: status.held_batches == 0)
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            key = "ticker:{foreign3}:log"
            async with redis:
                # Rewrite the log with its third entry in a "newer format" (field `m2`).
                entries = await redis.xrange(key)
                assert len(entries) > 5
                await redis.delete([key])
                for index, entry in enumerate(entries):
                    fields = dict(entry.field_values)
                    if index == 2:
                        fields = {b"m2": fields[b"m"]}
                    await redis.xadd(key, fields, identifier=entry.identifier)
            identifier = entries[1].identifier
            text = identifier.decode() if isinstance(identifier, bytes) else identifier
            hole_before = Position.parse(text).offset
            edge = await start(nursery, replace(base, role="edge"))
            edge_status = edge.context.cluster
            assert edge_status is not None
            await until(
                lambda: edge_status.foreign_entries == 1 and edge_status.problem is not None
            )
            await trio.sleep(0.2)  # the follower goes on trying: it still must not pass the hole
            assert edge.hub.position.offset <= hole_before
            assert "checkpoint" in (edge_status.problem or "")
            assert not edge.context.ready
            assert edge_status.foreign_entries == 1  # logged and counted once
            nursery.cancel_scope.cancel()
