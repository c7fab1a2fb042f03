"""A client whose book diverged repairs it from a real server: the held book is
corrupted on purpose, the next book message carrying a checksum finds it, and the feed
re-snapshots (a RESET with reason `checksum`) until it holds the server's book again."""

from __future__ import annotations

import pytest
import trio

from tests.client.conftest import (
    Collector,
    assert_state_equals_server,
    open_fast_feed,
    settle,
    start_server,
    until,
)
from ticker.client import UpdateKind
from ticker.model.events import BookUpdate
from ticker.server.process import ServerHandle

pytestmark = pytest.mark.usefixtures("deadline")


async def publish_book(server: ServerHandle, start: int, count: int) -> None:
    """`count` changes of itx's BTC-USD book (each moves one level: one message per
    topic), then wait until the hub has taken them."""
    target = server.context.stats.ingest_events + count
    for i in range(start, start + count):
        level = (100_000_000_000 - (i % 12) * 1_000_000_000, (i % 5 + 1) * 1_000_000)
        await server.publish(BookUpdate("itx", "BTC-USD", i, (level,), (), False))
    await until(lambda: server.context.stats.ingest_events >= target)


@pytest.mark.parametrize(
    ("scheme", "topic"), [("ws", "book.BTC-USD"), ("http", "book@itx.BTC-USD")]
)
async def test_a_corrupted_book_is_found_by_its_checksum_and_repaired_from_the_server(
    nursery: trio.Nursery, scheme: str, topic: str
) -> None:
    server = await start_server(nursery)
    url = f"{scheme}://127.0.0.1:{server.port}"
    async with open_fast_feed(url, ["book.*", "book@*.*"]) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish_book(server, 0, 15)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert feed.stats.checksum_mismatches == 0  # every checksum so far held
        # Corrupt the client's book: a best bid the server never had (within the top
        # levels the checksum covers).
        held = feed._tracker.mirror.held[topic]
        held.bids = held.bids.with_levels([(10**15, 5)])  # a side is replaced, never changed
        assert feed.state(topic) != server.hub.snapshot(topic).data
        await publish_book(server, 15, 10)  # seq 20 of both books carries a checksum
        await until(lambda: feed.stats.checksum_mismatches == 1)
        await settle(feed, server, collector)
        assert_state_equals_server(feed, server)
        assert feed.stats.checksum_mismatches == 1 and feed.stats.gaps == 0
        resets = collector.of_kind(UpdateKind.RESET)
        assert {u.topic for u in resets} == {"book.BTC-USD", "book@itx.BTC-USD"}
        assert {u.loss.reason for u in resets if u.loss is not None} == {"checksum"}
        assert feed.stats.endings["gap"] == 1
