"""The fanout tree's leaf degree: cost of one publish at N connections, by leaf size.

In-process, on real UNIX socket pairs (each connection's peer is drained between
rounds, untimed), so the figures include the real `send()` per connection. For each
leaf size it times `Fanout.publish` of a batch of quotes over three symbols to N
connections, in two subscription mixes:

- `same`: every connection holds `quote.*` (a dashboard fleet): one group per leaf.
- `mixed`: each connection holds 1-3 random exact quote topics (trading clients):
  groups are mostly single connections, whatever the leaf size.

Prints the median microseconds per publish and per delivery, and the command.

    .venv/bin/python benchmarks/bench_leaf.py                  # N=5,000, batch 1 and 16
    .venv/bin/python benchmarks/bench_leaf.py --clients 1000 --rounds 20
"""

from __future__ import annotations

import argparse
import random
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ticker.config import Config
from ticker.core.hub import Hub, Published
from ticker.core.topics import TopicPattern
from ticker.model.events import Quote
from ticker.server.fanout import Fanout
from ticker.server.framing import WebSocketFraming
from ticker.server.stats import ServerStats
from ticker.server.subscriber import Subscriber

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
LEAF_SIZES = (16, 64, 256, 1024, 4096)
MAX_SECONDS = 240


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def drain(peers: list[socket.socket]) -> int:
    total = 0
    for peer in peers:
        while True:
            try:
                data = peer.recv(1 << 20)
            except BlockingIOError:
                break
            total += len(data)
            if not data:
                break
    return total


async def measure(
    n: int, leaf_size: int, mix: str, batch_size: int, rounds: int, rng: random.Random
) -> tuple[float, int]:
    """Median seconds per publish, and deliveries per publish."""
    hub = Hub(Config(), 1)
    fanout = Fanout(leaf_size)
    framing = WebSocketFraming()
    stats = ServerStats()
    pairs = [socket.socketpair() for _ in range(n)]
    peers = []
    times: list[float] = []
    step = 0
    try:
        async with trio.open_nursery() as nursery:
            for mine, peer in pairs:
                mine.setblocking(False)
                peer.setblocking(False)
                peers.append(peer)
                subscriber = Subscriber(
                    mine, "bench", framing, hub, stats,
                    outbox_max_bytes=1 << 20, write_timeout_s=5,
                )  # fmt: skip
                subscriber.nursery = nursery
                fanout.add(subscriber)
                if mix == "same":
                    texts = ["quote.*"]
                else:
                    texts = [f"quote.{s}" for s in rng.sample(SYMBOLS, rng.randint(1, 3))]
                for text in texts:
                    subscriber.patterns[text] = TopicPattern.parse(text)
                fanout.patterns_changed(subscriber)
            deliveries = 0
            for _ in range(rounds):
                items: list[Published] = []
                while len(items) < batch_size:
                    symbol = SYMBOLS[step % 3]
                    step += 1
                    quote = Quote("cbx", symbol, step, 100 + step % 50, 1, 200, 1)
                    items += hub.publish(quote, step)
                before = stats.messages_sent
                started = time.perf_counter()
                fanout.publish(items)
                times.append(time.perf_counter() - started)
                deliveries = stats.messages_sent - before
                drain(peers)
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    finally:
        for mine, peer in pairs:
            mine.close()
            peer.close()
    return statistics.median(times), deliveries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 16])
    args = parser.parse_args()
    raise_fd_limit()
    deadline = time.monotonic() + MAX_SECONDS
    print(f"N={args.clients}, median of {args.rounds} publishes; us per publish (per delivery)")
    print("| mix | batch | " + " | ".join(f"leaf {s}" for s in LEAF_SIZES) + " |")
    print("|---|---|" + "---|" * len(LEAF_SIZES))
    for mix in ("same", "mixed"):
        for batch in args.batches:
            cells = []
            for leaf_size in LEAF_SIZES:
                if time.monotonic() > deadline:
                    cells.append("(time budget spent)")
                    continue
                seconds, deliveries = trio.run(
                    measure, args.clients, leaf_size, mix, batch, args.rounds, random.Random(7)
                )
                per = seconds / max(deliveries, 1)
                cells.append(f"{seconds * 1e6:,.0f} ({per * 1e6:.2f})")
            print(f"| {mix} | {batch} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nReproduce: .venv/bin/python benchmarks/bench_leaf.py {' '.join(sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
