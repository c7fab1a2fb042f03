"""Fixtures for the application's tests: a real ServerContext and its hub task, no port.

The hub task is the server's own (`run_hub`), fed through a bounded channel exactly as
the venues feed it; quart's test client talks to the application in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import trio
from quart.typing import TestClientProtocol as AppClient

from ticker.app import create_app
from ticker.config import Config
from ticker.core.hub import Hub
from ticker.model.events import NormalizedEvent
from ticker.server.context import ServerContext
from ticker.server.fanout import Fanout
from ticker.server.process import known_symbols, run_hub
from ticker.server.stats import ServerStats

EPOCH = 11
TEST_DEADLINE_S = 60


@pytest.fixture
async def deadline(nursery: trio.Nursery) -> None:
    """An absolute deadline for an async test: past it, it fails instead of hanging.

    Not autouse, since synchronous tests cannot take trio fixtures; every fixture
    that runs tasks depends on it, and tests that start servers ask for it."""

    async def watchdog() -> None:
        await trio.sleep(TEST_DEADLINE_S)
        raise TimeoutError(f"test still running after {TEST_DEADLINE_S} s")

    nursery.start_soon(watchdog)


def make_context(config: Config | None = None) -> ServerContext:
    """A server's shared state, built as `ticker.server.process.serve` builds it."""
    config = config or Config(port=0)
    return ServerContext(
        config,
        Hub(config, EPOCH),
        Fanout(config.fanout_leaf_size),
        ServerStats(),
        known_symbols(config.venues),
    )


@dataclass
class LiveHub:
    """A context whose hub task runs; `publish` waits until the hub has taken the events."""

    context: ServerContext
    events: trio.MemorySendChannel[Sequence[NormalizedEvent]]
    sent: int = 0

    async def publish(self, *events: NormalizedEvent) -> None:
        await self.events.send(events)
        self.sent += len(events)
        with trio.fail_after(20):
            while self.context.stats.ingest_events < self.sent:  # noqa: ASYNC110
                await trio.sleep(0.005)


@pytest.fixture
async def live_hub(nursery: trio.Nursery, deadline: None) -> LiveHub:
    context = make_context()
    send, receive = trio.open_memory_channel[Sequence[NormalizedEvent]](16)
    nursery.start_soon(run_hub, context, receive)
    return LiveHub(context, send)


@pytest.fixture
async def client(live_hub: LiveHub) -> AsyncIterator[AppClient]:
    app = create_app(live_hub.context)
    async with app.test_app() as test_app:
        yield test_app.test_client()
