"""A whole ticker server for a browser to talk to, on its own thread.

One trio run holds the streaming server (`serve`, real port; its front hands every
other path to the application), the application again on hypercorn's own trio `serve`
on a port of its own (the layout used until that hand-off landed), an optional lossy
proxy in front of the stream, and a publisher of a random market. The test thread
drives it through the run's trio token; everything in the run ends when the test stops
it, or by itself after `LIFETIME_S`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from tests.app.market import RandomMarket
from tests.browser.lossy_proxy import DropPlan, serve_lossy_proxy
from ticker.app import create_app
from ticker.config import Config
from ticker.core.codec import render_json
from ticker.model.events import NormalizedEvent
from ticker.server.framing import SseFraming
from ticker.server.process import ServerHandle, serve
from ticker.server.stats import EndReason

T = TypeVar("T")

EPOCH = 1_763_762_000
LIFETIME_S = 120
"""The run ends by itself after this long, whatever the test does."""
START_TIMEOUT_S = 30
PAGE_CHANNELS = ("quote", "ticker", "trade")
"""What the dashboard subscribes to (`quote.*,ticker.*,trade.*`)."""


class LiveServer:
    """Start with `with LiveServer(config) as server:`; every method is for the test thread."""

    def __init__(
        self,
        config: Config,
        *,
        seed: int = 1,
        drop: DropPlan | None = None,
        epoch: int = EPOCH,
    ) -> None:
        self.config = config
        self.epoch = epoch
        self.clock_offset_s = 0.0
        """Added to the wall clock the server checks tokens' `exp` with."""
        self.market = RandomMarket(random.Random(seed))
        self.drop = drop
        self.stream_port = 0
        self.app_port = 0
        self.proxy_port = 0
        self.sent = 0
        self._handle: ServerHandle | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._publisher: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ticker-live-server", daemon=True)

    # -- lifetime --------------------------------------------------------------------

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._token is None:
            self._raise_from_thread()
            raise TimeoutError(f"server thread not ready within {START_TIMEOUT_S} s")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive() and self._cancel is not None:
            self._call(self._cancel.cancel)
        self._thread.join(START_TIMEOUT_S)
        if self._thread.is_alive():
            raise TimeoutError("server thread did not stop")
        self._raise_from_thread()

    def _raise_from_thread(self) -> None:
        if self._error is not None:
            raise RuntimeError("the server thread failed") from self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the test thread by __exit__
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.move_on_after(LIFETIME_S) as cancel:
            self._cancel = cancel
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                handle: ServerHandle = await nursery.start(
                    partial(serve, self.config, run_venues=False, epoch=self.epoch)
                )
                self._handle = handle
                if handle.context.auth is not None:
                    handle.context.auth.clock = lambda: time.time() + self.clock_offset_s
                self.stream_port = handle.port
                hypercorn = HypercornConfig()
                hypercorn.bind = ["127.0.0.1:0"]
                hypercorn.accesslog = None
                binds: list[str] = await nursery.start(
                    partial(hypercorn_serve, create_app(handle.context), hypercorn)
                )
                self.app_port = int(binds[0].rsplit(":", 1)[1])
                if self.drop is not None:
                    self.proxy_port = await nursery.start(
                        serve_lossy_proxy, self.stream_port, self.drop
                    )
                self._ready.set()

    # -- calls into the run ----------------------------------------------------------

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        return trio.from_thread.run_sync(function, *args, trio_token=self._token)

    def _await(self, function: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run(function, *args, trio_token=self._token)

    @property
    def handle(self) -> ServerHandle:
        assert self._handle is not None
        return self._handle

    def page_url(self, *, one_port: bool = False, stream_port: int | None = None) -> str:
        """The dashboard: from the streaming port itself (`one_port`), or from the app's
        own port with its stream pointed at `stream_port` (default: the server's)."""
        if one_port:
            return f"http://127.0.0.1:{self.stream_port}/"
        port = stream_port or self.stream_port
        return f"http://127.0.0.1:{self.app_port}/?stream=http://127.0.0.1:{port}"

    def start_publishing(self, interval_s: float = 0.02, *, books: bool = False) -> None:
        """Publish two events every `interval_s` until `stop_publishing` (book level
        changes among them when `books`)."""
        self._await(self._start_publisher, interval_s, books)

    async def _start_publisher(self, interval_s: float, books: bool) -> None:
        assert self._nursery is not None
        await self._nursery.start(self._publish_forever, interval_s, books)

    async def _publish_forever(
        self,
        interval_s: float,
        books: bool,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.CancelScope() as scope:
            self._publisher = scope
            task_status.started()
            while True:
                events = self.market.events(2, books=books)
                await self.handle.publish(*events)
                self.sent += len(events)
                await trio.sleep(interval_s)

    def stop_publishing(self) -> str:
        """Stop the publisher; returns the hub's position once it took every event."""
        return str(self._await(self._stop_publisher))

    async def _stop_publisher(self) -> object:
        if self._publisher is not None:
            self._publisher.cancel()
        await self._settle()
        return self.handle.hub.position

    async def _settle(self) -> None:
        stats = self.handle.context.stats
        with trio.fail_after(20):
            while stats.ingest_events < self.sent:  # noqa: ASYNC110
                await trio.sleep(0.005)

    def publish_burst(self, count: int) -> str:
        """Publish `count` events at once; returns the hub's position after them."""
        return str(self._await(self._publish_burst, count))

    async def _publish_burst(self, count: int) -> object:
        events = self.market.events(count, books=False)
        await self.handle.publish(*events)
        self.sent += len(events)
        await self._settle()
        return self.handle.hub.position

    def publish(self, *events: NormalizedEvent) -> str:
        """Publish these events; returns the hub's position once it took them."""
        return str(self._await(self._publish_events, events))

    async def _publish_events(self, events: tuple[NormalizedEvent, ...]) -> object:
        await self.handle.publish(*events)
        self.sent += len(events)
        await self._settle()
        return self.handle.hub.position

    def topic_state(self, topic: str) -> dict[str, Any]:
        """One topic's snapshot data in the SSE JSON form."""
        return self._call(lambda: json.loads(render_json(self.handle.hub.snapshot(topic)))["data"])

    def drop_sse_clients(self, reason: EndReason) -> int:
        """End every SSE connection for `reason`, in the server's loop; how many ended."""
        return self._call(self._drop, reason)

    def _drop(self, reason: EndReason) -> int:
        ended = 0
        for subscriber in self.handle.context.fanout.subscribers():
            if isinstance(subscriber.framing, SseFraming):
                subscriber.end(reason)
                ended += 1
        return ended

    def position(self) -> str:
        return self._call(lambda: str(self.handle.hub.position))

    def page_topics_state(self) -> dict[str, dict[str, Any]]:
        """Every topic the page follows, as `{"seq", "data"}` in the SSE JSON form."""
        return self._call(self._page_topics_state)

    def _page_topics_state(self) -> dict[str, dict[str, Any]]:
        hub = self.handle.hub
        state = {}
        for topic in hub.topics():
            if topic.partition(".")[0] in PAGE_CHANNELS:
                snapshot = json.loads(render_json(hub.snapshot(topic)))
                state[topic] = {"seq": snapshot["seq"], "data": snapshot["data"]}
        return state

    def counters(self) -> dict[str, int]:
        """The server's resume/reset/end counters now."""
        return self._call(self._counters)

    def _counters(self) -> dict[str, int]:
        stats = self.handle.context.stats
        return {
            "resumes": stats.resumes,
            "resets": stats.resets,
            "sse_open": stats.connections_open["sse"],
            **{f"end_{k}": v for k, v in stats.ends.items()},
        }
