"""`python -m ticker.capture.sample OUT`: write the small sample capture, deterministically.

Three simulated venues, three symbols, simulated receive times from 2024-01-01, one
venue disconnect: the same bytes on every run and machine, so docs and tests make it
instead of keeping a binary in git. Must not read a clock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import BinaryIO

from feeds.faults import FaultPlan
from feeds.simulator import EPOCH_NS
from ticker.capture.format import CaptureWriter
from ticker.capture.record import Recorder, SimulatedVenues, record_offline, simulated_header

SAMPLE_VENUES = ("cbx", "fxa", "itx")
SAMPLE_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
SAMPLE_SEED = 7
SAMPLE_RATE_PER_S = 100.0
SAMPLE_ARRIVALS = 3000
"""About ten simulated seconds of the three venues."""
SAMPLE_FAULTS = FaultPlan(disconnect=0.0005)
"""Rare enough to keep the sample mostly clean; seed 7 gives it a disconnect."""


def write_sample(
    file: BinaryIO, *, arrivals: int = SAMPLE_ARRIVALS, normalized: bool = False
) -> CaptureWriter:
    """Write the sample capture to `file`; returns the closed writer (for its counts)."""
    venues = SimulatedVenues(
        SAMPLE_VENUES,
        SAMPLE_SYMBOLS,
        seed=SAMPLE_SEED,
        rate_per_s=SAMPLE_RATE_PER_S,
        start_ns=EPOCH_NS,
        faults=SAMPLE_FAULTS,
    )
    header = simulated_header(
        venues,
        created_ns=EPOCH_NS,
        seed=SAMPLE_SEED,
        rate_per_s=SAMPLE_RATE_PER_S,
        faults=SAMPLE_FAULTS,
        normalized=normalized,
        extra={"made_by": "python -m ticker.capture.sample"},
    )
    writer = CaptureWriter(file, header)
    record_offline(Recorder(writer, venues, normalized=normalized), arrivals)
    writer.close()
    return writer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ticker.capture.sample", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", metavar="OUT", help="the capture file to write")
    parser.add_argument("--arrivals", type=int, default=SAMPLE_ARRIVALS, help="venue messages")
    parser.add_argument("--normalized", action="store_true", help="normalized events instead")
    args = parser.parse_args(argv)
    if args.arrivals < 1:
        parser.error("--arrivals must be positive")
    with open(args.out, "wb") as file:
        writer = write_sample(file, arrivals=args.arrivals, normalized=args.normalized)
    print(
        f"wrote {args.out}: {writer.records} records, {writer.blocks} blocks, "
        f"{writer.bytes_written} bytes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
