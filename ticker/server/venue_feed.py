"""One venue feed task per venue: simulator -> faults -> adapter -> the hub's channel.

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
from collections.abc import Sequence

import trio

from feeds.faults import Disconnect, FaultPlan, FaultyFeed, Stall
from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.ingest.contract import AdapterOutput, IngestCounters, VenueAdapter
from ticker.model.events import NormalizedEvent
from ticker.venues import make_adapter

log = logging.getLogger("ticker.ingest")

TIMER_PERIOD_S = 0.25
"""How often the adapter's `on_timer` runs (overdue resyncs are re-requested)."""
READ_BATCH_MESSAGES = 256
"""At most this many venue messages go into one batch (one `read`) before we yield."""


async def run_venue(
    venue: str,
    config: Config,
    events: trio.MemorySendChannel[Sequence[NormalizedEvent]],
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
    # Everything the venue sent while we were busy is handled as one read, as a socket
    # read returns all that waits: its events go to the hub as one batch, so a hub that
    # falls behind catches up in large batches instead of one fanout per event.
    pending: list[NormalizedEvent] = []
    read = 0
    async with events:
        while True:
            item = feed.next()
            if isinstance(item, Disconnect):
                pending += adapter.on_disconnect(time.time_ns()).events
                await _send(pending, events)
                log.warning("venue %s disconnected; reconnecting in about %.2f s", venue, backoff_s)
                delay = backoff_s * (0.5 + jitter.random())
                await trio.sleep(delay)
                simulator.advance(int(delay * 1e9))
                backoff_s = min(backoff_s * 2, config.reconnect_max_s)
                continue
            if isinstance(item, Stall):
                continue  # the simulator's clock moved on; pacing below waits it out
            due = origin_trio + (item.ts_ns - origin_sim) / 1e9
            if due > trio.current_time() or read >= READ_BATCH_MESSAGES:
                await _send(pending, events)
                read = 0
                await trio.sleep_until(due)
            now_ns = time.time_ns()
            pending += _handle(adapter.on_message(item.data, now_ns), feed)
            read += 1
            backoff_s = config.reconnect_min_s
            if trio.current_time() >= next_timer:
                next_timer = trio.current_time() + TIMER_PERIOD_S
                pending += _handle(adapter.on_timer(now_ns), feed)


def _handle(output: AdapterOutput, feed: FaultyFeed) -> list[NormalizedEvent]:
    """Route the adapter's snapshot requests to the venue; return its events."""
    for request in output.requests:
        feed.request(request)
    return output.events


async def _send(
    pending: list[NormalizedEvent], events: trio.MemorySendChannel[Sequence[NormalizedEvent]]
) -> None:
    """Send what `pending` holds as one batch (waits while the hub's queue is full)."""
    if pending:
        batch = pending.copy()
        pending.clear()
        await events.send(batch)
