"""The fanout benchmark's reference peer: the `websockets` library's broadcast() on uvloop.

Serves `GET /v1/ws` with subprotocol `ticker.v1`. The client's first command (the
subscribe) adds it to the broadcast set and is answered with one frame of three
snapshots, as ticker answers `["sub", ["quote.*"], null]`; later commands are read and
ignored. Messages have ticker's shape and size (`["d", topic, seq, offset, ts, {"bid",
"bid_size"}]`, 56 bytes, a keyframe every 100 per topic), each encoded once with a fresh
ts and handed to `broadcast()`. Same control protocol as fanout_server.py (stdin
commands, JSON lines on stdout; `paced` is `rate` here).

`--coalesce K` lets the peer coalesce as ticker does, on equal terms: whatever the
publisher has at hand (a flood step, or the messages due at once when `rate` is late)
goes as several messages in one frame, at most K (ticker's shipped
`publish_batch_events`, 64), as the protocol allows; `broadcast()` then writes each
frame once per connection. `lockstep` is always one message per frame. Without it (K =
1) every message is its own broadcast. A benchmark harness only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SYMBOLS = (("BTC-USD", 43_250), ("ETH-USD", 3_120), ("SOL-USD", 150))
NANOS = 10**9
CYCLE = 8
KEYFRAME_INTERVAL = 100
FLOOD_BURST = 64
"""Messages published back to back before the flood publisher yields to the loop (the same
as ticker's shipped `publish_batch_events`, so a coalescing flood step is one frame)."""
SAMPLE_EVERY = 64
"""Every this many broadcasts, count the connections whose transport holds unsent bytes."""

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the harness."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Feed:
    """Quote messages of ticker's shape: positions, per-topic seq, deltas, keyframes."""

    def __init__(self) -> None:
        self.offset = 0
        self.count = 0
        self.seq = {f"quote.{s}": 0 for s, _ in SYMBOLS}
        self.state: dict[str, dict[str, int]] = {}
        for _ in SYMBOLS:
            self.next_message()

    def next_message(self) -> bytes:
        """The next message, encoded once, with the current time as ts."""
        step, index = divmod(self.count, len(SYMBOLS))
        self.count += 1
        symbol, price = SYMBOLS[index]
        topic = f"quote.{symbol}"
        delta = {
            "bid": price * NANOS + (step % CYCLE % 4) * NANOS // 2,
            "bid_size": NANOS + (step % CYCLE + 1) * NANOS // 4,
        }
        state = self.state.setdefault(topic, {"ask": (price + 1) * NANOS, "ask_size": 3 * NANOS})
        state.update(delta)
        self.offset += 1
        self.seq[topic] += 1
        ts = time.time_ns() // 1000
        if self.seq[topic] % KEYFRAME_INTERVAL == 0:
            return _packb(["s", topic, self.seq[topic], self.offset, ts, state])
        return _packb(["d", topic, self.seq[topic], self.offset, ts, delta])

    def snapshots(self) -> bytes:
        """One payload of every topic's snapshot (what a subscribe is answered with)."""
        ts = time.time_ns() // 1000
        return b"".join(
            _packb(["s", topic, self.seq[topic], self.offset, ts, self.state[topic]])
            for topic in self.seq
        )


class Peer:
    """The broadcast set, the feed, the publisher and the counters."""

    def __init__(self, coalesce: int) -> None:
        self.coalesce = coalesce
        self.feed = Feed()
        self.subscribers: set[ServerConnection] = set()
        self.connections = 0
        self.broadcasts = 0
        self.offered = 0
        self.sampled = 0
        self.buffered = 0
        self.task: asyncio.Task[None] | None = None

    async def handler(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            if connection.request is None or connection.request.path != "/v1/ws":
                await connection.close(1008, "no endpoint here; stream: /v1/ws")
                return
            async for _command in connection:
                if connection not in self.subscribers:
                    await connection.send(self.feed.snapshots())
                    self.subscribers.add(connection)
        except ConnectionClosed:
            pass  # the load generator just closes its sockets at the end
        finally:
            self.subscribers.discard(connection)
            self.connections -= 1

    def broadcast_one(self) -> None:
        subscribers = self.subscribers
        if self.broadcasts % SAMPLE_EVERY == 0:
            self.sampled += len(subscribers)
            self.buffered += sum(1 for c in subscribers if c.transport.get_write_buffer_size() > 0)
        broadcast(subscribers, self.feed.next_message())
        self.broadcasts += 1
        self.offered += len(subscribers)

    def publish(self, count: int) -> None:
        """`count` messages: one broadcast each, or (coalescing) frames of up to K."""
        if self.coalesce <= 1:
            for _ in range(count):
                self.broadcast_one()
            return
        while count > 0:
            k = min(count, self.coalesce)
            count -= k
            subscribers = self.subscribers
            frame = b"".join(self.feed.next_message() for _ in range(k))
            broadcast(subscribers, frame)
            self.broadcasts += 1
            self.offered += len(subscribers) * k

    async def flood(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            self.publish(FLOOD_BURST)
            await asyncio.sleep(0)

    async def lockstep(self, seconds: float) -> None:
        """One broadcast per loop iteration; uvloop writes into idle sockets at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            self.broadcast_one()
            await asyncio.sleep(0)

    async def rate(self, per_s: float, seconds: float) -> None:
        """`per_s` messages a second; late ones go at once: coalescing, in frames of up to
        K; otherwise one per loop iteration (broadcast() writes each message on its own,
        so sending late ones back to back would only stall the loop for longer).
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(per_s * seconds)
        done = 0
        while done < total:
            due = min(total, int((loop.time() - start) * per_s) + 1)
            if self.coalesce > 1:
                self.publish(due - done)
            else:
                for _ in range(due - done):
                    self.broadcast_one()
                    await asyncio.sleep(0)
            done = due
            await asyncio.sleep(max(start + done / per_s - loop.time(), 0))

    def start(self, mode: str, args: list[float]) -> None:
        self.halt()
        if mode == "flood":
            self.task = asyncio.create_task(self.flood(args[0]))
        elif mode == "lockstep":
            self.task = asyncio.create_task(self.lockstep(args[0]))
        else:
            self.task = asyncio.create_task(self.rate(args[0], args[1]))

    def halt(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.feed.offset,
            "broadcasts": self.broadcasts,
            "messages_sent": self.offered,
            "connections": self.connections,
            "subscribers": len(self.subscribers),
            "buffered_sampled": self.buffered,
            "sampled": self.sampled,
        }


async def control(peer: Peer) -> None:
    """Serve the harness's commands until `quit` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(sys.stdin.fileno()))
    )
    while True:
        line = (await reader.readline()).decode()
        if not line:
            return
        words = line.split()
        if not words:
            continue
        command, args = words[0], [float(w) for w in words[1:]]
        if command in ("flood", "lockstep", "rate", "paced"):
            peer.start(command, args)
            emit("publishing", mode=command, args=args)
        elif command == "halt":
            peer.halt()
            emit("halted", **peer.stats())
        elif command == "stats":
            emit("stats", **peer.stats())
        elif command == "quit":
            return
        else:
            emit("error", message=f"unknown command {line!r}")


async def main(args: argparse.Namespace) -> None:
    fd_limit = raise_fd_limit()
    peer = Peer(args.coalesce)
    async with serve(
        peer.handler,
        "127.0.0.1",
        args.port,
        subprotocols=[Subprotocol("ticker.v1")],
        compression=None,
        backlog=4096,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        emit("ready", port=port, pid=os.getpid(), fd_limit=fd_limit, coalesce=args.coalesce)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(control(peer), timeout=args.max_seconds)
        peer.halt()
        server.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="lifetime bound")
    parser.add_argument(
        "--coalesce", type=int, default=1, help="most messages per frame (1: one per broadcast)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
