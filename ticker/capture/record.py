"""Recording: simulated venues -> capture records, live (paced) or offline.

`SimulatedVenues` merges several venue simulators (with optional faults) into one
stream of arrivals in time order; `Recorder` writes each arrival as a record (or, with
`normalized`, the events it normalizes to) and routes the adapters' snapshot requests
back to the venues, so the capture holds the venue's replies as a live feed would.
`record_live` paces it against the trio clock and stamps real receive times;
`record_offline` stamps simulated times, for deterministic captures.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from feeds.faults import Disconnect, FaultPlan, FaultyFeed, Stall
from feeds.simulator import make_simulator
from ticker.capture.format import CaptureHeader, CaptureWriter, Record, RecordKind
from ticker.capture.normalize import CaptureNormalizer
from ticker.ingest.contract import RequestSnapshot
from ticker.model.event_codec import encode_event
from ticker.model.events import NormalizedEvent
from ticker.venues.reference import VENUES, venue_listings

log = logging.getLogger("ticker.capture")

RECONNECT_NS = 100_000_000
"""Simulated time a venue stays away after a disconnect (the server's first backoff)."""
FLUSH_INTERVAL_S = 1.0
"""A live recording writes its current block at least this often (a crash loses less)."""
CHECKPOINT_EVERY = 256
"""A recorder that is behind still yields to trio after this many arrivals."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One thing a venue delivered at simulated time `ts_ns`: a message or a disconnect."""

    ts_ns: int
    venue: str
    kind: RecordKind
    data: bytes = b""


def venue_symbols(venues: Sequence[str], symbols: Sequence[str] | None) -> dict[str, list[str]]:
    """The symbols each venue will run: `symbols` it lists, or all it lists.

    Raises:
        ValueError: an unknown venue, a symbol no chosen venue lists, or a venue that
            lists none of `symbols`.
    """
    if not venues:
        raise ValueError(f"give at least one venue; known: {', '.join(VENUES)}")
    chosen: dict[str, list[str]] = {}
    for venue in venues:
        listed = [listing.symbol for listing in venue_listings(venue)]
        chosen[venue] = listed if symbols is None else [s for s in symbols if s in listed]
        if not chosen[venue]:
            raise ValueError(f"venue {venue} lists none of {', '.join(symbols or ())}")
    if symbols is not None:
        unknown = sorted(set(symbols) - {s for listed in chosen.values() for s in listed})
        if unknown:
            raise ValueError(f"no chosen venue lists {', '.join(unknown)}")
    return chosen


class SimulatedVenues:
    """Several simulated venues as one stream of arrivals in simulated-time order.

    Each venue's feed passes through `FaultyFeed` with its own seeded rng (as the
    server does), and a disconnected venue reconnects `reconnect_ns` later.
    """

    def __init__(
        self,
        venues: Sequence[str],
        symbols: Sequence[str] | None,
        *,
        seed: int,
        rate_per_s: float,
        start_ns: int,
        faults: FaultPlan | None = None,
        reconnect_ns: int = RECONNECT_NS,
    ) -> None:
        self.symbols = venue_symbols(venues, symbols)
        self.feeds = {
            venue: FaultyFeed(
                make_simulator(venue, seed, rate_per_s, chosen, start_ns=start_ns),
                faults or FaultPlan(),
                random.Random(f"faults:{seed}:{venue}"),
            )
            for venue, chosen in self.symbols.items()
        }
        self._reconnect_ns = reconnect_ns
        self._ahead: dict[str, Arrival] = {}

    def _pull(self, venue: str, feed: FaultyFeed) -> Arrival:
        while True:
            item = feed.next()
            if isinstance(item, Stall):
                continue  # the simulator's clock moved on; its next frame is later
            if isinstance(item, Disconnect):
                at = feed.sim.now_ns
                feed.sim.advance(self._reconnect_ns)
                return Arrival(at, venue, RecordKind.DISCONNECT)
            return Arrival(item.ts_ns, venue, RecordKind.RAW, item.data)

    def next(self) -> Arrival:
        """The earliest pending arrival over every venue (ties: venue order)."""
        for venue, feed in self.feeds.items():
            if venue not in self._ahead:
                self._ahead[venue] = self._pull(venue, feed)
        venue = min(self._ahead, key=lambda v: self._ahead[v].ts_ns)
        return self._ahead.pop(venue)

    def request_snapshots(self, requests: Sequence[RequestSnapshot]) -> None:
        """Hand adapters' snapshot requests to their venues."""
        for request in requests:
            feed = self.feeds.get(request.venue)
            if feed is not None:
                feed.request(request)


class Recorder:
    """Writes arrivals as records and normalizes them, routing resyncs to the venues.

    With `normalized`, the records are the events (one record each) instead of the
    venue's messages. `sink`, if given, sees every event the live normalization made.
    """

    def __init__(
        self,
        writer: CaptureWriter,
        venues: SimulatedVenues,
        *,
        normalized: bool = False,
        sink: Callable[[NormalizedEvent], None] | None = None,
    ) -> None:
        self.writer = writer
        self.venues = venues
        self.normalized = normalized
        self.normalizer = CaptureNormalizer()
        self.sink = sink
        self.arrivals = 0
        self.events = 0

    def on_arrival(self, arrival: Arrival, recv_ns: int) -> None:
        """Record one arrival received at `recv_ns`."""
        record = Record(recv_ns, arrival.kind, arrival.venue, arrival.data)
        output = self.normalizer.feed(record)
        self.venues.request_snapshots(output.requests)
        self.arrivals += 1
        self.events += len(output.events)
        if self.normalized:
            for event in output.events:
                self.writer.add(RecordKind.EVENT, recv_ns, event.venue, encode_event(event))
        else:
            self.writer.add(arrival.kind, recv_ns, arrival.venue, arrival.data)
        if self.sink is not None:
            for event in output.events:
                self.sink(event)


def iso_utc(ns: int) -> str:
    """`ns` since the epoch as ISO-8601 UTC with milliseconds ("2024-01-01T00:00:00.000Z")."""
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulated_header(
    venues: SimulatedVenues,
    *,
    created_ns: int,
    seed: int,
    rate_per_s: float,
    faults: FaultPlan | None,
    normalized: bool,
    extra: dict[str, Any] | None = None,
) -> CaptureHeader:
    """The header of a capture of simulated venues, with every recorder setting."""
    options: dict[str, Any] = {
        "seed": seed,
        "rate_per_s": rate_per_s,
        "faults": {k: v for k, v in dataclasses.asdict(faults or FaultPlan()).items() if v},
        "normalized": normalized,
        "symbols_per_venue": venues.symbols,
        **(extra or {}),
    }
    symbols = sorted({s for chosen in venues.symbols.values() for s in chosen})
    return CaptureHeader(
        created_at=iso_utc(created_ns),
        source="simulator",
        venues=tuple(venues.symbols),
        symbols=tuple(symbols),
        kind="normalized" if normalized else "raw",
        options=options,
    )


def record_offline(recorder: Recorder, arrivals: int) -> None:
    """Record `arrivals` arrivals stamped with simulated time: the same bytes every run."""
    for _ in range(arrivals):
        arrival = recorder.venues.next()
        recorder.on_arrival(arrival, arrival.ts_ns)


async def record_live(
    recorder: Recorder,
    duration_s: float,
    *,
    start_ns: int,
    progress: Callable[[Recorder], None] | None = None,
    flush_interval_s: float = FLUSH_INTERVAL_S,
) -> None:
    """Record for `duration_s` seconds, paced in real time, stamping real receive times.

    The simulated venues started at `start_ns`; an arrival at simulated time t is handled
    at t on the trio clock, and its receive time is the wall clock then (never earlier
    than the previous one, so records stay in order). The writer is flushed every
    `flush_interval_s`, quiet or not; `progress` is called at each flush.
    """
    origin_trio = trio.current_time()
    last_ns = 0
    next_flush = origin_trio + flush_interval_s
    behind = 0

    def flush_if_due() -> None:
        nonlocal next_flush
        if trio.current_time() >= next_flush:
            next_flush = trio.current_time() + flush_interval_s
            recorder.writer.flush()
            if progress is not None:
                progress(recorder)

    with trio.move_on_after(duration_s):
        while True:
            arrival = recorder.venues.next()
            due = origin_trio + (arrival.ts_ns - start_ns) / 1e9
            now = trio.current_time()
            if due > now:
                while due > trio.current_time():  # a quiet stretch still flushes on time
                    await trio.sleep_until(min(due, next_flush))
                    flush_if_due()
                behind = 0
            else:
                behind += 1
                if behind >= CHECKPOINT_EVERY:
                    behind = 0
                    await trio.lowlevel.checkpoint()
            last_ns = max(last_ns, time.time_ns())
            recorder.on_arrival(arrival, last_ns)
            flush_if_due()
