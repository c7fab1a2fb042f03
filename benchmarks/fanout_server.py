"""The fanout benchmark's server under test: ticker's own `serve()` plus a publisher.

Runs `ticker.server.process.serve` without venues and a publisher task that feeds
`handle.events` with `Quote` events, each of which publishes one quote delta of 56
bytes of msgpack (a 100th are keyframes of 83 bytes). bench_fanout.py drives it through
stdin, one command a line, and reads one JSON object a line from stdout:

    flood SECONDS      publish as fast as the hub takes events (it batches what waits)
    lockstep SECONDS   publish one event, wait until the hub has fanned it out, repeat
    rate R SECONDS     publish R events a second on an absolute schedule
    paced R SECONDS    the same, but one `await send` per event, as the venue tasks do
    halt               stop publishing           -> {"event": "halted", ...}
    stats              the server's counters     -> {"event": "stats", ...}
    quit               stop the server and exit (so does end of input, or --max-seconds)

It runs with ticker's SHIPPED settings (`Config()` defaults: `publish_batch_events`,
`heartbeat_s`, outbox and send buffer sizes) unless a flag says otherwise, and reports
them in its `ready` line; once started it applies the GC policy `ticker serve` applies
(`gc_gen0_threshold`, start-up frozen). `--venues` runs the real venue pipeline instead of the
publisher (the simulated venues at `--venue-rate` messages a second each: books,
trades, quotes, ticker; publishing commands are then refused).

In a cluster (bench_cluster.py), `--role hub --redis-url URL` runs the publisher into a
hub that writes the cluster log, and `--role edge --redis-url URL` runs no publisher at
all: it follows the log and answers `stats` (publishing commands are refused).

A benchmark harness only: it uses the server's public handle and never changes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from functools import partial
from typing import Any

import trio

import ticker
from ticker.config import Config
from ticker.model.events import NormalizedEvent, Quote
from ticker.server.gc_policy import apply_gc_policy
from ticker.server.process import ServerHandle, serve

SYMBOLS = (("BTC-USD", 43_250), ("ETH-USD", 3_120), ("SOL-USD", 150))
NANOS = 10**9
CYCLE = 8
"""Updates per symbol before the events repeat; consecutive ones always differ."""
FLOOD_CHUNK = 256
"""Events offered without blocking before the flood publisher yields once."""
SHOWN = ("publish_batch_events", "heartbeat_s", "outbox_max_bytes", "send_buffer_bytes")
"""Settings the `ready` line always states (the ones a fanout figure depends on)."""
SETTINGS_REPORTED = (
    *SHOWN,
    "max_connections",
    "venue_rate_per_s",
    "keyframe_interval",
    "fanout_leaf_size",
    "write_timeout_s",
    "ingest_queue_batches",
)
"""Settings the `ready` line states when they differ from the shipped default."""
LOCKSTEP_SPIN_LIMIT = 10_000
"""Scheduler rounds a lockstep publisher waits for the hub before giving up on one event."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the harness."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the new limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def quote_events() -> list[NormalizedEvent]:
    """Quotes that cycle over three symbols; each changes the bid and its size.

    One venue only, so the consolidated quote is that venue's quote and each event
    publishes exactly one delta `{"bid": ..., "bid_size": ...}` (56 bytes).
    """
    events: list[NormalizedEvent] = []
    for step in range(CYCLE):
        for symbol, price in SYMBOLS:
            bid = price * NANOS + (step % 4) * NANOS // 2
            bid_size = NANOS + (step + 1) * NANOS // 4
            events.append(Quote("cbx", symbol, 0, bid, bid_size, (price + 1) * NANOS, 3 * NANOS))
    return events


class Publisher:
    """Feeds the server's event channel in one of three modes, one mode at a time."""

    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self.events = quote_events()
        self.sent = 0
        self.scope: trio.CancelScope | None = None

    def peek(self, ahead: int = 0) -> NormalizedEvent:
        """The next event to send (`sent` counts the ones the channel took)."""
        return self.events[(self.sent + ahead) % len(self.events)]

    async def prime(self) -> None:
        """Publish one quote per symbol, so a subscriber gets a snapshot of each."""
        stats = self.handle.context.stats
        target = stats.ingest_events + len(SYMBOLS)
        for _ in SYMBOLS:
            await self.handle.publish(self.peek())
            self.sent += 1
        with trio.fail_after(10):
            while stats.ingest_events < target:  # noqa: ASYNC110 (the hub has no event)
                await trio.sleep(0.01)

    async def flood(self, seconds: float) -> None:
        """As fast as the hub takes events: the channel stays full, the hub batches."""
        send = self.handle.events
        deadline = trio.current_time() + seconds
        while trio.current_time() < deadline:
            try:
                for _ in range(FLOOD_CHUNK):
                    send.send_nowait((self.peek(),))
                    self.sent += 1
            except trio.WouldBlock:
                await send.send((self.peek(),))
                self.sent += 1
            else:
                await trio.lowlevel.checkpoint()

    async def lockstep(self, seconds: float) -> None:
        """One event at a time: the next goes only once the hub has fanned out this one.

        The hub fans out synchronously (`Fanout.publish` writes into every idle socket
        before the hub awaits again), so each write carries one message unless a
        connection's kernel buffer was full (then its drain task coalesces).
        """
        stats = self.handle.context.stats
        send = self.handle.events
        deadline = trio.current_time() + seconds
        while trio.current_time() < deadline:
            target = stats.ingest_events + 1
            await send.send((self.peek(),))
            self.sent += 1
            for _ in range(LOCKSTEP_SPIN_LIMIT):
                if stats.ingest_events >= target:
                    break
                await trio.lowlevel.checkpoint()

    async def rate(self, per_s: float, seconds: float) -> None:
        """`per_s` events a second on an absolute schedule.

        Whatever is due goes into the channel at once, as a feed's messages would wait
        in its socket: when the hub falls behind, its next batch takes all of them.
        (One blocking `send` per event would hand each to the waiting hub alone.)
        """
        send = self.handle.events
        start = trio.current_time()
        total = int(per_s * seconds)
        done = 0
        while done < total:
            due = min(total, int((trio.current_time() - start) * per_s) + 1)
            for _ in range(due - done):
                try:
                    send.send_nowait((self.peek(),))
                except trio.WouldBlock:
                    await send.send((self.peek(),))
                self.sent += 1
            done = due
            await trio.sleep_until(start + done / per_s)

    async def paced(self, per_s: float, seconds: float) -> None:
        """`per_s` events a second, as the venue ingest tasks send them
        (ticker/server/venue_feed.py): everything due at a wake-up goes as one batch, as a
        socket read returns everything the venue sent meanwhile."""
        send = self.handle.events
        start = trio.current_time()
        total = int(per_s * seconds)
        done = 0
        while done < total:
            await trio.sleep_until(start + done / per_s)
            due = min(total, int((trio.current_time() - start) * per_s) + 1)
            batch = [self.peek(i) for i in range(due - done)]
            await send.send(batch)
            self.sent += len(batch)
            done = due

    async def run(self, mode: str, args: list[float], task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self.scope = scope
            task_status.started()
            if mode == "flood":
                await self.flood(args[0])
            elif mode == "lockstep":
                await self.lockstep(args[0])
            elif mode == "paced":
                await self.paced(args[0], args[1])
            else:
                await self.rate(args[0], args[1])

    def halt(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
            self.scope = None


async def following(handle: ServerHandle) -> None:
    """Wait (bounded) until an edge holds the log's state, so its clients get snapshots."""
    status = handle.context.cluster
    assert status is not None
    with trio.fail_after(30):
        while status.rebuilds < 1:  # noqa: ASYNC110 (the follower sets no event)
            await trio.sleep(0.02)


def stats_fields(handle: ServerHandle, publisher: Publisher | None) -> dict[str, Any]:
    stats = handle.context.stats
    fields = {
        "published": stats.published,
        "ingest_events": stats.ingest_events,
        "messages_sent": stats.messages_sent,
        "writes": stats.writes,
        "coalesced_writes": stats.coalesced_writes,
        "bytes_sent": stats.bytes_sent,
        "conflations": stats.conflations,
        "connections": len(handle.context.fanout),
        "ends": dict(stats.ends),
        "publisher_sent": publisher.sent if publisher is not None else 0,
        "position": str(handle.context.hub.position),
    }
    status = handle.context.cluster
    if status is not None:
        fields |= {
            "appended_batches": status.appended_batches,
            "applied_entries": status.applied_entries,
            "leading": status.leading,
            "log_errors": status.log_errors,
            "follow_lag_s": status.follow_lag_s,
        }
    return fields


async def control(handle: ServerHandle, publisher: Publisher | None, nursery: trio.Nursery) -> None:
    """Serve the harness's commands until `quit` or end of input."""
    pending = ""
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            pending += data.decode()
            *lines, pending = pending.split("\n")
            for line in lines:
                words = line.split()
                if not words:
                    continue
                command, args = words[0], [float(w) for w in words[1:]]
                if publisher is None and command in ("flood", "lockstep", "rate", "paced", "halt"):
                    emit("error", message=f"{command}: no publisher (an edge, or --venues)")
                elif command in ("flood", "lockstep", "rate", "paced"):
                    assert publisher is not None
                    publisher.halt()
                    await nursery.start(publisher.run, command, args)
                    emit("publishing", mode=command, args=args)
                elif command == "halt":
                    assert publisher is not None
                    publisher.halt()
                    emit("halted", **stats_fields(handle, publisher))
                elif command == "stats":
                    emit("stats", **stats_fields(handle, publisher))
                elif command == "quit":
                    return
                else:
                    emit("error", message=f"unknown command {line!r}")


async def main(args: argparse.Namespace) -> None:
    fd_limit = raise_fd_limit()
    shipped = Config()
    config = Config(
        host="127.0.0.1",
        port=args.port,
        heartbeat_s=args.heartbeat_s if args.heartbeat_s is not None else shipped.heartbeat_s,
        max_connections=args.max_connections,
        publish_batch_events=args.batch,
        venue_rate_per_s=args.venue_rate,
        role=args.role,
        redis_url=args.redis_url,
        cluster=args.cluster,
    )
    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            serving = partial(serve, config, run_venues=args.venues)
            handle: ServerHandle = await nursery.start(serving)
            publisher: Publisher | None = None
            if args.venues:
                pass  # the venues publish; a client's subscribe burst holds what they sent
            elif config.role != "edge":
                publisher = Publisher(handle)
                await publisher.prime()
            else:
                await following(handle)
            # As `ticker serve` does once started (ticker/cli.py): ticker as shipped.
            gc_policy = apply_gc_policy(config.gc_gen0_threshold)
            emit(
                "ready",
                port=handle.port,
                pid=os.getpid(),
                fd_limit=fd_limit,
                publish_batch_events=config.publish_batch_events,
                settings={
                    name: getattr(config, name)
                    for name in SETTINGS_REPORTED
                    if getattr(config, name) != getattr(shipped, name) or name in SHOWN
                },
                venues=list(config.venues) if args.venues else [],
                role=config.role,
                gc_gen0_threshold=config.gc_gen0_threshold if gc_policy else None,
                code=os.path.dirname(ticker.__file__),
            )
            await control(handle, publisher, nursery)
            handle.stop()
            nursery.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="lifetime bound")
    parser.add_argument("--max-connections", type=int, default=20_000)
    parser.add_argument(
        "--batch", type=int, default=Config().publish_batch_events, help="publish_batch_events"
    )
    parser.add_argument(
        "--heartbeat-s", type=float, default=None, help="heartbeat_s (default: shipped)"
    )
    parser.add_argument("--venues", action="store_true", help="run the simulated venues")
    parser.add_argument(
        "--venue-rate", type=float, default=Config().venue_rate_per_s, help="venue_rate_per_s"
    )
    parser.add_argument("--role", default="all", choices=("all", "hub", "edge"))
    parser.add_argument("--redis-url", default="", help="the cluster log (hub, edge)")
    parser.add_argument("--cluster", default=Config().cluster)
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
