"""A feed with several URLs moves to the next one whenever it reconnects, and resumes.

Two servers that share one stream (a cluster's edges) are stood in for by two proxies
in front of ONE server: the same position is valid behind both, as on two edges.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import trio

from tests.client.conftest import (
    ALL_TOPICS,
    TEST_CONFIG,
    Collector,
    assert_no_gap_or_duplicate,
    assert_state_equals_server,
    free_port,
    open_fast_feed,
    publish,
    settle,
    start_server,
    until,
)
from tests.client.proxy import Proxy
from ticker.client import FeedConfigError, FeedUnavailable, UpdateKind, open_feed
from ticker.model.events import Quote, TakerSide, Trade

pytestmark = pytest.mark.usefixtures("deadline")


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_a_cut_connection_moves_to_the_next_url_and_resumes_without_gap_or_repeat(
    nursery: trio.Nursery, scheme: str
) -> None:
    server = await start_server(nursery)
    first, second = Proxy(server.port), Proxy(server.port)
    await nursery.start(first.run)
    await nursery.start(second.run)
    urls = [f"{scheme}://127.0.0.1:{first.port}", f"{scheme}://127.0.0.1:{second.port}"]
    rng = random.Random(21)
    await publish(server, rng, 40)  # state before the feed subscribes
    async with open_fast_feed(urls, ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 100)
        await settle(feed, server, collector)
        assert str(feed.endpoint).startswith(urls[0])
        # Killed mid-stream while still accepting: the feed goes to the NEXT url anyway.
        first.kill_all()
        await publish(server, rng, 100)  # partly published while no connection is open
        await settle(feed, server, collector)
        assert str(feed.endpoint).startswith(urls[1]) and feed.connected
        assert first.accepted == 1 and second.accepted == 1
        # And round-robin: a cut of the second connection goes back to the first.
        second.kill_all()
        await publish(server, rng, 100)
        await settle(feed, server, collector)
        assert str(feed.endpoint).startswith(urls[0])
        assert first.accepted == 2 and second.accepted == 1
        assert_state_equals_server(feed, server)
        assert_no_gap_or_duplicate(collector.updates)
        assert not collector.of_kind(UpdateKind.RESET) and feed.stats.resets == 0
        assert feed.stats.connections == 3
        assert list(feed.stats.connections_by_url.values()) == [2, 1]
        assert server.context.stats.resumes >= 2
    server.stop()


async def test_random_cuts_on_both_urls_lose_nothing(nursery: trio.Nursery) -> None:
    # The cut points are drawn for the consolidated stream's frames: with venue topics
    # (twice the messages) one lands before the first data, a legitimate `resubscribed`.
    server = await start_server(nursery, replace(TEST_CONFIG, max_venues=0))
    first, second = Proxy(server.port), Proxy(server.port)
    await nursery.start(first.run)
    await nursery.start(second.run)
    cuts = random.Random(22)
    for proxy in (first, second):
        proxy.cut_after = lambda: cuts.randrange(50, 6000)  # mid-frame, mid-burst
    urls = [f"ws://127.0.0.1:{first.port}", f"ws://127.0.0.1:{second.port}"]
    rng = random.Random(23)
    async with open_fast_feed(urls, ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        for _ in range(20):
            await publish(server, rng, 40)
            await trio.sleep(0.01)
        first.cut_after = second.cut_after = lambda: None
        await settle(feed, server, collector)
        assert first.cuts >= 2 and second.cuts >= 2, (first.cuts, second.cuts)
        assert_state_equals_server(feed, server)
        assert_no_gap_or_duplicate(collector.updates)
        assert not collector.of_kind(UpdateKind.RESET)
    server.stop()


async def test_a_first_url_refusing_at_start_is_passed_over_for_the_second(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    await server.publish(Quote("cbx", "BTC-USD", 1, 100, 1, 101, 1))
    await until(lambda: server.context.stats.ingest_events == 1)
    dead = f"ws://127.0.0.1:{free_port()}"
    live = f"ws://127.0.0.1:{server.port}"
    # A long backoff: had the feed retried the dead URL, it would wait up to 30 s.
    async with open_feed([dead, live], ["quote.*"], reconnect_max_s=30.0) as feed:
        update = await feed.__anext__()
        assert update.topic == "quote.BTC-USD" and update.state["bid"] == 100
        assert feed.stats.endings == {"connect_failed": 1}
        assert dict(feed.stats.connections_by_url) == {f"{live}/v1/ws": 1}
        assert str(feed.endpoint) == f"{live}/v1/ws"
    server.stop()


async def test_with_every_url_down_it_backs_off_and_recovers_when_one_returns(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    first, second = Proxy(server.port), Proxy(server.port)
    await nursery.start(first.run)
    await nursery.start(second.run)
    first.refusing = second.refusing = True
    rng = random.Random(24)
    await publish(server, rng, 30)
    urls = [f"ws://127.0.0.1:{first.port}", f"ws://127.0.0.1:{second.port}"]
    async with open_fast_feed(urls, ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await until(lambda: first.accepted >= 3 and second.accepted >= 3)
        # Round-robin: the attempts alternate between the two URLs.
        assert abs(first.accepted - second.accepted) <= 1
        assert feed.stats.connections == 0 and not feed.connected
        second.refusing = False
        await publish(server, rng, 30)
        await settle(feed, server, collector)
        assert str(feed.endpoint).startswith(urls[1])
        assert feed.stats.connections == 1
        assert_state_equals_server(feed, server)
        assert_no_gap_or_duplicate(collector.updates)
    server.stop()


async def test_with_every_url_down_max_attempts_counts_them_all() -> None:
    urls = [f"ws://127.0.0.1:{free_port()}", f"ws://127.0.0.1:{free_port()}"]
    with pytest.raises(FeedUnavailable, match="in 4 attempts; last: connect_failed") as gave_up:
        async with open_fast_feed(urls, ["quote.*"], max_attempts=4) as feed:
            async for _ in feed:
                pass
    assert f"{urls[0]}/v1/ws {urls[1]}/v1/ws" in str(gave_up.value)
    assert feed.stats.attempts == 4


async def test_a_server_shutdown_close_4001_moves_to_the_next_url(nursery: trio.Nursery) -> None:
    # Two servers with their own histories (no cluster yet): after the first shuts
    # down, the feed resumes on the second, which answers with a reset, reported.
    old = await start_server(nursery, epoch=7)
    new = await start_server(nursery, epoch=8)
    rng = random.Random(25)
    await publish(old, rng, 50)
    await publish(new, rng, 50)
    urls = [f"ws://127.0.0.1:{old.port}", f"ws://127.0.0.1:{new.port}"]
    async with open_fast_feed(urls, ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await settle(feed, old, collector)
        before = feed.position
        old.stop()
        await until(lambda: feed.stats.endings["shutdown"] == 1)
        await settle(feed, new, collector)
        assert str(feed.endpoint).startswith(urls[1])
        assert feed.stats.connections == 2 and not feed.stats.endings["connect_failed"]
        assert_state_equals_server(feed, new)
        resets = collector.of_kind(UpdateKind.RESET)
        assert resets and {u.loss.reason for u in resets if u.loss} == {"other_epoch"}
        assert {u.loss.after for u in resets if u.loss} == {before}
    new.stop()


async def test_an_eviction_close_4008_moves_to_the_next_url_and_resumes(
    nursery: trio.Nursery,
) -> None:
    # One batch larger than the outbox evicts the subscriber (close 4008); the feed
    # resumes through the other URL with every trade, none twice.
    config = replace(TEST_CONFIG, outbox_max_bytes=8 * 1024, publish_batch_events=1024)
    server = await start_server(nursery, config)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    side = TakerSide.BUY
    await server.publish(Trade("itx", "ETH-USD", 0, 3000, 1, side, "b0"))
    await until(lambda: server.context.stats.ingest_events == 1)
    urls = [f"ws://127.0.0.1:{server.port}", f"ws://127.0.0.1:{proxy.port}"]
    async with open_fast_feed(urls, ["trade.*", "ticker.*"]) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await until(lambda: feed.position is not None)
        batch = [Trade("itx", "ETH-USD", i, 3000 + i, 1, side, f"b{i}") for i in range(1, 301)]
        await server.publish(*batch)
        await until(lambda: server.context.stats.ingest_events == 1 + len(batch))
        await settle(feed, server, collector)
        assert feed.stats.endings["slow_consumer"] == 1
        assert str(feed.endpoint).startswith(urls[1]) and proxy.accepted == 1
        assert_state_equals_server(feed, server)
        seen = [u.seq for u in collector.updates if u.topic == "trade.ETH-USD"]
        assert seen == list(range(1, 302))
        assert not collector.of_kind(UpdateKind.RESET)
    server.stop()


async def test_urls_that_mix_transports_or_tls_are_refused_at_once() -> None:
    with pytest.raises(FeedConfigError, match="same transport"):
        async with open_feed(["ws://127.0.0.1:9", "http://127.0.0.1:9"], ["quote.*"]):
            pass  # pragma: no cover - open_feed raises before the block
    with pytest.raises(FeedConfigError, match="TLS"):
        async with open_feed(["wss://127.0.0.1:9", "ws://127.0.0.1:9"], ["quote.*"]):
            pass  # pragma: no cover
    with pytest.raises(FeedConfigError, match="at least one URL"):
        async with open_feed([], ["quote.*"]):
            pass  # pragma: no cover
    with pytest.raises(FeedConfigError, match="compression is for the WebSocket"):
        async with open_feed(["http://a", "http://b"], ["quote.*"], compression="zstd"):
            pass  # pragma: no cover
