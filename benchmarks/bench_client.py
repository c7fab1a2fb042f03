"""Client throughput: recorded frames through the real decoding and `Tracker` path.

Frames are what a server sends one subscriber of every topic: the hub's messages for a
seeded session of the three simulated venues (books, quotes, trades, ticker), one
message per frame after a hello, as `ticker serve` writes them when it keeps up. They
are built once (not timed); then each run hands every frame to the tracker as the
WebSocket feed does (`Tracker.receive_frame`: decode, every check on: sequences,
offsets, state mirror, book checksums, the `Update`). A book update's `state` is built
when the caller first reads it: `--read-state` reads every update's, as a caller that
looks at each whole state would (the second row). Process CPU time, GC as in
production (on), medians of --runs runs, pinned to one CPU.

    .venv/bin/python benchmarks/bench_client.py [--frames 20000] [--runs 5] [--cpu 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from feeds.simulator import make_simulator
from ticker.client.tracker import Tracker
from ticker.config import Config
from ticker.core.codec import encode_server
from ticker.core.hub import Hub
from ticker.core.messages import PROTOCOL_VERSION, Hello
from ticker.venues import make_adapter

AIM_UPDATES_PER_S = 50_000
VENUES = ("itx", "cbx", "fxa")


def recorded_frames(frames_per_venue: int) -> list[bytes]:
    """A hello, then every message the hub publishes for the venues' interleaved frames."""
    hub = Hub(Config(), epoch=1)
    adapters = {venue: make_adapter(venue) for venue in VENUES}
    feeds = {}
    for venue in VENUES:
        simulator = make_simulator(venue, seed=7, rate_per_s=10_000)
        frames = [frame.data for frame in simulator.connect()]
        feeds[venue] = frames + [simulator.next_frame().data for _ in range(frames_per_venue)]
    out = [encode_server(Hello(PROTOCOL_VERSION, 1, 0, 30.0, None))]
    now_ns = time.time_ns()
    for i in range(frames_per_venue):
        for venue in VENUES:
            if i < len(feeds[venue]):
                for event in adapters[venue].on_message(feeds[venue][i], i).events:
                    out += [p.payload for p in hub.publish(event, now_ns + i * 1000)]
    return out


def apply_all(frames: list[bytes], *, read_state: bool = False) -> int:
    """Decode and apply every frame (reading each update's state if asked); returns
    the updates applied."""
    tracker = Tracker()
    receive = tracker.receive_frame
    now_ns = time.time_ns()
    updates = 0
    for frame in frames:
        step = receive(frame, now_ns)
        assert not step.resync and step.refusal is None
        if read_state:
            for update in step.updates:
                update.state  # noqa: B018 (built when first read: the cost measured)
        updates += len(step.updates)
    return updates


def median_rate(frames: list[bytes], runs: int, *, read_state: bool) -> tuple[float, int]:
    """The median of `runs` runs' updates per CPU second, and the updates per run."""
    rates = []
    updates = 0
    for _ in range(runs):
        start = time.process_time()
        updates = apply_all(frames, read_state=read_state)
        rates.append(updates / (time.process_time() - start))
    print(f"runs{' (reading every state)' if read_state else ''}: ", end="")
    print(", ".join(f"{r:,.0f}" for r in rates))
    return statistics.median(rates), updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000, help="venue frames per venue")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=1, help="pin to this CPU (-1: no pinning)")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"# reproduce: .venv/bin/python benchmarks/bench_client.py --frames {args.frames} "
        f"--runs {args.runs} --cpu {args.cpu}"
    )
    frames = recorded_frames(args.frames)
    print(f"\n{len(frames):,} frames")
    rate, updates = median_rate(frames, args.runs, read_state=False)
    read_rate, _ = median_rate(frames, args.runs, read_state=True)
    print(f"{updates:,} updates per run")
    print("\n| client path | aim | measured (median) | met |")
    print("|---|---|---|---|")
    met = "yes" if rate >= AIM_UPDATES_PER_S else "no"
    print(f"| decode + Tracker, updates/s | >= {AIM_UPDATES_PER_S:,} | {rate:,.0f} | {met} |")
    met = "yes" if read_rate >= AIM_UPDATES_PER_S else "no"
    print(f"| the same, every `state` read | >= {AIM_UPDATES_PER_S:,} | {read_rate:,.0f} | {met} |")


if __name__ == "__main__":
    main()
