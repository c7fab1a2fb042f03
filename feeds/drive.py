"""Drive a (faulty) simulated feed through an adapter the way the ingest shell does.

Shared by tests, benchmarks and the dictionary trainer: frames go to `on_message`,
stalls and a periodic tick to `on_timer`, disconnects to `on_disconnect`, and every
snapshot request back to the simulator; events go to an optional sink. Synchronous and
deterministic: time is the simulator's, never a clock's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

from feeds.faults import Disconnect, FaultPlan, FaultyFeed, Stall
from feeds.simulator import make_simulator
from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput
from ticker.ingest.normalizer import Phase
from ticker.model.events import NormalizedEvent
from ticker.venues import AdapterBase, make_adapter

FAST_RESYNC = IngestConfig(resync_timeout_ns=50_000_000, resync_max_backoff_ns=400_000_000)
"""Short resync timeouts so lost snapshots are re-requested within a few hundred frames."""


@dataclass
class Run:
    """A simulator, its faulty feed and an adapter, plus what came out."""

    feed: FaultyFeed
    adapter: AdapterBase
    now_ns: int = 0
    events: list[NormalizedEvent] = field(default_factory=list)
    keep_events: bool = False
    crossed: list[str] = field(default_factory=list)
    sink: Callable[[NormalizedEvent, int], None] | None = None
    """Called with every event and the current simulated time."""

    def _take(self, out: AdapterOutput) -> None:
        for request in out.requests:
            self.feed.request(request)
        if self.keep_events:
            self.events.extend(out.events)
        if self.sink is not None:
            for event in out.events:
                self.sink(event, self.now_ns)

    def step(self) -> None:
        """Deliver one item from the feed (a frame, a stall or a disconnect)."""
        item = self.feed.next()
        if isinstance(item, Stall):
            self.now_ns = max(self.now_ns, self.feed.sim.now_ns)
            self._take(self.adapter.on_timer(self.now_ns))
        elif isinstance(item, Disconnect):
            self._take(self.adapter.on_disconnect(self.now_ns))
        else:
            self.now_ns = max(self.now_ns, item.ts_ns)
            self._take(self.adapter.on_message(item.data, self.now_ns))

    def run(self, frames: int, *, timer_every: int = 16, check_crossed: bool = False) -> None:
        """Deliver `frames` items, ticking the timer every `timer_every` of them."""
        for i in range(frames):
            self.step()
            if i % timer_every == 0:
                self._take(self.adapter.on_timer(self.now_ns))
            if check_crossed:
                for symbol, track in self.adapter.norm.tracks.items():
                    if track.book.crossed():
                        self.crossed.append(symbol)

    def drain(self, *, settle: int = 600, limit: int = 50_000) -> None:
        """Stop the faults, then run until every book is live and nothing is in flight.

        `settle` frames first give every symbol a message after the faults, so a gap
        left silent by a lost last message is seen.
        """
        self.feed.set_plan(FaultPlan())
        self.run(settle)
        for i in range(limit):
            if self.feed.idle and all(p is Phase.LIVE for p in self.adapter.phases().values()):
                return
            self.step()
            if i % 16 == 0:
                self._take(self.adapter.on_timer(self.now_ns))
        raise AssertionError(f"not settled after {limit} frames: {self.adapter.phases()}")


def make_run(
    venue: str,
    seed: int,
    plan: FaultPlan | None = None,
    *,
    rate_per_s: float = 2_000.0,
    symbols: list[str] | None = None,
    config: IngestConfig = FAST_RESYNC,
    keep_events: bool = False,
    sink: Callable[[NormalizedEvent, int], None] | None = None,
) -> Run:
    """A fresh simulator, feed and adapter for `venue`, all derived from `seed`."""
    sim = make_simulator(venue, seed, rate_per_s, symbols)
    listings = [sim.listings[s] for s in sim.books()]
    feed = FaultyFeed(sim, plan or FaultPlan(), Random(f"faults:{seed}"))
    adapter = make_adapter(venue, listings, config)
    return Run(feed, adapter, sim.now_ns, keep_events=keep_events, sink=sink)
