"""Which `send_buffer_bytes` default (SO_SNDBUF per connection) to ship (issue 10, item 7).

Two light measurements per candidate value, all on 127.0.0.1, servers in this process:

- stuck reader: a client subscribes to every channel of the default simulated market
  (venues at their default rate) and never reads; how long until the server ends it,
  and why (`slow_write`/`slow_outbox` are evictions; `ping_timeout` is not);
- throughput: N clients reading as fast as they can (one reader thread, `selectors`)
  while a publisher floods quotes for a few seconds; messages delivered per second and
  whether any reader was evicted.

    .venv/bin/python benchmarks/bench_send_buffer.py                 # ~1.5 minutes
    .venv/bin/python benchmarks/bench_send_buffer.py --values 0 65536 --clients 100

Every loop is bounded in time; every socket and server is closed at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import selectors
import socket
import threading
import time
from dataclasses import replace
from functools import partial

import trio
import trio.lowlevel

from ticker.config import Config
from ticker.core.codec import encode_client
from ticker.core.messages import Subscribe
from ticker.model.events import Quote
from ticker.server.process import ServerHandle, serve

CHANNELS = ("quote.*", "book.*", "trade.*", "ticker.*")
STUCK_LIMIT_S = 45.0
"""Longer than ping interval + timeout (30 s by default): the stuck reader has ended by then."""


def handshake(port: int, topics: tuple[str, ...], rcvbuf: int | None = None) -> socket.socket:
    """A blocking WebSocket client socket, upgraded and subscribed to `topics`."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ticker.v1\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = encode_client(Subscribe(topics))
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + masked)
    return sock


async def stuck_reader(value: int) -> tuple[float, str, float]:
    """(seconds until the stuck client's end, its reason, stream bytes/s while it lasted)."""
    config = Config(port=0, send_buffer_bytes=value)
    async with trio.open_nursery() as nursery:
        handle: ServerHandle = await nursery.start(partial(serve, config))
        await trio.sleep(2)  # the venues build some state
        sock = await trio.to_thread.run_sync(handshake, handle.port, CHANNELS)
        stats = handle.context.stats
        started = time.monotonic()
        sent0 = stats.bytes_sent
        reason = "still open"
        while time.monotonic() - started < STUCK_LIMIT_S:
            await trio.sleep(0.1)
            if len(handle.context.fanout) == 0:
                ends = [name for name, count in stats.ends.items() if count]
                reason = ",".join(ends)
                break
        elapsed = time.monotonic() - started
        rate = (stats.bytes_sent - sent0) / elapsed
        sock.close()
        handle.stop()
        nursery.cancel_scope.cancel()
    return elapsed, reason, rate


def read_all(socks: list[socket.socket], stop: threading.Event, totals: list[int]) -> None:
    """Read every socket as fast as possible until `stop` (one thread for all)."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    try:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(ready)
                    continue
                totals[0] += len(data)
    finally:
        selector.close()


async def throughput(value: int, clients: int, seconds: float) -> tuple[float, float, int]:
    """(messages written/s by the server, unverified by the readers; MB/s; evictions)
    with `clients` readers and a flood."""
    config = replace(Config(port=0, heartbeat_s=3600), send_buffer_bytes=value)
    async with trio.open_nursery() as nursery:
        handle: ServerHandle = await nursery.start(partial(serve, config, run_venues=False))
        socks = [
            await trio.to_thread.run_sync(handshake, handle.port, ("quote.*",))
            for _ in range(clients)
        ]
        stop = threading.Event()
        totals = [0]
        reader = threading.Thread(target=read_all, args=(socks, stop, totals), daemon=True)
        reader.start()
        stats = handle.context.stats
        await trio.sleep(0.5)
        sent0, bytes0, t0 = stats.messages_sent, totals[0], time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            for _ in range(64):
                i += 1
                symbol = ("BTC-USD", "ETH-USD", "SOL-USD")[i % 3]
                await handle.publish(Quote("cbx", symbol, 0, 100 + i % 50, 1 + i % 7, 10**6, 1))
            await trio.lowlevel.checkpoint()
        elapsed = time.monotonic() - t0
        delivered = (stats.messages_sent - sent0) / elapsed
        mb = (totals[0] - bytes0) / elapsed / 1e6
        evicted = sum(stats.ends[r] for r in ("slow_outbox", "slow_write", "slow_replay"))
        stop.set()
        await trio.to_thread.run_sync(reader.join, 5)
        for sock in socks:
            sock.close()
        handle.stop()
        nursery.cancel_scope.cancel()
    return delivered, mb, evicted


async def main(args: argparse.Namespace) -> None:
    defaults = Config()
    ping = f"{defaults.ping_interval_s:g}+{defaults.ping_timeout_s:g} s"
    print(f"stuck reader (default venues, ping {ping}):")
    results: dict[int, tuple[float, str, float]] = {}

    async def one(value: int) -> None:
        results[value] = await stuck_reader(value)

    async with trio.open_nursery() as nursery:
        for value in args.values:
            nursery.start_soon(one, value)
    for value in args.values:
        elapsed, reason, rate = results[value]
        print(f"  send_buffer_bytes={value:>7}: ended after {elapsed:5.1f} s ({reason}), "
              f"stream {rate / 1e3:.1f} kB/s")  # fmt: skip
    print(f"throughput ({args.clients} readers of quote.*, flood {args.seconds:g} s):")
    for value in args.values:
        delivered, mb, evicted = await throughput(value, args.clients, args.seconds)
        print(f"  send_buffer_bytes={value:>7}: {delivered / 1e3:7.1f}k messages/s, "
              f"{mb:6.1f} MB/s read, {evicted} evicted")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, nargs="*", default=[0, 65536, 131072, 262144])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    trio.run(main, parser.parse_args())
