"""The feed heals: restarts, kills, random drops, eviction as slow, gaps.

In every case, once publishing stops and the feed settles, its state equals the
server's, and anything that may have been lost was reported as a RESET update.
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
    open_fast_feed,
    publish,
    settle,
    start_server,
    until,
)
from tests.client.proxy import Proxy
from tests.server.conftest import RawWebSocket
from ticker.client import Loss, Position, UpdateKind
from ticker.model.events import TakerSide, Trade

pytestmark = pytest.mark.usefixtures("deadline")


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_a_server_restart_is_reported_as_a_reset_and_the_state_rebuilt(
    nursery: trio.Nursery, scheme: str
) -> None:
    # A graceful restart on the same port: close 4001 (SSE: `end`), then a new epoch,
    # whose reset and snapshots come as one unit (SSE: the reset has no id).
    first = await start_server(nursery, epoch=7)
    port = first.port
    rng = random.Random(1)
    async with open_fast_feed(f"{scheme}://127.0.0.1:{port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(first, rng, 200)
        await settle(feed, first, collector)
        before = first.hub.position
        first.stop()
        await until(lambda: feed.stats.endings["shutdown"] == 1)
        second = await start_server(nursery, port=port, epoch=8)
        await publish(second, rng, 150)
        await settle(feed, second, collector)
        assert_state_equals_server(feed, second)
        resets = collector.of_kind(UpdateKind.RESET)
        assert resets, "the restart must be reported"
        losses = {u.loss for u in resets}
        assert len(losses) == 1
        (loss,) = losses
        assert loss is not None and loss.reason == "other_epoch"
        assert loss.after == before and loss.until.epoch == 8
        assert feed.stats.resets == 1
        # Each topic's updates are contiguous within an epoch.
        for epoch in (7, 8):
            assert_no_gap_or_duplicate([u for u in collector.updates if u.position.epoch == epoch])
    second.stop()


async def test_a_killed_server_replaced_by_a_new_one_is_reported_as_a_reset(
    nursery: trio.Nursery,
) -> None:
    # A crash: every connection is reset (no close frame), new connections are refused
    # for a while, then a server with a new epoch answers on the same address.
    first = await start_server(nursery, epoch=7)
    proxy = Proxy(first.port)
    await nursery.start(proxy.run)
    rng = random.Random(2)
    async with open_fast_feed(f"ws://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(first, rng, 100)
        proxy.refusing = True
        proxy.kill_all()
        await publish(first, rng, 50)  # published while the client is cut off: lost
        first.stop()
        await until(lambda: feed.stats.endings["connect_failed"] >= 2)
        second = await start_server(nursery, epoch=8)
        await publish(second, rng, 80)
        proxy.upstream_port = second.port
        proxy.refusing = False
        await settle(feed, second, collector)
        assert_state_equals_server(feed, second)
        resets = collector.of_kind(UpdateKind.RESET)
        assert resets and all(u.loss is not None for u in resets)
        assert {u.loss.reason for u in resets if u.loss} == {"other_epoch"}
        assert feed.stats.endings["dropped"] >= 1
    second.stop()


async def test_drops_at_random_points_lose_nothing_and_need_no_reset(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    rng = random.Random(3)
    cuts = random.Random(4)
    proxy.cut_after = lambda: cuts.randrange(50, 6000)  # mid-frame, mid-burst, anywhere
    async with open_fast_feed(f"ws://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        for _ in range(20):
            await publish(server, rng, 40)
            await trio.sleep(0.01)  # let the feed read some (and be cut) in between
        proxy.cut_after = lambda: None
        await settle(feed, server, collector)
        assert proxy.cuts >= 5, proxy.cuts
        assert feed.stats.connections >= 5
        assert_state_equals_server(feed, server)
        assert not collector.of_kind(UpdateKind.RESET)
        assert feed.stats.resets == 0
        # After the first snapshot of each topic, every update exactly once, in order.
        assert_no_gap_or_duplicate(collector.updates)
        assert server.context.stats.resumes >= 5
    server.stop()


async def test_sse_resumes_after_drops_too(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    rng = random.Random(5)
    cuts = random.Random(6)
    proxy.cut_after = lambda: cuts.randrange(300, 8000)
    async with open_fast_feed(f"http://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        for _ in range(10):
            await publish(server, rng, 40)
            await trio.sleep(0.01)
        proxy.cut_after = lambda: None
        await settle(feed, server, collector)
        assert proxy.cuts >= 3, proxy.cuts
        assert_state_equals_server(feed, server)
        assert not collector.of_kind(UpdateKind.RESET)
        assert_no_gap_or_duplicate(collector.updates)
    server.stop()


async def test_a_caller_that_stops_reading_is_evicted_then_resumes_without_loss(
    nursery: trio.Nursery,
) -> None:
    slow = replace(
        TEST_CONFIG, outbox_max_bytes=16 * 1024, send_buffer_bytes=16 * 1024, write_timeout_s=0.5
    )
    server = await start_server(nursery, slow)
    stats = server.context.stats
    url = f"ws://127.0.0.1:{server.port}"
    # Each trade also moves ticker.BTC-USD, which may conflate; the trades cannot.
    topics = ["trade.*", "ticker.*"]
    async with open_fast_feed(url, topics, queue_size=16) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        trade = 0

        async def trades(count: int) -> None:
            nonlocal trade
            for _ in range(count):
                trade += 1
                side = TakerSide.BUY if trade % 2 else TakerSide.SELL
                await server.publish(
                    Trade("itx", "BTC-USD", trade, 10_000 + trade % 97, 1, side, f"x{trade}")
                )
            await until(lambda: stats.ingest_events >= trade)

        subscribers = server.context.fanout.subscribers
        await until(lambda: any(s.patterns for s in subscribers()))
        await trades(10)
        await until(lambda: len(collector.updates) == 20)
        collector.pause()  # the caller stops reading; trades cannot be conflated
        for _ in range(200):
            await trades(250)
            if stats.ends["slow_outbox"] + stats.ends["slow_write"]:
                break
        assert stats.ends["slow_outbox"] + stats.ends["slow_write"] == 1
        collector.resume()
        await trades(20)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert feed.stats.connections >= 2
        # The close frame rarely fits in a full socket buffer: usually seen as a drop.
        assert feed.stats.endings["slow_consumer"] + feed.stats.endings["dropped"] >= 1
        assert not collector.of_kind(UpdateKind.RESET)
        assert_no_gap_or_duplicate(collector.updates)
        seen = [u.seq for u in collector.updates if u.topic == "trade.BTC-USD"]
        assert seen == list(range(1, trade + 1))  # every trade, none twice
    server.stop()


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_an_eviction_close_4008_or_sse_end_is_followed_by_a_resume(
    nursery: trio.Nursery, scheme: str
) -> None:
    # One batch larger than the outbox reaches it in one fanout pass: the server evicts
    # while the socket buffer is still empty, so its close 4008 (SSE: `end`) arrives.
    config = replace(TEST_CONFIG, outbox_max_bytes=8 * 1024, publish_batch_events=1024)
    server = await start_server(nursery, config)
    side = TakerSide.BUY
    # A first trade, so the subscription starts with snapshots: a resume point.
    await server.publish(Trade("itx", "ETH-USD", 0, 3000, 1, side, "b0"))
    await until(lambda: server.context.stats.ingest_events == 1)
    url = f"{scheme}://127.0.0.1:{server.port}"
    async with open_fast_feed(url, ["trade.*", "ticker.*"]) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await until(lambda: feed.position is not None)
        batch = [Trade("itx", "ETH-USD", i, 3000 + i, 1, side, f"b{i}") for i in range(1, 301)]
        await server.publish(*batch)
        await until(lambda: server.context.stats.ingest_events == 1 + len(batch))
        await settle(feed, server, collector)
        await until(lambda: server.context.stats.ends["slow_outbox"] == 1)
        assert feed.stats.endings["slow_consumer"] == 1
        assert feed.stats.connections == 2, (feed.stats, server.context.stats)
        assert_state_equals_server(feed, server)
        seen = [u.seq for u in collector.updates if u.topic == "trade.ETH-USD"]
        assert seen == list(range(1, 302))
        assert not collector.of_kind(UpdateKind.RESET)
    server.stop()


async def test_a_missing_frame_is_found_by_its_sequence_and_replayed(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    rng = random.Random(8)
    async with open_fast_feed(f"ws://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 50)
        await settle(feed, server, collector)
        proxy.drop_next_delta_frame = True
        await publish(server, rng, 60)
        await settle(feed, server, collector)
        assert proxy.dropped_frames == 1
        assert feed.stats.gaps == 1
        assert feed.stats.endings["gap"] == 1
        assert feed.stats.duplicates >= 1  # the replay overlapped what other topics held
        assert_state_equals_server(feed, server)
        assert not collector.of_kind(UpdateKind.RESET)
        assert_no_gap_or_duplicate(collector.updates)
        assert feed.position == Position(7, server.hub.position.offset)
    server.stop()


async def test_a_connection_gone_silent_is_replaced_after_the_stall_timeout(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    rng = random.Random(9)
    url = f"ws://127.0.0.1:{proxy.port}"
    async with open_fast_feed(url, ALL_TOPICS, stall_timeout_s=0.5) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 30)
        await settle(feed, server, collector)
        proxy.freeze_all()  # open, but nothing gets through any more
        await publish(server, rng, 30)
        await until(lambda: feed.stats.endings["stalled"] == 1)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert not collector.of_kind(UpdateKind.RESET)
        assert_no_gap_or_duplicate(collector.updates)
    server.stop()


async def test_a_cut_between_the_hello_and_the_snapshots_still_brings_every_topic(
    nursery: trio.Nursery,
) -> None:
    # Topics with state that then stay quiet: if the hello were a resume point, the
    # reconnect would replay nothing and the feed would wait forever without state.
    server = await start_server(nursery)
    await publish(server, random.Random(12), 60)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    first_only = iter([1])
    proxy.cut_after_frames = lambda: next(first_only, None)  # the hello, then cut
    async with open_fast_feed(f"ws://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await until(lambda: proxy.cuts == 1 and feed.stats.connections >= 2)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert feed.stats.endings["dropped"] >= 1
        assert not collector.of_kind(UpdateKind.RESET)
    server.stop()


async def test_an_eviction_before_any_data_resubscribes_and_reports_the_loss(
    nursery: trio.Nursery,
) -> None:
    # Nothing had state at subscribe time, so only the hello came; then one batch
    # evicts the connection. The hello is no resume point: the reconnect subscribes
    # afresh, and the trades it cannot replay are reported missing, not skipped silently.
    config = replace(TEST_CONFIG, outbox_max_bytes=8 * 1024, publish_batch_events=1024)
    server = await start_server(nursery, config)
    first_hello = server.hub.position
    url = f"ws://127.0.0.1:{server.port}"
    async with open_fast_feed(url, ["trade.*", "ticker.*"]) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        subscribers = server.context.fanout.subscribers
        await until(lambda: any(s.patterns for s in subscribers()))
        side = TakerSide.SELL
        batch = [Trade("itx", "ETH-USD", i, 3000 + i, 1, side, f"c{i}") for i in range(1, 301)]
        await server.publish(*batch)
        await settle(feed, server, collector)
        assert feed.stats.endings["slow_consumer"] == 1
        assert_state_equals_server(feed, server)
        resets = collector.of_kind(UpdateKind.RESET)
        assert sorted((u.topic, u.seq) for u in resets) == [
            ("ticker.ETH-USD", 300),
            ("trade.ETH-USD", 300),
        ]
        until_position = server.hub.position
        assert {u.loss for u in resets} == {Loss(first_hello, until_position, "resubscribed")}
        assert feed.stats.resets == 1
    server.stop()


async def test_a_resume_over_the_rate_limit_backs_off_then_resumes_without_loss(
    nursery: trio.Nursery,
) -> None:
    config = replace(TEST_CONFIG, resume_burst_per_ip=1, resume_rate_per_ip_per_s=5.0)
    server = await start_server(nursery, config)
    proxy = Proxy(server.port)
    await nursery.start(proxy.run)
    rng = random.Random(6)
    async with open_fast_feed(f"ws://127.0.0.1:{proxy.port}", ALL_TOPICS) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 60)
        await settle(feed, server, collector)
        # Another client from the same address spends its one resume; then the feed
        # is cut off and its resume is refused with error 4429 until a token is back.
        other = await RawWebSocket.connect(server.port)
        await other.messages()
        await other.subscribe("quote.*", position=f"7-{server.hub.position.offset}")
        await until(lambda: server.context.stats.resumes == 1)
        proxy.kill_all()
        await until(lambda: feed.stats.endings["limit"] >= 1)
        await publish(server, rng, 40)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert not collector.of_kind(UpdateKind.RESET)
        assert server.context.stats.resumes_limited >= 1
        assert server.context.stats.resumes >= 2
        await other.close()
