"""Helpers for client tests: real servers on 127.0.0.1, events to publish, comparisons."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
import trio

from tests.server.conftest import TEST_CONFIG as SERVER_TEST_CONFIG
from tests.server.conftest import until
from ticker.client import Feed, Update, UpdateKind, open_feed
from ticker.config import Config
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.process import ServerHandle, serve

__all__ = ["TEST_CONFIG", "until"]

TEST_CONFIG = replace(SERVER_TEST_CONFIG, max_venues=16)
"""The server tests' settings with venue topics on: the feed follows them too."""

ALL_TOPICS = ("quote.*", "trade.*", "book.*", "ticker.*", "quote@*.*", "book@*.*")
"""Every topic: the consolidated ones and the venues' own (which `quote.*` and `book.*`
never match)."""
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
TEST_DEADLINE_S = 60


@pytest.fixture
async def deadline(nursery: trio.Nursery) -> None:
    """An absolute deadline: past it, the test fails instead of hanging. Async test
    modules use it on every test (`pytestmark`); pure tests need no event loop."""

    async def watchdog() -> None:
        await trio.sleep(TEST_DEADLINE_S)
        raise TimeoutError(f"test still running after {TEST_DEADLINE_S} s")

    nursery.start_soon(watchdog)


def open_fast_feed(
    url: str | Sequence[str], topics: Iterable[str], **options: Any
) -> AbstractAsyncContextManager[Feed]:
    """A feed that reconnects within 10-100 ms, so healing tests stay quick."""
    return open_feed(url, topics, reconnect_min_s=0.01, reconnect_max_s=0.1, **options)


async def start_server(
    nursery: trio.Nursery, config: Config = TEST_CONFIG, *, port: int = 0, epoch: int = 7
) -> ServerHandle:
    """A server without venues (tests publish), on `port` (0: a free one)."""
    handle: ServerHandle = await nursery.start(
        partial(serve, replace(config, port=port), run_venues=False, epoch=epoch)
    )
    return handle


def free_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def random_event(rng: random.Random, i: int) -> NormalizedEvent:
    """A quote, trade or book change of one of SYMBOLS (each feeds several topics)."""
    symbol = rng.choice(SYMBOLS)
    kind = rng.random()
    if kind < 0.4:
        return Quote("cbx", symbol, i, 100 + rng.randrange(5), 1 + rng.randrange(3), 200, 1)
    if kind < 0.7:
        side = TakerSide.BUY if rng.random() < 0.5 else TakerSide.SELL
        return Trade("fxa", symbol, i, 100 + rng.randrange(9), 1 + rng.randrange(5), side, f"t{i}")
    level = (100 - rng.randrange(5), rng.randrange(4))
    return BookUpdate("itx", symbol, i, (level,), (), False)


async def publish(server: ServerHandle, rng: random.Random, count: int) -> None:
    """Publish `count` random events and wait until the hub has taken them all."""
    target = server.context.stats.ingest_events + count
    for _ in range(count):
        await server.publish(random_event(rng, target))
    await until(lambda: server.context.stats.ingest_events >= target)


class Collector:
    """Reads a feed into a list (the caller side of a test), pausable."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.updates: list[Update] = []
        self.running = trio.Event()
        self.running.set()

    async def run(self) -> None:
        async for update in self.feed:
            self.updates.append(update)
            await self.running.wait()

    def pause(self) -> None:
        self.running = trio.Event()

    def resume(self) -> None:
        self.running.set()

    def of_kind(self, kind: UpdateKind) -> list[Update]:
        return [u for u in self.updates if u.kind is kind]


async def settle(feed: Feed, server: ServerHandle, collector: Collector | None = None) -> None:
    """Wait until the feed has processed everything the server published (and the
    collector, if given, has read every update the feed queued)."""

    def settled() -> bool:
        caught_up = collector is None or len(collector.updates) == feed.stats.updates
        return feed.position == server.hub.position and caught_up

    await until(settled, timeout_s=30)


def assert_state_equals_server(feed: Feed, server: ServerHandle) -> None:
    """Every topic the server has is held with the same state and seq; no others."""
    hub = server.hub
    assert sorted(feed.held_topics()) == sorted(hub.topics())
    for topic in hub.topics():
        snapshot = hub.snapshot(topic)
        assert feed.state(topic) == snapshot.data, topic
        assert feed.seq(topic) == snapshot.seq, topic


def assert_no_gap_or_duplicate(updates: list[Update]) -> None:
    """Per topic, every update's seq follows the previous one (none lost, none twice),
    but for the updates a conflated snapshot says it stands for (`skipped`)."""
    last: dict[str, int] = {}
    for update in updates:
        previous = last.get(update.topic)
        if previous is not None:
            assert update.seq == previous + 1 + update.skipped, (update, previous)
        last[update.topic] = update.seq


Predicate = Callable[[], bool]
