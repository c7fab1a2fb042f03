"""One ingest task per venue: simulator -> faults -> adapter -> the hub's channel.

The simulated venue runs in-process and is paced against the trio clock, so a rate of
20 messages a second is 20 a second of real time. The task feeds the venue's adapter,
routes its snapshot requests back to the venue, and sends normalized events into the
bounded channel to the hub: when the hub falls behind, the venue waits (backpressure
upstream of the sequencer). A disconnect withdraws the venue's books, waits with
exponential backoff and jitter, and reconnects. Decisions about the data stay in the
adapter; this module only moves bytes and keeps time.
"""

from __future__ import annotations

import logging
import random
import time

import trio

from feeds.faults import Disconnect, FaultPlan, FaultyFeed, Stall
from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.ingest.adapter import AdapterOutput, IngestCounters, VenueAdapter
from ticker.model.events import NormalizedEvent
from ticker.venues import make_adapter

log = logging.getLogger("ticker.ingest")

TIMER_PERIOD_S = 0.25
"""How often the adapter's `on_timer` runs (overdue resyncs are re-requested)."""


async def run_venue(
    venue: str,
    config: Config,
    events: trio.MemorySendChannel[NormalizedEvent],
    counters: dict[str, IngestCounters],
    faults: FaultPlan | None = None,
    start_ns: int | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one simulated venue into `events` until cancelled.

    `counters[venue]` is the adapter's live counters, for metrics and the CLI;
    `start_ns` is the simulated start time (pass the same one to every venue).
    """
    # One start time for every venue, so they share the same simulated mid-price path.
    start = start_ns if start_ns is not None else time.time_ns()
    simulator = make_simulator(venue, config.seed, config.venue_rate_per_s, start_ns=start)
    adapter: VenueAdapter = make_adapter(venue)
    counters[venue] = adapter.counters
    feed = FaultyFeed(
        simulator, faults or FaultPlan(), random.Random(f"faults:{config.seed}:{venue}")
    )
    jitter = random.Random()
    # Simulated ns -> trio seconds: the venue's clock runs in step with ours.
    origin_trio = trio.current_time()
    origin_sim = simulator.now_ns
    backoff_s = config.reconnect_min_s
    next_timer = origin_trio + TIMER_PERIOD_S
    task_status.started()
    async with events:
        while True:
            item = feed.next()
            if isinstance(item, Disconnect):
                log.warning("venue %s disconnected; reconnecting in about %.2f s", venue, backoff_s)
                await _forward(adapter.on_disconnect(time.time_ns()), events, feed)
                delay = backoff_s * (0.5 + jitter.random())
                await trio.sleep(delay)
                simulator.advance(int(delay * 1e9))
                backoff_s = min(backoff_s * 2, config.reconnect_max_s)
                continue
            if isinstance(item, Stall):
                continue  # the simulator's clock moved on; pacing below waits it out
            due = origin_trio + (item.ts_ns - origin_sim) / 1e9
            await trio.sleep_until(due)
            now_ns = time.time_ns()
            await _forward(adapter.on_message(item.data, now_ns), events, feed)
            backoff_s = config.reconnect_min_s
            if trio.current_time() >= next_timer:
                next_timer = trio.current_time() + TIMER_PERIOD_S
                await _forward(adapter.on_timer(now_ns), events, feed)


async def _forward(
    output: AdapterOutput, events: trio.MemorySendChannel[NormalizedEvent], feed: FaultyFeed
) -> None:
    for request in output.requests:
        feed.request(request)
    for event in output.events:
        await events.send(event)
