"""Soak: the RSS of a real `ticker serve` under a fast market and client churn, over time.

Starts one `ticker serve` subprocess per replay-buffer size (`--replay-messages`, a small
one that fills in seconds and the default) on 127.0.0.1 with a high venue rate, and runs
client churn against each: WebSocket (plain and zstd) and SSE clients that connect,
subscribe to wildcards and single topics, resume from recent, too-old and foreign
positions, subscribe and unsubscribe while connected, and disconnect (close frame or
abrupt). Bounded: `--clients` at once per server, at most `--max-sessions` sessions, and
`--minutes`; it stops the servers and itself. Every `--sample-s` it reads VmRSS from
/proc/<pid>/status and the replay buffer's fill from /metrics, and at the end prints the
RSS curve and its slope after the buffer filled (least squares, MB/min).

`--in-process` runs `ticker.server.process.serve` inside this process instead, with
tracemalloc on, and prints what grew (by source line, ticker's files only) between the
buffer filling and the end: the harness that finds what grows. (RSS is then this whole
process's, clients included.)

    nice -n 10 .venv/bin/python benchmarks/soak.py --minutes 30
    .venv/bin/python benchmarks/soak.py --minutes 5 --replay-messages 2000 --in-process
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import Hello, Subscribe, Unsubscribe

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = (
    "quote.*",
    "book.*",
    "trade.*",
    "ticker.*",
    "quote.BTC-USD",
    "book.ETH-USD",
    "trade.SOL-USD",
    "ticker.DOGE-USD",
    "book.BTC-USD",
)
READ_CHUNK = 65536


@dataclass(slots=True)
class Tally:
    """What one server's churn did (printed at the end)."""

    sessions: dict[str, int] = field(default_factory=dict)
    resumes: int = 0
    commands: int = 0
    refused: int = 0
    failures: int = 0
    bytes_read: int = 0
    epoch: int = 0
    offset: int = 0
    """The newest position a hello announced: resumes go back from it."""

    def count(self, kind: str) -> None:
        self.sessions[kind] = self.sessions.get(kind, 0) + 1


@dataclass(slots=True)
class Sample:
    elapsed_s: float
    rss_kb: int
    replay_messages: int
    replay_bytes: int
    connections: int
    sessions: int


# -- clients ------------------------------------------------------------------------------


def masked_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    else:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    return header + mask + body


def resume_position(rng: random.Random, tally: Tally, replay_messages: int) -> str | None:
    """No resume (half), a recent position, one older than the buffer, another epoch's."""
    roll = rng.random()
    if roll < 0.5 or not tally.epoch:
        return None
    if roll < 0.85:
        back = rng.randrange(0, max(1, min(tally.offset, replay_messages)))
        return f"{tally.epoch}-{tally.offset - back}"
    if roll < 0.95:
        return f"{tally.epoch}-1"
    return f"{tally.epoch + 1}-5"


async def read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """The response head and whatever followed it in the same reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(READ_CHUNK)
        if not chunk:
            raise EOFError("closed before the response head")
        data += chunk
        if len(data) > 65536:
            raise ValueError("response head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


async def ws_session(
    port: int, rng: random.Random, tally: Tally, replay_messages: int, hold_s: float
) -> None:
    zstd = rng.random() < 0.25
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        protocol = "ticker.v1.zstd" if zstd else "ticker.v1"
        await stream.send_all(
            f"GET /v1/ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n".encode()
        )
        head, rest = await read_head(stream)
        if not head.startswith(b"HTTP/1.1 101"):
            tally.refused += 1
            return
        tally.count("ws.zstd" if zstd else "ws")
        if not zstd:
            await learn_position_ws(stream, rest, tally)
        topics = tuple(rng.sample(PATTERNS, rng.randint(1, 3)))
        position = resume_position(rng, tally, replay_messages)
        tally.resumes += position is not None
        await stream.send_all(masked_frame(encode_client(Subscribe(topics, position))))
        with trio.move_on_after(hold_s):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(discard, stream, tally)
                # Commands while connected: more wildcards, then narrowing again.
                for _ in range(rng.randint(0, 4)):
                    await trio.sleep(rng.uniform(0.1, hold_s / 3))
                    pattern = (rng.choice(PATTERNS),)
                    command = Subscribe(pattern) if rng.random() < 0.6 else Unsubscribe(pattern)
                    await stream.send_all(masked_frame(encode_client(command)))
                    tally.commands += 1
        if rng.random() < 0.5:
            with trio.move_on_after(1):
                await stream.send_all(masked_frame(b"\x03\xe8", opcode=0x8))
                while await stream.receive_some(READ_CHUNK):
                    pass
    finally:
        await close_abruptly(stream)


async def learn_position_ws(stream: trio.SocketStream, rest: bytes, tally: Tally) -> None:
    """Read the hello frame (the first frame of a plain stream) for its position."""
    buffer = rest
    while len(buffer) < 2 or len(buffer) < 2 + (buffer[1] & 0x7F):
        chunk = await stream.receive_some(READ_CHUNK)
        if not chunk:
            return
        buffer += chunk
    for message in decode_frame(buffer[2 : 2 + buffer[1]]):
        if isinstance(message, Hello) and message.offset > tally.offset:
            tally.epoch, tally.offset = message.epoch, message.offset


async def sse_session(
    port: int, rng: random.Random, tally: Tally, replay_messages: int, hold_s: float
) -> None:
    topics = ",".join(rng.sample(PATTERNS, rng.randint(1, 3)))
    position = resume_position(rng, tally, replay_messages)
    query = f"topics={topics}"
    if rng.random() < 0.2:
        query += f"&max_rate={rng.choice((1, 5, 20))}"
    extra = ""
    if position is not None:
        tally.resumes += 1
        if rng.random() < 0.5:
            extra = f"Last-Event-ID: {position}\r\n"
        else:
            query += f"&last_event_id={position}"
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(f"GET /v1/sse?{query} HTTP/1.1\r\nHost: soak\r\n{extra}\r\n".encode())
        head, rest = await read_head(stream)
        if not head.startswith(b"HTTP/1.1 200"):
            tally.refused += 1
            return
        tally.count("sse")
        match = re.search(rb'event: hello\ndata: \{[^}]*"epoch":(\d+),"offset":(\d+)', rest)
        if match and int(match[2]) > tally.offset:
            tally.epoch, tally.offset = int(match[1]), int(match[2])
        with trio.move_on_after(hold_s):
            await discard(stream, tally)
    finally:
        await close_abruptly(stream)


async def discard(stream: trio.SocketStream, tally: Tally) -> None:
    while data := await stream.receive_some(READ_CHUNK):
        tally.bytes_read += len(data)


async def close_abruptly(stream: trio.SocketStream) -> None:
    with trio.CancelScope(shield=True):
        await stream.aclose()


async def churn(
    port: int, tally: Tally, *, seed: int, deadline: float, budget: list[int], replay: int
) -> None:
    """One client slot: sessions back to back until the deadline or the session budget."""
    rng = random.Random(seed)
    while trio.current_time() < deadline and budget[0] > 0:
        budget[0] -= 1
        hold_s = rng.uniform(0.5, 8.0)
        session = ws_session if rng.random() < 0.6 else sse_session
        try:
            await session(port, rng, tally, replay, hold_s)
        except (OSError, EOFError, ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
            tally.failures += 1
        await trio.sleep(rng.uniform(0.0, 0.3))


# -- sampling -----------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def metrics(port: int) -> dict[str, float]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(READ_CHUNK):
            data += chunk
    finally:
        await stream.aclose()
    values: dict[str, float] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


def metric(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.split("{")[0] == prefix)


async def sample(pid: int, port: int, started: float, tally: Tally) -> Sample:
    values = await metrics(port)
    return Sample(
        trio.current_time() - started,
        rss_kb(pid),
        int(metric(values, "ticker_replay_messages")),
        int(metric(values, "ticker_replay_bytes")),
        int(metric(values, "ticker_connections")),
        sum(tally.sessions.values()),
    )


def slope_mb_per_min(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    xs = [s.elapsed_s / 60 for s in samples]
    ys = [s.rss_kb / 1024 for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def report(
    name: str, samples: list[Sample], max_messages: int, tally: Tally, warmup_s: float
) -> None:
    print(f"\n== {name} ==")
    print("  min    RSS MB   replay msgs   replay MB   conns   sessions")
    for s in samples:
        print(
            f"  {s.elapsed_s / 60:5.1f}  {s.rss_kb / 1024:7.1f}  {s.replay_messages:11,d}"
            f"  {s.replay_bytes / 1e6:10.2f}  {s.connections:6d}  {s.sessions:9,d}"
        )
    filled = next((i for i, s in enumerate(samples) if s.replay_messages >= max_messages), None)
    print(f"  churn: {tally.sessions}, resumes {tally.resumes}, commands {tally.commands},")
    print(
        f"  refused {tally.refused}, failures {tally.failures}, "
        f"{tally.bytes_read / 1e6:.0f} MB read"
    )
    if filled is None:
        print("  the replay buffer never filled (by count)")
        return
    full = samples[filled]
    settled = [s for s in samples if s.elapsed_s >= full.elapsed_s + warmup_s] or samples[-1:]
    half = settled[len(settled) // 2 :]
    peak = max(s.rss_kb for s in samples) / 1024
    print(
        f"  buffer full at {full.elapsed_s / 60:.1f} min, RSS {full.rss_kb / 1024:.1f} MB;"
        f" {warmup_s / 60:g} min later {settled[0].rss_kb / 1024:.1f} MB;"
        f" end {samples[-1].rss_kb / 1024:.1f} MB; peak {peak:.1f} MB"
    )
    print(
        f"  slope from {settled[0].elapsed_s / 60:.1f} min on {slope_mb_per_min(settled):+.2f}"
        f" MB/min; over the last half {slope_mb_per_min(half):+.2f} MB/min"
    )


# -- servers ------------------------------------------------------------------------------


def server_args(args: argparse.Namespace, replay_messages: int) -> list[str]:
    return [
        "--port=0",
        f"--venue-rate-per-s={args.venue_rate}",
        f"--replay-max-messages={replay_messages}",
        f"--resume-rate-per-ip-per-s={args.resume_rate}",
        "--heartbeat-s=2",
        "--ping-interval-s=5",
    ]


async def start_subprocess(args: argparse.Namespace, replay: int) -> tuple[trio.Process, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "ticker", "serve", *server_args(args, replay)]
    process = await trio.lowlevel.open_process(argv, env=env, stderr=subprocess.PIPE)
    assert process.stderr is not None
    text = b""
    with trio.fail_after(30):
        while (found := re.search(rb"serving https?://[\d.]+:(\d+)/", text)) is None:
            chunk = await process.stderr.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"server exited: {text.decode(errors='replace')}")
            text += chunk
    return process, int(found[1])


async def drain_stderr(process: trio.Process) -> None:
    """Keep reading the server's log so its pipe never fills (and show warnings)."""
    assert process.stderr is not None
    async for chunk in process.stderr:
        for line in chunk.decode(errors="replace").splitlines():
            if "WARNING" in line or "ERROR" in line or "Traceback" in line:
                print(f"  [server] {line[:200]}", flush=True)


async def soak_one(args: argparse.Namespace, replay: int, nursery: trio.Nursery, seed: int) -> None:
    tally = Tally()
    snapshots: list[tracemalloc.Snapshot] = []
    if args.in_process:
        from ticker.server.process import serve

        config = replace(
            Config(),
            port=0,
            venue_rate_per_s=args.venue_rate,
            replay_max_messages=replay,
            resume_rate_per_ip_per_s=args.resume_rate,
            heartbeat_s=2,
            ping_interval_s=5,
        )
        handle = await nursery.start(partial(serve, config))
        pid, port, process = os.getpid(), handle.port, None
    else:
        process, port = await start_subprocess(args, replay)
        pid = process.pid
        nursery.start_soon(drain_stderr, process)
    started = trio.current_time()
    deadline = started + args.minutes * 60
    budget = [args.max_sessions]
    samples: list[Sample] = []
    try:
        async with trio.open_nursery() as clients:
            for i in range(args.clients):
                clients.start_soon(
                    partial(
                        churn, port, tally, seed=seed * 1000 + i, deadline=deadline,
                        budget=budget, replay=replay,
                    )
                )  # fmt: skip
            while trio.current_time() < deadline:
                await trio.sleep(min(args.sample_s, max(0.0, deadline - trio.current_time())))
                samples.append(await sample(pid, port, started, tally))
                last = samples[-1]
                print(
                    f"[{replay}] {last.elapsed_s / 60:5.1f} min  RSS {last.rss_kb / 1024:7.1f} MB"
                    f"  replay {last.replay_messages:,}  conns {last.connections}",
                    flush=True,
                )
                if args.in_process and not snapshots and last.replay_messages >= replay:
                    snapshots.append(tracemalloc.take_snapshot())
            clients.cancel_scope.cancel()
    finally:
        if process is not None:
            process.terminate()
            with trio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()
    report(f"replay buffer {replay:,} messages", samples, replay, tally, args.warmup_min * 60)
    if snapshots:
        top_growth(snapshots[0], tracemalloc.take_snapshot())


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> None:
    keep = [tracemalloc.Filter(True, str(ROOT / "ticker") + "/*")]
    diffs = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    print("  tracemalloc, growth since the buffer filled (ticker's lines):")
    for stat in diffs[:15]:
        print(
            f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} blocks  {stat.traceback}"
        )


async def main_async(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as runs:
            for i, replay in enumerate(args.replay_messages):
                runs.start_soon(soak_one, args, replay, nursery, i + 1)
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument(
        "--replay-messages",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[2000, Config().replay_max_messages],
        help="replay buffer sizes, one server each (default: 2000 and the default size)",
    )
    parser.add_argument("--venue-rate", type=float, default=150, help="messages/s per venue")
    parser.add_argument("--clients", type=int, default=6, help="clients at once per server")
    parser.add_argument("--max-sessions", type=int, default=50_000, help="per server")
    parser.add_argument("--resume-rate", type=float, default=20, help="resumes/s per address")
    parser.add_argument("--sample-s", type=float, default=30)
    parser.add_argument(
        "--warmup-min", type=float, default=2, help="the slope starts this long after the fill"
    )
    parser.add_argument("--in-process", action="store_true", help="serve in-process, tracemalloc")
    args = parser.parse_args()
    if args.in_process:
        tracemalloc.start(1)
    sizes = ",".join(str(n) for n in args.replay_messages)
    print(
        f"command: .venv/bin/python benchmarks/soak.py --minutes {args.minutes:g} "
        f"--replay-messages {sizes} --venue-rate {args.venue_rate:g} --clients {args.clients} "
        f"--max-sessions {args.max_sessions} --resume-rate {args.resume_rate:g} "
        f"--sample-s {args.sample_s:g} --warmup-min {args.warmup_min:g}"
        + (" --in-process" if args.in_process else "")
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; pid {os.getpid()}")
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
