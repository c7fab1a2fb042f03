"""How long one resume from the oldest position of a full replay buffer holds the event loop.

In-process, on a real UNIX socket pair whose peer a task reads as fast as it can. It
fills a hub's replay buffer (100,000 messages by default), then one `subscribe` with
the oldest position, and reports:

- `subscribe`: time.perf_counter around the synchronous `subscribe` call;
- `steps after it`: p99 and longest trio task step while the replay is written (a trio
  Instrument); on a shared machine the max includes preemption by other processes;
- `loop held at most`: the larger of the two, the longest any other client waits;
- `replay written in`: until the peer has read the whole replay.

A "publisher" task calls `flush_nowait` every millisecond, as live traffic would, so
the replay completes even where nothing else continues it.

    .venv/bin/python benchmarks/bench_resume.py                 # WebSocket and SSE, 100k
    .venv/bin/python benchmarks/bench_resume.py --messages 20000 --transport sse
"""

from __future__ import annotations

import argparse
import gc
import random
import socket
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ticker.config import Config
from ticker.core.hub import Hub
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.server.fanout import Fanout
from ticker.server.framing import Framing, SseFraming, WebSocketFraming
from ticker.server.stats import ServerStats
from ticker.server.subscriber import Subscriber
from ticker.server.subscriptions import subscribe

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
TOPICS = ("quote.*", "trade.*", "book.*", "ticker.*")


def random_event(rng: random.Random, i: int) -> NormalizedEvent:
    symbol = rng.choice(SYMBOLS)
    kind = rng.random()
    if kind < 0.4:
        return Quote("cbx", symbol, i, 100 + rng.randrange(5), 1 + rng.randrange(3), 200, 1)
    if kind < 0.7:
        return Trade("fxa", symbol, i, 100 + rng.randrange(9), 1, TakerSide.BUY, f"t{i}")
    level = (100 - rng.randrange(5), rng.randrange(4))
    return BookUpdate("itx", symbol, i, (level,), (), False)


def full_hub(messages: int) -> Hub:
    hub = Hub(Config(replay_max_messages=messages), epoch=7)
    rng = random.Random(1)
    i = 0
    while hub.position.offset < messages + 10:
        hub.publish(random_event(rng, i), time.time_ns())
        i += 1
    return hub


class StepTimer(trio.abc.Instrument):
    """Every task step's duration: how long the loop was held at once."""

    def __init__(self) -> None:
        self.steps_s: list[float] = []
        self._started = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._started:  # not the step that added this instrument
            self.steps_s.append(time.perf_counter() - self._started)

    def percentile_s(self, fraction: float) -> float:
        ordered = sorted(self.steps_s) or [0.0]
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def one_resume(hub: Hub, framing: Framing) -> tuple[float, StepTimer, float, int]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    stats = ServerStats()
    fanout = Fanout(256)
    subscriber = Subscriber(
        ours, "bench", framing, hub, stats, outbox_max_bytes=512 * 1024, write_timeout_s=30
    )
    oldest = f"{hub.epoch}-{hub.replay.first_offset - 1}"
    received = 0
    timer = StepTimer()
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)

        async def read() -> None:
            nonlocal received
            while True:
                await trio.lowlevel.wait_readable(theirs)
                try:
                    data = theirs.recv(1 << 20)
                except BlockingIOError:
                    continue
                received += len(data)

        async def publisher() -> None:
            while True:
                await trio.sleep(0.001)
                subscriber.flush_nowait()

        nursery.start_soon(read)
        nursery.start_soon(publisher)
        await trio.sleep(0.01)
        trio.lowlevel.add_instrument(timer)
        started = time.perf_counter()
        subscribe(
            subscriber,
            TOPICS,
            oldest,
            hub=hub,
            fanout=fanout,
            stats=stats,
            known_symbols=frozenset(SYMBOLS),
            max_subscriptions=512,
        )
        sync_s = time.perf_counter() - started
        while subscriber.backlog or subscriber.draining or subscriber.pending:  # noqa: ASYNC110
            await trio.sleep(0.001)  # a benchmark polls; the subscriber has no event
        await trio.sleep(0.05)  # the peer reads the tail
        total_s = time.perf_counter() - started
        trio.lowlevel.remove_instrument(timer)
        nursery.cancel_scope.cancel()
    ours.close()
    theirs.close()
    return sync_s, timer, total_s, stats.messages_sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--transport", choices=("ws", "sse", "both"), default="both")
    args = parser.parse_args()
    transports = ("ws", "sse") if args.transport == "both" else (args.transport,)
    for transport in transports:
        hub = full_hub(args.messages)  # fresh: SSE renders JSON on first use
        gc.collect()
        gc.freeze()  # the buffer is long-lived: keep full collections out of the figures
        framing: Framing = WebSocketFraming() if transport == "ws" else SseFraming()
        sync_s, timer, total_s, sent = trio.run(one_resume, hub, framing)
        longest_s = timer.percentile_s(1.0)
        print(
            f"{transport}: resume of {len(hub.replay)} messages ({sent} sent): "
            f"subscribe {sync_s * 1000:.1f} ms; steps after it: "
            f"p99 {timer.percentile_s(0.99) * 1000:.1f} ms, max {longest_s * 1000:.1f} ms; "
            f"loop held at most {max(sync_s, longest_s) * 1000:.1f} ms; "
            f"replay written in {total_s * 1000:.0f} ms"
        )
        gc.unfreeze()
    print(f"command: .venv/bin/python benchmarks/bench_resume.py --messages {args.messages}")


if __name__ == "__main__":
    main()
