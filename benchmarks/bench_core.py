"""Core throughput: parse -> normalize -> sequence -> encode, per venue, on one core.

For each venue it pre-generates frames from the simulator (not timed), then times:
the adapter alone (parse + normalize), the adapter plus the hub (consolidate, sequence,
msgpack encode, replay buffer; with Python's GC thresholds and with the youngest one at
`gc_gen0_threshold` as `ticker serve` sets it: the aim is read on the latter), the hub
alone (events parsed beforehand), and the JSON rendering SSE needs, then prints issue
#14's aims against the medians. It also reports
bytes of deltas against the full snapshots they replace, and zstd ratio and cost per
message with and without the shipped dictionary. Medians of --runs runs, pinned to one
CPU. `make bench` runs it with --frames 30000 --runs 3 --cpu 1 (about 4 minutes).

    .venv/bin/python benchmarks/bench_core.py [--frames 60000] [--runs 3] [--cpu 0]
        [--json-only]  (only the JSON column, for work on `render_json`)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.core import codec
from ticker.core.codec import encode_data
from ticker.core.compression import FrameCompressor, load_dictionary
from ticker.core.hub import Hub, Published
from ticker.venues import make_adapter

VENUES = ("itx", "cbx", "fxa")
AIM_EVENTS_PER_S = {"itx": 150_000, "cbx": 100_000, "fxa": 100_000}
"""Issue #14: full pipeline events/s on one core, binary venue and text venues."""
AIM_JSON_US = 2.0


def frames_of(venue: str, count: int) -> list[bytes]:
    simulator = make_simulator(venue, seed=7, rate_per_s=10_000)
    frames = [frame.data for frame in simulator.connect()]
    frames += [simulator.next_frame().data for _ in range(count)]
    return frames


def timed(work: Callable[[], int], gen0_threshold: int = 0) -> tuple[float, int]:
    """Seconds of process CPU time for `work`, and the count it returns (GC frozen).

    With `gen0_threshold`, the youngest GC generation's threshold is that during the
    pass, as `ticker serve` sets it (`Config.gc_gen0_threshold`); 0 keeps Python's.
    """
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    if gen0_threshold:
        gc.set_threshold(gen0_threshold, *thresholds[1:])
    start = time.process_time()
    count = work()
    seconds = time.process_time() - start
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    return seconds, count


def adapter_only(venue: str, frames: list[bytes]) -> int:
    adapter = make_adapter(venue)
    events = 0
    for i, data in enumerate(frames):
        events += len(adapter.on_message(data, i).events)
    return events


def full_pipeline(venue: str, frames: list[bytes], out: list[Published] | None = None) -> int:
    adapter = make_adapter(venue)
    hub = Hub(Config(), epoch=1)
    publish = hub.publish
    events = 0
    for i, data in enumerate(frames):
        for event in adapter.on_message(data, i).events:
            events += 1
            published = publish(event, 1_800_000_000_000_000_000 + i)
            if out is not None:
                out.extend(published)
    return events


def hub_alone(venue: str, frames: list[bytes]) -> Callable[[], int]:
    """The hub's share: events parsed beforehand (not timed), then only `Hub.publish`."""
    adapter = make_adapter(venue)
    events = [
        event for i, data in enumerate(frames) for event in adapter.on_message(data, i).events
    ]

    def work() -> int:
        publish = Hub(Config(), epoch=1).publish
        for i, event in enumerate(events):
            publish(event, 1_800_000_000_000_000_000 + i)
        return len(events)

    return work


def delta_bytes(venue: str, frames: list[bytes]) -> dict[str, tuple[int, int]]:
    """Per channel: (bytes of what was published, bytes had each been a full snapshot)."""
    adapter = make_adapter(venue)
    hub = Hub(Config(), epoch=1)
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, data in enumerate(frames):
        for event in adapter.on_message(data, i).events:
            for item in hub.publish(event, i):
                channel = item.topic.partition(".")[0]
                snapshot = hub.snapshot(item.topic)
                full = encode_data(snapshot._replace(offset=item.offset))
                sizes[channel][0] += item.size
                sizes[channel][1] += len(full)
    return {k: (v[0], v[1]) for k, v in sizes.items()}


def zstd_figures(messages: list[bytes]) -> dict[str, tuple[float, float]]:
    """Per compressor: (raw/compressed ratio, microseconds per message)."""
    out = {}
    for name, compressor in (
        ("no dictionary", FrameCompressor()),
        ("shipped dictionary", FrameCompressor(load_dictionary())),
    ):
        start = time.perf_counter()
        compressed = sum(len(compressor.compress(m)) for m in messages)
        elapsed = time.perf_counter() - start
        raw = sum(map(len, messages))
        out[name] = (raw / compressed, elapsed / len(messages) * 1e6)
    return out


def json_cost(published: list[Published]) -> float:
    """CPU microseconds per message to render the JSON form of each, first use.

    Every run starts with the renderer's memos empty (rendered decimals, topic heads), as
    a server that has just started: they warm up within the run as they would there.
    Without this only the first run would start cold and the median would be a warm one.
    """
    codec._decimals.clear()  # a benchmark resets the module's memos
    codec._heads.clear()
    seconds, count = timed(lambda: sum(len(p.json) > 0 for p in published))
    return seconds / count * 1e6


def json_only(frames_count: int, runs: int) -> None:
    """The JSON column alone: the pipeline runs untimed, once per pass (a message
    renders once, then keeps its text), and only the rendering is timed."""
    print("\n| venue | messages | JSON render us/msg (median) | min | aim met |")
    print("|---|---|---|---|---|")
    for venue in VENUES:
        frames = frames_of(venue, frames_count)
        costs = []
        for _ in range(runs):
            published: list[Published] = []
            full_pipeline(venue, frames, published)
            costs.append(json_cost(published))
        median = statistics.median(costs)
        met = "yes" if median <= AIM_JSON_US else "no"
        print(f"| {venue} | {len(published):,} | {median:.2f} | {min(costs):.2f} | {met} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: no pinning)")
    parser.add_argument(
        "--json-only", action="store_true", help="time only the JSON rendering SSE needs"
    )
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    if args.json_only:
        json_only(args.frames, args.runs)
        return
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"# reproduce: .venv/bin/python benchmarks/bench_core.py --frames {args.frames} "
        f"--runs {args.runs} --cpu {args.cpu}"
    )
    print(
        "\n| venue | adapter events/s | full pipeline events/s | full, serve's GC events/s "
        "| messages/s | hub alone us/event | JSON render us/msg |"
    )
    print("|---|---|---|---|---|---|---|")
    serve_gc = Config().gc_gen0_threshold
    all_messages: list[bytes] = []
    measured: dict[str, tuple[float, float]] = {}
    for venue in VENUES:
        frames = frames_of(venue, args.frames)
        adapter_rates, full_rates, message_rates, json_costs = [], [], [], []
        serve_gc_rates = []
        hub_costs = []
        hub_work = hub_alone(venue, frames)
        for _ in range(args.runs):
            seconds, events = timed(hub_work)
            hub_costs.append(seconds / events * 1e6)
            seconds, events = timed(lambda: adapter_only(venue, frames))  # noqa: B023
            adapter_rates.append(events / seconds)
            seconds, events = timed(lambda: full_pipeline(venue, frames))  # noqa: B023
            full_rates.append(events / seconds)
            gc_seconds, events = timed(lambda: full_pipeline(venue, frames), serve_gc)  # noqa: B023
            serve_gc_rates.append(events / gc_seconds)
            published: list[Published] = []
            full_pipeline(venue, frames, published)
            message_rates.append(len(published) / seconds)
            json_costs.append(json_cost(published))
        all_messages += [p.payload for p in published[:5000]]
        measured[venue] = (statistics.median(serve_gc_rates), statistics.median(json_costs))
        print(
            f"| {venue} | {statistics.median(adapter_rates):,.0f} "
            f"| {statistics.median(full_rates):,.0f} | {statistics.median(serve_gc_rates):,.0f} "
            f"| {statistics.median(message_rates):,.0f} "
            f"| {statistics.median(hub_costs):.2f} | {statistics.median(json_costs):.2f} |"
        )
    print("\n| aim (issue #14) | aim | measured (median) | met |")
    print("|---|---|---|---|")
    for venue, (rate, _) in measured.items():
        aim = AIM_EVENTS_PER_S[venue]
        met = "yes" if rate >= aim else "no"
        print(f"| {venue} full pipeline events/s (serve's GC) | >= {aim:,} | {rate:,.0f} | {met} |")
    for venue, (_, json_us) in measured.items():
        met = "yes" if json_us <= AIM_JSON_US else "no"
        print(f"| {venue} JSON render us/msg | <= {AIM_JSON_US} | {json_us:.2f} | {met} |")
    print("\n| venue | channel | bytes published | bytes as full snapshots | ratio |")
    print("|---|---|---|---|---|")
    for venue in VENUES:
        sizes = delta_bytes(venue, frames_of(venue, min(args.frames, 20_000)))
        total = [0, 0]
        for channel, (sent, full) in sorted(sizes.items()):
            total[0] += sent
            total[1] += full
            print(f"| {venue} | {channel} | {sent:,} | {full:,} | {sent / full:.0%} |")
        print(f"| {venue} | all | {total[0]:,} | {total[1]:,} | {total[0] / total[1]:.0%} |")
    print("\n| zstd per message | raw/compressed | us per message |")
    print("|---|---|---|")
    for name, (ratio, cost) in zstd_figures(all_messages).items():
        print(f"| {name} | {ratio:.2f} | {cost:.2f} |")


if __name__ == "__main__":
    main()
