"""Client latency at a steady rate: the Feed against a bare frame reader, same server.

A minimal ticker-protocol WebSocket server (wsproto, its own process, pinned to CPU 0)
sends one quote delta per frame at --rate messages/s, each stamped with its send time
(`ts`). The reader (this process, pinned to CPU 1) is either `open_feed` (every check
on: decoding, Tracker, the Update queue read by a caller) or a bare reader (socket,
wsproto, msgpack decode, nothing else). Latency = receive time - ts; p50/p99 over a
--seconds window after 1 s of warm-up. Run once per reader (each a fresh server).

    .venv/bin/python benchmarks/client_latency.py [--rate 4500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import time

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request

from ticker.core.codec import decode_server, encode_server
from ticker.core.messages import PROTOCOL_VERSION, DataMessage, Hello

AIM_P99_GAP_MS = 2.0


def _server(port_out: multiprocessing.Queue[int], rate: int) -> None:
    os.sched_setaffinity(0, {0})

    async def handle(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await serve_one(stream)  # until the reader is done

    async def serve_one(stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            ws.receive_data(bytes(await stream.receive_some(65536)))
            if any(isinstance(e, Request) for e in ws.events()):
                break
        await stream.send_all(ws.send(AcceptConnection(subprotocol="ticker.v1")))
        await stream.send_all(
            ws.send(BytesMessage(encode_server(Hello(PROTOCOL_VERSION, 1, 0, 30.0, None))))
        )
        seq = 0
        start = trio.current_time()
        while True:
            due = int((trio.current_time() - start) * rate)
            out = b""
            while seq < due:
                seq += 1
                data = {"bid": 10**9 + seq, "bid_size": 5 * 10**9}
                message = DataMessage(seq == 1, "quote.X-Y", seq, seq, time.time_ns() // 1000, data)
                out += ws.send(BytesMessage(encode_server(message)))
            if out:
                await stream.send_all(out)
            await trio.sleep_until(start + (seq + 1) / rate)

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port_out.put(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners)

    trio.run(main)


async def _feed_latencies(port: int, seconds: float) -> list[float]:
    from ticker.client import open_feed

    out: list[float] = []
    end = trio.current_time() + 1 + seconds
    async with open_feed(f"ws://127.0.0.1:{port}/v1/ws", ["quote.*"]) as feed:
        async for update in feed:
            now = trio.current_time()
            if now > end - seconds:
                out.append(time.time_ns() / 1e9 - update.ts_us / 1e6)
            if now > end:
                return out
    return out


async def _bare_latencies(port: int, seconds: float) -> list[float]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(
        ws.send(Request(host="127.0.0.1", target="/v1/ws", subprotocols=["ticker.v1"]))
    )
    out: list[float] = []
    end = trio.current_time() + 1 + seconds
    while trio.current_time() < end:
        ws.receive_data(bytes(await stream.receive_some(65536)))
        for event in ws.events():
            if isinstance(event, BytesMessage):
                message = decode_server(bytes(event.data))
                if isinstance(message, DataMessage) and trio.current_time() > end - seconds:
                    out.append(time.time_ns() / 1e9 - message.ts_us / 1e6)
    await stream.aclose()
    return out


def _run(reader: str, rate: int, seconds: float) -> list[float]:
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_server, args=(ports, rate), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=10)
        function = _feed_latencies if reader == "feed" else _bare_latencies
        return trio.run(function, port, seconds)
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=4500)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    print(
        "# reproduce: .venv/bin/python benchmarks/client_latency.py "
        f"--rate {args.rate} --seconds {args.seconds}"
    )
    print("\n| reader | messages | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    p99 = {}
    for reader in ("bare", "feed"):
        samples = sorted(_run(reader, args.rate, args.seconds))
        p50 = statistics.median(samples) * 1e3
        p99[reader] = samples[int(len(samples) * 0.99)] * 1e3
        print(f"| {reader} | {len(samples):,} | {p50:.2f} | {p99[reader]:.2f} |")
    gap = p99["feed"] - p99["bare"]
    met = "yes" if gap <= AIM_P99_GAP_MS else "no"
    print(
        f"\nfeed p99 - bare p99 = {gap:.2f} ms "
        f"(aim <= {AIM_P99_GAP_MS} ms at {args.rate:,}/s): {met}"
    )


if __name__ == "__main__":
    main()
