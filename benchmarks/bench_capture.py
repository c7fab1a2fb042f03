"""Capture and replay: file size, read speed, top-speed throughput, pacing error.

1. Writes a raw capture of the three simulated venues (every symbol) offline, and the
   normalized capture of the same feed: bytes per record, MB per million records, and
   the writer's cost (simulator and normalizers excluded by timing them apart).
2. Reads it back: records per second, and how much of the file a late `--from` reads.
3. `--topspeed` throughput in records/s: into nothing (normalizers only), into an
   embedded server (same process), and into a running `ticker serve` process through
   the publish endpoint.
4. Pacing error at `--speed 1` and `--speed 10`, into an embedded server and into
   nothing: how late each step left against its due time (p50, p99, max), on the
   sample capture (~10 s recorded).

    .venv/bin/python benchmarks/bench_capture.py [--arrivals 100000] [--quick]

Not pinned: the machine is shared; runs vary by 20-40%. Under two minutes in all.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import trio

from feeds.simulator import EPOCH_NS
from ticker.capture.format import CaptureReader, CaptureWriter, Record
from ticker.capture.player import EmbeddedTarget, NullTarget, PlayResult, RemoteTarget, Target, play
from ticker.capture.publisher import open_publisher
from ticker.capture.record import Recorder, SimulatedVenues, simulated_header
from ticker.capture.replay import OpenRecords, ReplayOptions
from ticker.capture.sample import write_sample
from ticker.config import Config
from ticker.server.process import serve

TOKEN = "bench-token"


def make_capture(arrivals: int, *, normalized: bool) -> tuple[bytes, float]:
    """A capture of `arrivals` venue messages (every symbol): its bytes, and seconds taken."""
    venues = SimulatedVenues(
        ("cbx", "fxa", "itx"), None, seed=11, rate_per_s=1000.0, start_ns=EPOCH_NS
    )
    header = simulated_header(
        venues, created_ns=EPOCH_NS, seed=11, rate_per_s=1000.0, faults=None,
        normalized=normalized,
    )  # fmt: skip
    file = io.BytesIO()
    writer = CaptureWriter(file, header)
    recorder = Recorder(writer, venues, normalized=normalized)
    started = time.perf_counter()
    for _ in range(arrivals):
        arrival = venues.next()
        recorder.on_arrival(arrival, arrival.ts_ns)
    writer.close()
    return file.getvalue(), time.perf_counter() - started


def writer_cost(data: bytes) -> float:
    """Seconds per record to write `data`'s records again (the writer alone)."""
    reader = CaptureReader(io.BytesIO(data))
    records = list(reader.records())
    writer = CaptureWriter(io.BytesIO(), reader.header)
    started = time.perf_counter()
    for record in records:
        writer.add(record.kind, record.recv_ns, record.venue, record.payload)
    writer.close()
    return (time.perf_counter() - started) / len(records)


def opener(data: bytes) -> OpenRecords:
    def open_records(start: int | None, end: int | None) -> list[Iterator[Record]]:
        return [CaptureReader(io.BytesIO(data), "bench").records(start, end)]

    return open_records


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def replay_embedded(data: bytes, options: ReplayOptions) -> PlayResult:
    config = Config(port=0, heartbeat_s=3600)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(partial(serve, config, run_venues=False))
        result = await play(opener(data), options, EmbeddedTarget(handle.events))
        handle.stop()
    return result


async def replay_into(data: bytes, target: Target) -> PlayResult:
    return await play(opener(data), ReplayOptions(speed=None), target)


async def replay_remote(data: bytes, port: int) -> PlayResult:
    async with open_publisher(f"ws://127.0.0.1:{port}", TOKEN) as publisher:
        return await play(opener(data), ReplayOptions(speed=None), RemoteTarget(publisher))


def running_server(port: int) -> subprocess.Popen[bytes]:
    """`ticker serve` in its own process (its simulated venues at the default 20/s)."""
    command = [sys.executable, "-m", "ticker", "serve", "--port", str(port),
               "--publish-token", TOKEN, "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("ticker serve did not start listening")


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load {load}"


def report_pacing(name: str, result: PlayResult) -> None:
    late = result.lateness
    print(
        f"  {name}: {late.total:,} steps, late p50 <= {late.quantile(0.5) * 1e3:.2f} ms, "
        f"p99 <= {late.quantile(0.99) * 1e3:.2f} ms, max {late.max_s * 1e3:.2f} ms, "
        f"mean {late.sum_s / max(late.total, 1) * 1e3:.2f} ms; wall {result.wall_s:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=100_000, help="venue messages")
    parser.add_argument("--quick", action="store_true", help="20,000 arrivals")
    args = parser.parse_args()
    arrivals = 20_000 if args.quick else args.arrivals
    print(f"# bench_capture: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# command: .venv/bin/python benchmarks/bench_capture.py --arrivals {arrivals}")

    raw, raw_total_s = make_capture(arrivals, normalized=False)
    reader = CaptureReader(io.BytesIO(raw))
    blocks = list(reader.blocks())
    records = sum(b.records for b in blocks)
    print("1. file size")
    print(
        f"  raw: {records:,} records in {len(blocks)} blocks, {len(raw):,} bytes, "
        f"{len(raw) / records:.1f} B/record = {len(raw) / records:.1f} MB per million records; "
        f"uncompressed {sum(b.raw_bytes for b in blocks) / records:.1f} B/record; "
        f"writer {writer_cost(raw) * 1e6:.2f} us/record "
        f"(recording offline incl. simulator and normalizers {raw_total_s:.1f} s)"
    )
    norm, _ = make_capture(arrivals, normalized=True)
    norm_reader = CaptureReader(io.BytesIO(norm))
    norm_records = sum(b.records for b in norm_reader.blocks())
    print(
        f"  normalized: {norm_records:,} event records, {len(norm):,} bytes, "
        f"{len(norm) / norm_records:.1f} B/record = {len(norm) / norm_records:.1f} MB per "
        f"million records; writer {writer_cost(norm) * 1e6:.2f} us/record"
    )

    print("2. reading")
    started = time.perf_counter()
    count = sum(1 for _ in CaptureReader(io.BytesIO(raw)).records())
    read_s = time.perf_counter() - started
    late_reader = CaptureReader(io.BytesIO(raw))
    started = time.perf_counter()
    tail = sum(1 for _ in late_reader.records(blocks[-2].first_ns))
    seek_s = time.perf_counter() - started
    print(
        f"  all {count:,} records: {read_s:.3f} s = {count / read_s:,.0f} records/s; "
        f"from the second-last block: {tail:,} records, {late_reader.blocks_decompressed} "
        f"of {len(blocks)} blocks decompressed, {seek_s * 1e3:.1f} ms"
    )

    print("3. --topspeed throughput (records/s; events/s)")
    for name, target in (("normalizers only (--validate)", NullTarget()),):
        result = trio.run(replay_into, raw, target)
        print(
            f"  {name}: {result.counts.records / result.wall_s:,.0f} records/s; "
            f"{result.published_events / result.wall_s:,.0f} events/s"
        )
    result = trio.run(replay_embedded, raw, ReplayOptions(speed=None))
    print(
        f"  embedded server (--serve): {result.counts.records / result.wall_s:,.0f} "
        f"records/s; {result.published_events / result.wall_s:,.0f} events/s "
        f"({result.batches:,} batches, wall {result.wall_s:.2f} s)"
    )
    port = free_port()
    process = running_server(port)
    try:
        result = trio.run(replay_remote, raw, port)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(
        f"  running server (--target, own process): "
        f"{result.counts.records / result.wall_s:,.0f} records/s; "
        f"{result.published_events / result.wall_s:,.0f} events/s "
        f"({result.batches:,} batches acknowledged, wall {result.wall_s:.2f} s)"
    )

    print("4. pacing error (sample capture: 3,000 records over 9.84 s recorded)")
    sample = io.BytesIO()
    write_sample(sample)
    for speed in (1.0, 10.0):
        options = ReplayOptions(speed=speed)
        gc.collect()  # not a collection of the earlier sections' garbage mid-replay
        result = trio.run(replay_embedded, sample.getvalue(), options)
        report_pacing(f"--speed {speed:g} into an embedded server", result)
        result = trio.run(partial(play, opener(sample.getvalue()), options, NullTarget()))
        report_pacing(f"--speed {speed:g} into nothing", result)


if __name__ == "__main__":
    main()
