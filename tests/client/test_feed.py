"""open_feed against a real server: transports, zstd, refusals, connecting late."""

from __future__ import annotations

import gc
import os
import random

import pytest
import trio

from tests.client.conftest import (
    ALL_TOPICS,
    Collector,
    assert_no_gap_or_duplicate,
    assert_state_equals_server,
    free_port,
    open_fast_feed,
    publish,
    random_event,
    settle,
    start_server,
    until,
)
from tests.client.proxy import Proxy
from ticker.client import FeedConfigError, FeedRejected, FeedUnavailable, UpdateKind, open_feed
from ticker.model.events import Quote

pytestmark = pytest.mark.usefixtures("deadline")


@pytest.mark.parametrize(("scheme", "compression"), [("ws", None), ("ws", "zstd"), ("http", None)])
async def test_the_feed_holds_the_server_state_over_each_transport(
    nursery: trio.Nursery, scheme: str, compression: str | None
) -> None:
    server = await start_server(nursery)
    rng = random.Random(11)
    await publish(server, rng, 60)  # some state exists before the feed subscribes
    burst = len(server.hub.topics())
    url = f"{scheme}://127.0.0.1:{server.port}"
    async with open_feed(url, ALL_TOPICS, compression=compression) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 300)
        await settle(feed, server, collector)
        assert feed.compression == compression
        assert_state_equals_server(feed, server)
        first = collector.updates[: len(server.hub.topics())]
        assert all(u.kind is UpdateKind.SNAPSHOT for u in first[:1])
        assert_no_gap_or_duplicate(collector.updates)
        deltas = collector.of_kind(UpdateKind.DELTA)
        assert deltas and all(u.position.epoch == 7 for u in deltas)
        assert all(0 <= u.latency_s < 30 for u in deltas)
        # Every streamed message is a latency sample; the subscribe burst's snapshots
        # are not (their ts is when their topic last changed).
        assert feed.stats.latency.total == len(collector.updates) - burst
        assert feed.stats.connections == 1 and not feed.stats.endings
    server.stop()


async def test_bad_topics_fail_at_once_and_unknown_symbols_are_refused_by_the_server(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    url = f"ws://127.0.0.1:{server.port}"
    with pytest.raises(FeedConfigError, match="unknown channel"):
        async with open_feed(url, ["qoute.BTC-USD"]):
            pass  # pragma: no cover - open_feed raises before the block
    for endpoint in (url, f"http://127.0.0.1:{server.port}"):
        with pytest.raises(FeedRejected, match="unknown symbol") as refused:
            async with open_feed(endpoint, ["quote.NOPE-USD"]) as feed:
                async for _ in feed:
                    pass
        assert refused.value.code in (4400, 400)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_refused_handshake_is_raised_and_leaks_no_socket(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    gc.collect()
    before = open_fds()
    for _ in range(5):
        with pytest.raises(FeedRejected, match="404") as refused:
            async with open_feed(f"ws://127.0.0.1:{server.port}/nope", ["quote.*"]) as feed:
                await feed.__anext__()
        assert refused.value.code == 404
    gc.collect()
    assert open_fds() == before


async def test_a_feed_started_before_its_server_connects_once_it_is_up(
    nursery: trio.Nursery,
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    async with open_feed(url, ["quote.*"], reconnect_min_s=0.01, reconnect_max_s=0.05) as feed:
        await until(lambda: feed.stats.endings["connect_failed"] >= 3)
        server = await start_server(nursery, port=port)
        await server.publish(Quote("cbx", "BTC-USD", 1, 100, 1, 101, 1))
        update = await feed.__anext__()
        assert update.topic == "quote.BTC-USD" and update.state["bid"] == 100
        assert feed.stats.connections == 1
    server.stop()


async def test_a_feed_with_max_attempts_gives_up_with_the_reason() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    with pytest.raises(FeedUnavailable, match="in 3 attempts; last: connect_failed"):
        async with open_feed(url, ["quote.*"], reconnect_min_s=0.01, max_attempts=3) as feed:
            async for _ in feed:
                pass


async def test_a_server_that_drops_every_connection_after_its_first_data_is_given_up(
    nursery: trio.Nursery,
) -> None:
    # Every connection delivers its hello and one frame of data, then is cut: data came,
    # but such short connections are failed attempts, so max_attempts trips.
    server = await start_server(nursery)
    rng = random.Random(9)
    await publish(server, rng, 20)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    proxy.cut_after_frames = lambda: 2

    publishing = trio.CancelScope()

    async def keep_publishing() -> None:  # so a resumed connection gets a frame too
        with publishing:
            for i in range(100_000):
                await server.publish(random_event(rng, i))
                await trio.sleep(0.005)

    nursery.start_soon(keep_publishing)
    url = f"ws://127.0.0.1:{proxy.port}"
    with pytest.raises(FeedUnavailable, match="in 4 attempts; last: dropped"):
        async with open_fast_feed(url, ALL_TOPICS, max_attempts=4) as feed:
            async for _ in feed:
                pass
    publishing.cancel()
    assert feed.stats.connections == 4 and proxy.cuts == 4
    assert feed.stats.units >= 8  # each delivered its hello and a frame of data
    server.stop()


async def test_an_error_in_the_callers_block_comes_out_unwrapped(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    with pytest.raises(KeyError, match="mine"):
        async with open_feed(f"ws://127.0.0.1:{server.port}", ["quote.*"]):
            raise KeyError("mine")
    server.stop()
