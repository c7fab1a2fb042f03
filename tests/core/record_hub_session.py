"""Record the frames the hub golden test replays (run once; the output is committed).

    PYTHONPATH=. python tests/core/record_hub_session.py

Writes tests/core/data/hub_session.bin.gz: per venue, seeded simulator frames, each
length-prefixed. Recorded rather than generated in the test so that a change to the
simulators does not move the pinned digests: only a change to what the hub publishes does.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from feeds.simulator import make_simulator

VENUES = ("itx", "cbx", "fxa")
FRAMES = 2000
OUT = Path(__file__).parent / "data" / "hub_session.bin.gz"


def main() -> None:
    parts: list[bytes] = []
    for venue in VENUES:
        simulator = make_simulator(venue, seed=11, rate_per_s=10_000)
        frames = [frame.data for frame in simulator.connect()]
        frames += [simulator.next_frame().data for _ in range(FRAMES)]
        name = venue.encode()
        parts.append(struct.pack(">B", len(name)) + name + struct.pack(">I", len(frames)))
        parts += [struct.pack(">I", len(f)) + f for f in frames]
    OUT.write_bytes(gzip.compress(b"".join(parts), compresslevel=9, mtime=0))


if __name__ == "__main__":
    main()
