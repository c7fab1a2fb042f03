"""The book checksum's cost against a message's encoding, on the books of a simulated
session (why book deltas carry it at every 10th seq, not on every message).

Runs the three venues' simulators through one hub (not timed), then times in process
CPU time `book_checksum` of every book (composite and venue) as the session left it,
and `encode_data` of the session's book deltas. Prints microseconds per call.

    .venv/bin/python benchmarks/bench_checksum.py [--frames 20000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.core.checksum import CHECKSUM_EVERY, book_checksum
from ticker.core.codec import encode_data
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.venues import make_adapter

VENUES = ("itx", "cbx", "fxa")


def session(frames: int) -> tuple[Hub, list[DataMessage]]:
    """A hub fed `frames` frames of each venue, and the book deltas it published."""
    hub = Hub(Config(), epoch=1)
    deltas: list[DataMessage] = []
    for venue in VENUES:
        simulator = make_simulator(venue, seed=7, rate_per_s=10_000)
        adapter = make_adapter(venue)
        data = [f.data for f in simulator.connect()]
        data += [simulator.next_frame().data for _ in range(frames)]
        for i, frame in enumerate(data):
            for event in adapter.on_message(frame, i).events:
                for item in hub.publish(event, i):
                    message = item.message
                    if not message.snapshot and message.topic.startswith("book"):
                        deltas.append(message)
    return hub, deltas


def per_call_us(fn: Callable[..., Any], calls: list[tuple[Any, ...]], repeat: int) -> float:
    """Process CPU microseconds per call of `fn` over `calls`, `repeat` times."""
    start = time.process_time()
    for _ in range(repeat):
        for call in calls:
            fn(*call)
    return (time.process_time() - start) / (repeat * len(calls)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    hub, deltas = session(args.frames)
    books = [t for t in hub.topics() if t.partition(".")[0].partition("@")[0] == "book"]
    sides = [hub.sequencer.snapshot(t).data for t in books]
    levels = statistics.mean(len(d["bids"]) + len(d["asks"]) for d in sides)
    pairs = [({p: s for p, s in d["bids"]}, {p: s for p, s in d["asks"]}) for d in sides]
    checksum_us = per_call_us(book_checksum, pairs, args.repeat * 20)
    encode_us = per_call_us(encode_data, [(m,) for m in deltas], max(1, args.repeat // 10))
    print(f"{len(books)} books, {levels:.1f} levels each on average; {len(deltas)} book deltas")
    print(f"book_checksum: {checksum_us:.2f} us per call")
    print(f"encode_data of a book delta: {encode_us:.2f} us per call")
    print(
        f"one checksum every {CHECKSUM_EVERY} deltas: +{checksum_us / CHECKSUM_EVERY:.2f} us "
        f"per book delta ({checksum_us / CHECKSUM_EVERY / encode_us:.0%} of its encoding); "
        f"on every delta: +{checksum_us / encode_us:.0%}"
    )


if __name__ == "__main__":
    main()
