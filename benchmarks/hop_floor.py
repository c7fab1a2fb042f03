"""The floor of a Redis hop on this machine: what any hub -> Redis -> edge design adds.

Issue #12 aims at a Redis hop that adds under 2 ms at p99 at 50 messages/s. This measures
what the machine itself charges for such a hop, with no ticker code on the path: a
writer process stamps `time.time_ns()` into each message, 50 a second, and

- `direct`: sends it over one TCP connection to a reader process (as `all` writes to
  the load generator's sockets), or
- `redis`:  XADDs it to a stream; a relay process waiting in `XREAD BLOCK` gets it and
  passes it on over TCP to the reader (the cluster's path: hub -> redis-server -> edge
  -> load generator: three hops, two more processes to wake).

The reader takes receive time - stamp for every message. Both modes run in one session,
alternated, on blocking sockets (the least Python a hop can cost; RESP is encoded and
parsed by ticker.cluster.resp). `redis - direct` is the floor of what the Redis hop
adds; ticker's own hop (bench_cluster.py, edge1 - all at N=10) is read against it.
Placement as in bench_cluster.py: the direct writer (`all`) and the relay (the edge) on
CPU 0; the Redis writer (the hub), redis-server and the reader (the load generator) on
CPU 1.

    .venv/bin/python benchmarks/hop_floor.py [--messages 500] [--rate 50] [--runs 3]

Every loop is bounded in count and time; redis-server is started on a free 127.0.0.1
port and stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_fanout import free_port

from ticker.cluster.resp import INCOMPLETE, ReplyParser, encode_command

ALL_CPU = 0
"""Where `all` (here: the direct writer) and the edge (the relay) run, as in bench_cluster."""
RELAY_CPU = 0
HUB_CPU = 1
"""The hub (the Redis writer), redis-server and the load generator (the final reader)."""
READER_CPU_FINAL = 1
STREAM = b"hop-floor"
DEADLINE_S = 120.0
"""No run of one mode lasts longer than this, whatever the arguments."""


def pin(cpu: int) -> None:
    if cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def writer(mode: str, port: int, messages: int, rate: float, cpu: int) -> None:
    """Send `messages` stamps at `rate` a second on an absolute schedule."""
    pin(cpu)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.monotonic() + 0.2
    for i in range(messages):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = str(time.time_ns()).encode()
        if mode == "direct":
            sock.sendall(stamp + b"\n")
        else:
            sock.sendall(
                encode_command((b"XADD", STREAM, b"MAXLEN", b"~", 1000, b"*", b"t", stamp))
            )
            if not sock.recv(256):  # the entry's ID
                raise SystemExit("redis closed the connection")
    sock.close()


def reader(mode: str, port: int, messages: int, ready: Path, cpu: int, forward: int) -> None:
    """Receive `messages` stamps; print one latency in microseconds per line (or, with
    `forward`, pass each stamp on to a direct reader on that port, as an edge does)."""
    pin(cpu)
    onward = None
    if forward:
        onward = socket.create_connection(("127.0.0.1", forward))
        onward.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + DEADLINE_S
    out: list[int] = []
    if mode == "direct":
        listener = socket.create_server(("127.0.0.1", port))
        ready.write_text("ready")
        sock, _ = listener.accept()
        buffer = b""
        while len(out) < messages and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            now = time.time_ns()
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            out += [(now - int(line)) // 1000 for line in lines]
    else:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        last = b"$"
        ready.write_text("ready")
        parser = ReplyParser()
        while len(out) < messages and time.monotonic() < deadline:
            sock.sendall(encode_command((b"XREAD", b"BLOCK", 1000, b"STREAMS", STREAM, last)))
            reply = parser.next()
            while reply is INCOMPLETE:  # until the XREAD's reply is whole
                data = sock.recv(65536)
                if not data:
                    raise SystemExit("redis closed the connection")
                parser.feed(data)
                reply = parser.next()
            now = time.time_ns()
            if reply is None:  # BLOCK timed out
                continue
            stamps, last = _stamps(reply)
            if onward is not None:
                onward.sendall(b"".join(b"%d\n" % stamp for stamp in stamps))
            out += [(now - stamp) // 1000 for stamp in stamps]
    sys.stdout.write("\n".join(map(str, out)) + "\n")


def _stamps(reply: Any) -> tuple[list[int], bytes]:
    """The stamps in a parsed XREAD reply, and the last entry's ID."""
    entries = reply[0][1]  # [[stream, [[id, [field, value]], ...]]]
    return [int(fields[1]) for _id, fields in entries], entries[-1][0]


def run_mode(mode: str, redis_port: int, messages: int, rate: float) -> list[int]:
    """One run of `mode`; the final reader's latencies in us.

    direct: writer (CPU 0, as `all`) -> reader (CPU 1, as the load generator).
    redis:  writer (CPU 1, as the hub, beside redis-server) -> XADD -> XREAD in a relay
            (CPU 0, as the edge) -> reader (CPU 1): the cluster's path.
    """
    with tempfile.TemporaryDirectory() as tmp:
        me = [sys.executable, __file__, "--role"]
        final_port = free_port()
        final_ready = Path(tmp) / "final"
        started: list[subprocess.Popen[str]] = []
        try:
            final = _spawn(
                started,
                [
                    *me,
                    "reader",
                    "direct",
                    str(final_port),
                    str(messages),
                    str(final_ready),
                    str(READER_CPU_FINAL),
                    "0",
                ],
            )
            _wait_for(final_ready)
            if mode == "redis":
                relay_ready = Path(tmp) / "relay"
                _spawn(
                    started,
                    [
                        *me,
                        "reader",
                        "redis",
                        str(redis_port),
                        str(messages),
                        str(relay_ready),
                        str(RELAY_CPU),
                        str(final_port),
                    ],
                )
                _wait_for(relay_ready)
                time.sleep(0.1)  # the XREAD is sent before the first message
                write_args = ["redis", str(redis_port), str(messages), str(rate), str(HUB_CPU)]
            else:
                write_args = ["direct", str(final_port), str(messages), str(rate), str(ALL_CPU)]
            writer_process = _spawn(started, [*me, "writer", *write_args])
            writer_process.wait(timeout=DEADLINE_S)
            output, _ = final.communicate(timeout=DEADLINE_S)
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return [int(line) for line in output.split()]


def _spawn(started: list[subprocess.Popen[str]], argv: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    started.append(process)
    return process


def _wait_for(ready: Path) -> None:
    limit = time.monotonic() + 10
    while not ready.exists():
        if time.monotonic() > limit:
            raise SystemExit("a reader did not start")
        time.sleep(0.01)


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        role, mode, port, messages = sys.argv[2:6]
        if role == "writer":
            rate, cpu = sys.argv[6:8]
            writer(mode, int(port), int(messages), float(rate), int(cpu))
        else:
            ready, cpu, forward = sys.argv[6:9]
            reader(mode, int(port), int(messages), Path(ready), int(cpu), int(forward))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing (apt-get install redis-server)")
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            binary,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        os.sched_setaffinity(redis.pid, {HUB_CPU % (os.cpu_count() or 1)})
        limit = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > limit:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        print(
            f"# {args.messages} messages at {args.rate:g}/s per run, {args.runs} runs per mode, "
            "alternated; placed as bench_cluster.py places all/hub/redis/edge/load generator"
        )
        print(
            f"# reproduce: .venv/bin/python benchmarks/hop_floor.py --messages {args.messages} "
            f"--rate {args.rate:g} --runs {args.runs}"
        )
        figures: dict[str, list[tuple[float, float]]] = {"direct": [], "redis": []}
        for run in range(args.runs):
            for mode in ("direct", "redis"):
                latencies = run_mode(mode, redis_port, args.messages, args.rate)
                if len(latencies) < args.messages:
                    print(f"run {run + 1} {mode}: only {len(latencies)} of {args.messages} arrived")
                p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
                figures[mode].append((p50, p99))
                print(f"run {run + 1} {mode:6} p50 {p50:.3f} ms  p99 {p99:.3f} ms")
        direct_p50 = statistics.median(f[0] for f in figures["direct"])
        direct_p99 = statistics.median(f[1] for f in figures["direct"])
        redis_p50 = statistics.median(f[0] for f in figures["redis"])
        redis_p99 = statistics.median(f[1] for f in figures["redis"])
        print("\n| path | p50 ms | p99 ms |")
        print("|---|---|---|")
        print(f"| direct (writer -> reader) | {direct_p50:.3f} | {direct_p99:.3f} |")
        print(
            f"| redis (writer -> XADD -> XREAD in a relay -> reader) | {redis_p50:.3f} "
            f"| {redis_p99:.3f} |"
        )
        print(
            f"| added by the Redis hop (medians) | +{redis_p50 - direct_p50:.3f} "
            f"| +{redis_p99 - direct_p99:.3f} |"
        )
    finally:
        redis.terminate()
        redis.wait(timeout=10)


if __name__ == "__main__":
    main()
