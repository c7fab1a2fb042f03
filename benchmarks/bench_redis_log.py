"""The cost of fencing: one fenced append (Lua: lease check + last-ID check + XADD) against
a plain XADD, round trip on loopback, sequential calls (one in flight at a time).

Starts its own redis-server (no persistence) on a free 127.0.0.1 port. Both sides trim
with MAXLEN ~ and send the same payload through the same coredis client settings.

    .venv/bin/python benchmarks/bench_redis_log.py [--calls 1000] [--payload 512] [--rounds 3]

Not pinned: the machine is shared; runs vary by 20-40%.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import coredis
import trio

from ticker.cluster.redis_log import open_cluster_log
from ticker.core.position import Position

MAX_ENTRIES = 10_000
TOKEN = "bench-hub"


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory),
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("redis-server did not start")


async def xadd(raw: coredis.Redis[bytes], offset: int, data: bytes) -> None:
    await raw.xadd(
        "plain",
        {b"m": data},
        identifier=f"1-{offset}",
        trim_strategy=coredis.PureToken.MAXLEN,
        threshold=MAX_ENTRIES,
        trim_operator=coredis.PureToken.APPROXIMATELY,
    )


def summary(name: str, seconds: list[float]) -> str:
    us = sorted(s * 1e6 for s in seconds)
    p99 = us[min(len(us) - 1, int(len(us) * 0.99))]
    return (
        f"{name:<14} mean {statistics.fmean(us):7.1f} us   p50 {statistics.median(us):7.1f} us"
        f"   p99 {p99:7.1f} us   ({len(us)} calls)"
    )


async def bench(port: int, calls: int, payload: int, rounds: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    data = b"x" * payload
    fenced: list[float] = []
    plain: list[float] = []
    async with open_cluster_log(url, "bench") as log:
        raw: coredis.Redis[bytes] = coredis.Redis.from_url(url, decode_responses=False)
        async with raw:
            assert await log.acquire_lease(TOKEN, 600_000)
            offset = 0
            # Warm up both paths (connections, the script's first NOSCRIPT + load).
            for _ in range(100):
                offset += 1
                await log.append(TOKEN, Position(1, offset), data, max_entries=MAX_ENTRIES)
                await xadd(raw, offset, data)
            await raw.config_resetstat()
            # Alternate the two, call by call, so the shared machine's drift hits both alike.
            for _ in range(rounds * calls):
                offset += 1
                start = time.perf_counter()
                await log.append(TOKEN, Position(1, offset), data, max_entries=MAX_ENTRIES)
                fenced.append(time.perf_counter() - start)
                offset += 1
                start = time.perf_counter()
                await xadd(raw, offset, data)
                plain.append(time.perf_counter() - start)
            stats = await raw.info("commandstats")
    print(f"payload {payload} B, {rounds} x {calls} sequential calls each (alternating), loopback")
    print(summary("fenced append", fenced))
    print(summary("plain XADD", plain))
    for command in ("cmdstat_evalsha", "cmdstat_xadd"):
        usec = stats.get(command, {})
        usec_per_call = usec.get("usec_per_call") if isinstance(usec, dict) else None
        print(f"Redis CPU per call, {command[8:]:<8}: {usec_per_call} us (INFO commandstats)")
    print(f"fenced / plain (mean): {statistics.fmean(fenced) / statistics.fmean(plain):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--payload", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        process, port = start_redis(directory)
        try:
            trio.run(bench, port, args.calls, args.payload, args.rounds)
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(
        f"command: .venv/bin/python benchmarks/bench_redis_log.py --calls {args.calls} "
        f"--payload {args.payload} --rounds {args.rounds}"
    )


if __name__ == "__main__":
    main()
