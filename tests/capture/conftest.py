"""Captures made in memory for the capture tests, with the events live ingest produced."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from feeds.faults import FaultPlan
from feeds.simulator import EPOCH_NS
from ticker.capture.format import CaptureReader, CaptureWriter, Record
from ticker.capture.record import Recorder, SimulatedVenues, record_offline, simulated_header
from ticker.capture.replay import OpenRecords
from ticker.model.events import NormalizedEvent

DEADLINE_S = 60
"""Every async test runs under `trio.fail_after(DEADLINE_S)`."""


@dataclass
class Captured:
    """A capture's bytes and every event the recorder's live normalization produced."""

    data: bytes
    live: list[NormalizedEvent]
    live_by_record: list[list[NormalizedEvent]]
    """`live` split by the record that produced it (raw captures only)."""

    def reader(self) -> CaptureReader:
        return CaptureReader(io.BytesIO(self.data), "test.tcap")

    def records(self) -> list[Record]:
        return list(self.reader().records())

    def opener(self) -> OpenRecords:
        return opener(self.data)


def opener(*captures: bytes) -> OpenRecords:
    """An `OpenRecords` over captures held in memory."""

    def open_records(start: int | None, end: int | None) -> list[Iterator[Record]]:
        return [CaptureReader(io.BytesIO(d), f"file{i}").records(start, end)
                for i, d in enumerate(captures)]  # fmt: skip

    return open_records


def make_capture(
    *,
    venues: tuple[str, ...] = ("cbx", "fxa", "itx"),
    symbols: tuple[str, ...] | None = ("BTC-USD", "ETH-USD", "SOL-USD"),
    arrivals: int = 1500,
    seed: int = 3,
    rate_per_s: float = 200.0,
    faults: FaultPlan | None = None,
    normalized: bool = False,
    start_ns: int = EPOCH_NS,
    block_records: int = 4096,
) -> Captured:
    live: list[NormalizedEvent] = []
    sim = SimulatedVenues(
        venues, symbols, seed=seed, rate_per_s=rate_per_s, start_ns=start_ns, faults=faults
    )
    header = simulated_header(
        sim, created_ns=start_ns, seed=seed, rate_per_s=rate_per_s, faults=faults,
        normalized=normalized,
    )  # fmt: skip
    file = io.BytesIO()
    writer = CaptureWriter(file, header, block_records=block_records)
    recorder = Recorder(writer, sim, normalized=normalized, sink=live.append)
    by_record: list[list[NormalizedEvent]] = []
    if normalized:
        record_offline(recorder, arrivals)
    else:
        for _ in range(arrivals):
            before = len(live)
            arrival = sim.next()
            recorder.on_arrival(arrival, arrival.ts_ns)
            by_record.append(live[before:])
    writer.close()
    return Captured(file.getvalue(), live, by_record)


@pytest.fixture(scope="session")
def capture() -> Captured:
    """Three venues, a few disconnects and drops (so resyncs and markers are in it)."""
    return make_capture(faults=FaultPlan(drop=0.005, disconnect=0.002), block_records=256)
