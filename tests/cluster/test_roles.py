"""Hub and edge roles in one trio run, against a real redis-server.

An edge serves exactly the hub's stream (same positions, same bytes, same snapshots), a
position is valid on every edge, a standby hub takes over with seq-continuous messages,
and a hub that lost its lease can never append.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import coredis
import pytest
import trio

from tests.redis_server import RedisServer
from tests.server.conftest import RawWebSocket, until
from ticker.capture.errors import TargetError
from ticker.capture.publisher import open_publisher
from ticker.cluster.redis_log import open_cluster_log
from ticker.config import Config
from ticker.core.messages import DataMessage, Heartbeat, Hello, Reset
from ticker.core.mirror import Applied, Mirror
from ticker.core.position import Position
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle, serve

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
VENUES = ("cbx", "fxa", "itx")
TEST_DEADLINE_S = 60
ALL_TOPICS = ("quote.*", "book.*", "trade.*", "ticker.*", "quote@*.*", "book@*.*")
"""Every topic, venues' own included: an edge serves them (and their books' checksums,
from the state it follows) like the rest."""


LEASE_TTL_S = 30.0
"""The lease of tests that are not about the lease: hub, edges and clients share one trio
thread here, so on a loaded CI machine a renewal can come a second or more late; a short
lease would then lapse and end the term in the middle of a test about something else."""
TAKEOVER_LEASE_TTL_S = 2.0
"""The lease of tests where a standby must take over after the leader stops: long
enough for late renewals, short enough that the takeover is quick."""


def cluster_config(redis: RedisServer, name: str, *, lease_ttl_s: float = LEASE_TTL_S) -> Config:
    return Config(
        port=0,
        heartbeat_s=3600,
        ping_interval_s=3600,
        redis_url=redis.url,
        cluster=name,
        lease_ttl_s=lease_ttl_s,
        checkpoint_interval_s=0.2,
    )


def market(rng: random.Random, count: int, start: int = 0) -> list[NormalizedEvent]:
    out: list[NormalizedEvent] = []
    for i in range(start, start + count):
        venue, symbol = rng.choice(VENUES), rng.choice(SYMBOLS)
        ts = 1_800_000_000_000_000_000 + i * 1_000_000
        kind = rng.random()
        if kind < 0.4:
            bids = tuple((1000 - rng.randrange(5), rng.randrange(0, 4)) for _ in range(2))
            asks = tuple((1001 + rng.randrange(5), rng.randrange(0, 4)) for _ in range(2))
            out.append(BookUpdate(venue, symbol, ts, bids, asks, False))
        elif kind < 0.7:
            out.append(Quote(venue, symbol, ts, 1000, rng.randrange(1, 9), 1001, 2))
        else:
            side = TakerSide.BUY if rng.random() < 0.5 else TakerSide.SELL
            out.append(Trade(venue, symbol, ts, 1000, 1, side, f"t{i}"))
    return out


async def start(nursery: trio.Nursery, config: Config) -> ServerHandle:
    handle: ServerHandle = await nursery.start(partial(serve, config, run_venues=False))
    return handle


async def publish(hub: ServerHandle, events: list[NormalizedEvent], *, wait: bool = True) -> None:
    """Publish in batches of 7 and (`wait`) return once the leading hub's writer has
    sequenced them all, so that `hub.hub.position` is final: on a loaded machine the
    writer may not have run yet, and "the edge is where the hub is" would then hold at
    the old position. A hub that stops leading never sequences them: `wait=False`."""
    stats = hub.context.stats
    before = stats.ingest_events
    for i in range(0, len(events), 7):
        await hub.publish(*events[i : i + 7])
    if wait:
        await until(lambda: stats.ingest_events >= before + len(events))


def leading(handle: ServerHandle) -> Callable[[], bool]:
    status = handle.context.cluster
    assert status is not None
    return lambda: status.leading


class Follower:
    """A strict client: a mirror that must accept every data message, and its resume
    position (the hello's position is not one: docs/PROTOCOL.md, "Resume points")."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.mirror = Mirror()
        self.epoch: int | None = None
        self.position: Position | None = None
        self.resets: list[Reset] = []

    async def read_until(self, offset: int) -> None:
        with trio.fail_after(20):
            while self.position is None or self.position.offset < offset:
                for message in await self.ws.messages():
                    if isinstance(message, DataMessage):
                        result = self.mirror.apply(message)
                        assert isinstance(result, Applied), (message, result)
                        assert self.epoch is not None
                        self.position = Position(self.epoch, message.offset)
                    elif isinstance(message, Hello):
                        self.epoch = message.epoch
                    elif isinstance(message, Heartbeat):
                        self.position = Position(message.epoch, message.offset)
                    elif isinstance(message, Reset):
                        self.resets.append(message)
                        self.epoch = message.epoch
                        self.position = Position(message.epoch, message.offset)


async def test_an_edge_serves_the_hubs_stream(redis_server: RedisServer) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles1")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge"))
            rng = random.Random(1)
            await publish(hub, market(rng, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*ALL_TOPICS)
            await client.read_until(hub.hub.position.offset)
            await publish(hub, market(rng, 200, 100))
            await until(lambda: edge.hub.position == hub.hub.position)
            await client.read_until(hub.hub.position.offset)
            assert edge.hub.epoch == hub.hub.epoch
            for topic in hub.hub.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
                assert edge.hub.snapshot(topic) == hub.hub.snapshot(topic)
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_position_from_one_edge_resumes_on_another(redis_server: RedisServer) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles2")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            edge_a = await start(nursery, replace(base, role="edge"))
            edge_b = await start(nursery, replace(base, role="edge"))
            rng = random.Random(2)
            await publish(hub, market(rng, 150))
            await until(lambda: edge_a.hub.position == hub.hub.position)
            client = Follower(await RawWebSocket.connect(edge_a.port))
            await client.ws.subscribe(*ALL_TOPICS)
            await client.read_until(hub.hub.position.offset)
            await client.ws.close()
            assert client.position is not None
            await publish(hub, market(rng, 150, 150))
            await until(lambda: edge_b.hub.position == hub.hub.position)
            client.ws = await RawWebSocket.connect(edge_b.port)
            await client.ws.subscribe(*ALL_TOPICS, position=str(client.position))
            await client.read_until(hub.hub.position.offset)
            assert client.resets == []
            for topic in client.mirror.topics():
                assert client.mirror.data(topic) == hub.hub.snapshot(topic).data
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_standby_takes_over_and_clients_see_no_reset(redis_server: RedisServer) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles3", lease_ttl_s=TAKEOVER_LEASE_TTL_S)
            first = await start(nursery, replace(base, role="hub"))
            await until(leading(first))
            second = await start(nursery, replace(base, role="hub"))
            edge = await start(nursery, replace(base, role="edge"))
            rng = random.Random(3)
            await publish(first, market(rng, 200))
            await until(lambda: edge.hub.position == first.hub.position)
            client = Follower(await RawWebSocket.connect(edge.port))
            await client.ws.subscribe(*ALL_TOPICS)
            await client.read_until(first.hub.position.offset)
            assert not leading(second)()
            first.stop()
            await until(leading(second))
            # The venues of the new leader resend their books; then the market goes on.
            resync: list[NormalizedEvent] = [
                BookUpdate(v, s, 0, ((999, 1),), ((1002, 1),), True)
                for s in SYMBOLS
                for v in VENUES
            ]
            await publish(second, resync + market(rng, 200, 200))
            await until(lambda: edge.hub.position == second.hub.position)
            await client.read_until(second.hub.position.offset)
            assert client.resets == []
            assert second.hub.epoch == edge.hub.epoch
            for topic in second.hub.topics():
                assert client.mirror.data(topic) == second.hub.snapshot(topic).data
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_a_hub_whose_lease_was_taken_steps_down_and_never_appends(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles4")
            hub = await start(nursery, replace(base, role="hub"))
            await until(leading(hub))
            rng = random.Random(4)
            await publish(hub, market(rng, 50))
            status = hub.context.cluster
            assert status is not None
            await until(lambda: status.held_batches == 0)
            client = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with client:
                # Another hub takes the lease (as after this one was paused past it).
                await client.set("ticker:{roles4}:lease", "someone-else")
                length = await client.xlen("ticker:{roles4}:log")
                await publish(hub, market(rng, 50, 50), wait=False)
                await until(lambda: not status.leading)
                assert await client.xlen("ticker:{roles4}:log") == length
            nursery.cancel_scope.cancel()


async def test_all_with_redis_serves_its_clients_from_the_log(redis_server: RedisServer) -> None:
    """`all` with a Redis URL leads, writes the log, and its own clients get exactly what
    the log holds (the same as an edge's clients)."""
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles5")
            both = await start(nursery, replace(base, role="all"))
            await until(leading(both))
            edge = await start(nursery, replace(base, role="edge"))
            rng = random.Random(7)
            await publish(both, market(rng, 50))
            await until(lambda: both.hub.position == edge.hub.position)
            assert both.hub.position.offset > 0
            client = Follower(await RawWebSocket.connect(both.port))
            await client.ws.subscribe(*ALL_TOPICS)
            await publish(both, market(rng, 150, 50))
            status = both.context.cluster
            assert status is not None
            await until(lambda: status.held_batches == 0)  # everything published is logged
            async with open_cluster_log(redis_server.url, "roles5") as cluster_log:
                last = await cluster_log.last_position()
            await until(lambda: both.hub.position == edge.hub.position == last)
            await client.read_until(both.hub.position.offset)
            assert client.resets == []
            for topic in edge.hub.topics():
                assert client.mirror.data(topic) == edge.hub.snapshot(topic).data
                assert both.hub.snapshot(topic) == edge.hub.snapshot(topic)
            await client.ws.close()
            nursery.cancel_scope.cancel()


async def test_publishers_reach_the_leader_and_a_standby_sends_them_there(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = replace(cluster_config(redis_server, "roles6"), publish_token="tok-123")
            first = await start(nursery, replace(base, role="hub"))
            await until(leading(first))
            second = await start(nursery, replace(base, role="hub"))
            edge = await start(nursery, replace(base, role="edge"))
            with pytest.raises(TargetError, match=r"HTTP 503.*does not lead"):
                async with open_publisher(f"ws://127.0.0.1:{second.port}", "tok-123"):
                    pass
            async with open_publisher(f"ws://127.0.0.1:{first.port}", "tok-123") as publisher:
                await publisher.publish(market(random.Random(8), 20))
                await publisher.drain()
            # An ack means queued at the leader: wait until it has sequenced them.
            await until(lambda: first.context.stats.ingest_events == 20)
            await until(lambda: edge.hub.position == first.hub.position)
            assert edge.hub.position.offset > 0
            nursery.cancel_scope.cancel()


async def test_a_hub_that_cannot_rebuild_says_why_and_does_not_crash(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = cluster_config(redis_server, "roles7")
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:
                await redis.set("ticker:{roles7}:checkpoint", b"not a checkpoint")
                await redis.set("ticker:{roles7}:epoch", b"1796293000000000")
                hub = await start(nursery, replace(base, role="hub"))
                status = hub.context.cluster
                assert status is not None
                await until(lambda: status.problem is not None)
                assert "cannot rebuild" in (status.problem or "")
                assert not hub.context.ready
                assert not status.leading
                # The operator removes the bad checkpoint: the hub leads again by itself.
                await redis.delete(["ticker:{roles7}:checkpoint"])
                await until(leading(hub), timeout_s=30)
            nursery.cancel_scope.cancel()


async def test_a_large_hub_batch_goes_to_the_log_as_entries_of_bounded_size(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            base = replace(cluster_config(redis_server, "roles8"), cluster_log_max_entry_bytes=1024)
            hub = await start(nursery, replace(base, role="hub", publish_batch_events=1000))
            await until(leading(hub))
            edge = await start(nursery, replace(base, role="edge"))
            status = hub.context.cluster
            assert status is not None
            await hub.publish(*market(random.Random(12), 300))  # one batch, some 15 KiB
            await until(lambda: hub.context.stats.ingest_events == 300)
            await until(lambda: edge.hub.position == hub.hub.position)
            assert status.appended_batches == 1
            assert status.appended_entries > 5
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:
                entries = await redis.xrange("ticker:{roles8}:log")
            assert len(entries) == status.appended_entries
            assert max(len(entry.field_values[b"m"]) for entry in entries) <= 1024
            for topic in hub.hub.topics():
                assert edge.hub.snapshot(topic) == hub.hub.snapshot(topic)
            nursery.cancel_scope.cancel()
