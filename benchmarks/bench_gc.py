"""The garbage collector's cost in the full pipeline, under each GC policy, while the
replay buffer fills (parse -> normalize -> consolidate -> sequence -> encode -> buffer).

One venue and one policy per process (so one policy's heap does not carry into the
next): `default` (Python's thresholds 700/10/10), `freeze` (gc.freeze() after start-up),
`tNk` (the youngest threshold N,000), or `freeze+tNk` (what `ticker serve` does with
`gc_gen0_threshold` = N,000). Prints events/s (process CPU time), the collector's own
time per event and its pauses (from gc.callbacks), collections per generation, max RSS.

    .venv/bin/python benchmarks/bench_gc.py itx default 60000
    .venv/bin/python benchmarks/bench_gc.py itx freeze+t50k 60000
"""

from __future__ import annotations

import gc
import re
import resource
import sys
import time
from typing import Any

from bench_core import frames_of

from ticker.config import Config
from ticker.core.hub import Hub
from ticker.venues import make_adapter


def main() -> None:
    venue, policy, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frames = frames_of(venue, count)
    pauses: list[float] = []
    counts = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            pauses.append(time.process_time() - started[0])
            counts[info["generation"]] += 1

    gc.collect()
    adapter = make_adapter(venue)
    hub = Hub(Config(), epoch=1)
    if "freeze" in policy:
        gc.freeze()
    threshold = re.search(r"t(\d+)k", policy)
    if threshold:
        gc.set_threshold(int(threshold.group(1)) * 1000, 10, 10)
    gc.callbacks.append(on_gc)
    publish = hub.publish
    events = 0
    start = time.process_time()
    for i, data in enumerate(frames):
        for event in adapter.on_message(data, i).events:
            events += 1
            publish(event, 1_800_000_000_000_000_000 + i)
    seconds = time.process_time() - start
    gc.callbacks.remove(on_gc)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pause_max = max(pauses, default=0.0) * 1e3
    print(
        f"{venue} {policy:12s} {events / seconds:9,.0f} events/s  "
        f"gc {sum(pauses) / events * 1e6:5.2f} us/event  collections {counts}  "
        f"pause max {pause_max:.1f} ms  max RSS {rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
