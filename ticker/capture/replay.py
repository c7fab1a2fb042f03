"""The replay plan: which records, in what order, with what faults, due when.

Pure: records come in (several captures merge by receive time), steps come out, each
`Step(due_s, events, records)` saying when (seconds after the loop's start) its events
are due. Between the two: the time window (with a warm-up that rebuilds the state a
window starting mid-capture needs), the venue filter, seeded fault injection, the real
normalizers, the symbol filter and time rebasing. The trio shell (`player`) sleeps and
publishes; nothing here reads a clock or does I/O except through the record iterators.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from random import Random
from typing import NamedTuple

from ticker.capture.format import Record, RecordKind
from ticker.capture.normalize import CaptureNormalizer
from ticker.ingest.contract import IngestCounters
from ticker.model.events import NormalizedEvent

OpenRecords = Callable[[int | None, int | None], list[Iterator[Record]]]
"""Opens every capture afresh: `(start_ns, end_ns) -> one record iterator per file`."""


@dataclass(frozen=True, slots=True)
class ReplayFaults:
    """Rate per replayed record of each fault (at most one per record; seeded).

    drop: the record is lost. duplicate: it comes twice. reorder: it comes after the
    next one. corrupt: one to three of its bytes are flipped.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        rates = [getattr(self, f.name) for f in fields(self)]
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise ValueError("fault rates must each be in [0, 1] and sum to at most 1")

    @property
    def clean(self) -> bool:
        return not (self.drop or self.duplicate or self.reorder or self.corrupt)


class RecordFaults:
    """Injects `ReplayFaults` into a record stream; `injected` counts them by name.

    Disconnect markers pass untouched. A reordered record comes right after the next
    record of its venue and takes that one's receive time, so times never go backwards.
    """

    def __init__(self, plan: ReplayFaults, rng: Random) -> None:
        self.plan = plan
        self._rng = rng
        self.injected = {f.name: 0 for f in fields(ReplayFaults)}

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        plan, rng, injected = self.plan, self._rng, self.injected
        # A reordered record waits for the next record of its own venue: a venue's
        # messages come out of order, not merely interleaved differently with others'.
        held: dict[str, Record] = {}
        last_ns = 0
        for record in records:
            last_ns = record.recv_ns
            waiting = held.pop(record.venue, None)
            if waiting is not None:
                yield record
                yield waiting._replace(recv_ns=record.recv_ns)
                continue
            if record.kind is RecordKind.DISCONNECT or plan.clean:
                yield record
                continue
            r = rng.random()
            if r < plan.drop:
                injected["drop"] += 1
                continue
            r -= plan.drop
            if r < plan.duplicate:
                injected["duplicate"] += 1
                yield record
                yield record
                continue
            r -= plan.duplicate
            if r < plan.reorder:
                injected["reorder"] += 1
                held[record.venue] = record
                continue
            r -= plan.reorder
            if r < plan.corrupt and record.payload:
                injected["corrupt"] += 1
                yield record._replace(payload=_flip_bytes(record.payload, rng))
                continue
            yield record
        for waiting in held.values():
            yield waiting._replace(recv_ns=max(waiting.recv_ns, last_ns))


def _flip_bytes(payload: bytes, rng: Random) -> bytes:
    damaged = bytearray(payload)
    for _ in range(1 + int(rng.random() * 3)):
        position = int(rng.random() * len(damaged))
        damaged[position] ^= 1 + int(rng.random() * 255)
    return bytes(damaged)


def merge_records(sources: Iterable[Iterator[Record]]) -> Iterator[Record]:
    """Records of several captures in receive-time order (ties: the earlier file first)."""
    return heapq.merge(*sources, key=lambda record: record.recv_ns)


class Pacer:
    """When each record is due, in seconds after the first: recorded gaps / `speed`.

    `speed` None means as fast as possible (everything is due at once). A gap longer
    than `max_sleep_s` (after the speed-up) is cut to it: quiet periods compress.
    """

    def __init__(self, speed: float | None, max_sleep_s: float | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive")
        if max_sleep_s is not None and not max_sleep_s >= 0:
            raise ValueError("max_sleep_s must not be negative")
        self.speed = speed
        self.max_sleep_s = max_sleep_s
        self._previous_ns: int | None = None
        self._due_s = 0.0

    def due_s(self, recv_ns: int) -> float:
        if self.speed is None:
            return 0.0
        if self._previous_ns is not None:
            gap_s = (recv_ns - self._previous_ns) / 1e9 / self.speed
            if self.max_sleep_s is not None:
                gap_s = min(gap_s, self.max_sleep_s)
            self._due_s += max(gap_s, 0.0)
        self._previous_ns = recv_ns
        return self._due_s


class Step(NamedTuple):
    """Events due `due_s` seconds after the loop started, from `records` records."""

    due_s: float
    events: list[NormalizedEvent]
    records: int


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """Everything that decides what a replay publishes and when."""

    speed: float | None = 1.0
    """Recorded time / replay time; None = as fast as the target takes it."""
    start_ns: int | None = None
    end_ns: int | None = None
    venues: frozenset[str] | None = None
    symbols: frozenset[str] | None = None
    rebase: bool = False
    max_sleep_s: float | None = None
    faults: ReplayFaults = field(default_factory=ReplayFaults)
    seed: int = 1
    warmup: bool = True
    """With `start_ns`: read from the beginning to rebuild state, then restate it."""


@dataclass(slots=True)
class ReplayCounts:
    """What a replay read and made, summed over loops."""

    records: int = 0
    """Records in the window, before faults."""
    warmup_records: int = 0
    events: int = 0
    """Events in the steps (after the symbol filter), state events included."""
    state_events: int = 0
    filtered_events: int = 0
    malformed_events: int = 0
    snapshot_requests: int = 0
    """Requests the adapters made for resyncs; a replay cannot send them to a venue."""
    first_ns: int | None = None
    last_ns: int | None = None
    faults: dict[str, int] = field(
        default_factory=lambda: {f.name: 0 for f in fields(ReplayFaults)}
    )
    venues: dict[str, IngestCounters] = field(default_factory=dict)

    def add_venue_counters(
        self, counters: dict[str, IngestCounters], minus: dict[str, IngestCounters]
    ) -> None:
        """Add each venue's `counters`, less what `minus` holds for it."""
        for venue, c in counters.items():
            total = self.venues.setdefault(venue, IngestCounters())
            before = minus.get(venue, IngestCounters())
            for f in fields(IngestCounters):
                name = f.name
                setattr(
                    total, name, getattr(total, name) + getattr(c, name) - getattr(before, name)
                )

    @property
    def problems(self) -> int:
        """Gaps, duplicates, malformed input and resyncs seen (what `--validate` flags)."""
        venue = sum(c.gaps + c.duplicates + c.malformed + c.resyncs for c in self.venues.values())
        return venue + self.malformed_events


def replay_steps(
    open_records: OpenRecords,
    options: ReplayOptions,
    counts: ReplayCounts,
    *,
    loop: int = 0,
    rebase_to_ns: int | None = None,
) -> Iterator[Step]:
    """One pass over the captures as steps, updating `counts` as it goes.

    Args:
        open_records: opens the captures (called once or, with a warm-up, from the start).
        options: window, filters, faults, speed.
        counts: updated in place; adapter counters are added when the pass ends.
        loop: which pass this is (the fault rng is seeded with it, so loops differ).
        rebase_to_ns: with `options.rebase`, the wall time the window's start maps to.
    """
    fold = options.start_ns is not None and options.warmup
    warmup_counters: dict[str, IngestCounters] = {}
    warmup_requests = 0
    normalizer = CaptureNormalizer(fold=fold)
    faults = RecordFaults(options.faults, Random(f"replay-faults:{options.seed}:{loop}"))
    pacer = Pacer(options.speed, options.max_sleep_s)
    venues, symbols = options.venues, options.symbols
    try:
        if fold:
            assert options.start_ns is not None
            records = merge_records(open_records(None, options.end_ns))
            window = _warm_up(records, options.start_ns, normalizer, venues, counts)
            # Counters describe the window: what the warm-up counted is taken off.
            warmup_counters = {v: dataclasses.replace(c) for v, c in normalizer.counters().items()}
            warmup_requests = normalizer.requests
        else:
            window = merge_records(open_records(options.start_ns, options.end_ns))
        window = (r for r in window if venues is None or r.venue in venues)
        shift = 0
        first = True
        for record in faults.apply(_counted(window, counts)):
            if first:
                first = False
                start = options.start_ns if options.start_ns is not None else record.recv_ns
                if options.rebase and rebase_to_ns is not None:
                    shift = rebase_to_ns - start
                if fold:
                    state = _select(normalizer.state_events(start), symbols, counts)
                    counts.state_events += len(state)
                    yield Step(0.0, _shifted(state, shift), 0)
            events = _select(normalizer.feed(record).events, symbols, counts)
            yield Step(pacer.due_s(record.recv_ns), _shifted(events, shift), 1)
    finally:
        counts.add_venue_counters(normalizer.counters(), minus=warmup_counters)
        counts.malformed_events += normalizer.malformed_events
        counts.snapshot_requests += normalizer.requests - warmup_requests
        for name, n in faults.injected.items():
            counts.faults[name] += n


def _warm_up(
    records: Iterator[Record],
    start_ns: int,
    normalizer: CaptureNormalizer,
    venues: frozenset[str] | None,
    counts: ReplayCounts,
) -> Iterator[Record]:
    """Feed records before `start_ns` to the normalizer; return the rest, unread."""
    for record in records:
        if record.recv_ns >= start_ns:
            return itertools.chain([record], records)
        if venues is None or record.venue in venues:
            counts.warmup_records += 1
            normalizer.feed(record)
    return iter(())


def _counted(records: Iterable[Record], counts: ReplayCounts) -> Iterator[Record]:
    for record in records:
        counts.records += 1
        if counts.first_ns is None:
            counts.first_ns = record.recv_ns
        counts.last_ns = record.recv_ns
        yield record


def _select(
    events: list[NormalizedEvent], symbols: frozenset[str] | None, counts: ReplayCounts
) -> list[NormalizedEvent]:
    if symbols is not None:
        kept = [event for event in events if event.symbol in symbols]
        counts.filtered_events += len(events) - len(kept)
        events = kept
    counts.events += len(events)
    return events


def _shifted(events: list[NormalizedEvent], shift_ns: int) -> list[NormalizedEvent]:
    if not shift_ns:
        return events
    return [event._replace(ts_ns=event.ts_ns + shift_ns) for event in events]
