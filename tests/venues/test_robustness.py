"""Adapters against real simulator traffic, repeated, damaged or random.

Duplicates and damaged copies never change what comes out; no input, however bad,
raises out of `on_message`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.simulator import Frame, make_simulator
from ticker.ingest.contract import AdapterOutput
from ticker.model.events import NormalizedEvent
from ticker.venues import AdapterBase, make_adapter
from ticker.venues.reference import VENUES


@pytest.fixture(autouse=True)
def _quiet_ingest_log() -> Iterator[None]:
    logger = logging.getLogger("ticker.ingest")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def traffic(venue: str, seed: int, frames: int) -> list[Frame]:
    sim = make_simulator(venue, seed, 1_000.0)
    return sim.connect() + [sim.next_frame() for _ in range(frames)]


def play(adapter: AdapterBase, frames: list[Frame]) -> list[NormalizedEvent]:
    events: list[NormalizedEvent] = []
    for frame in frames:
        out: AdapterOutput = adapter.on_message(frame.data, frame.ts_ns)
        assert out.requests == []
        events.extend(out.events)
    return events


@pytest.mark.parametrize("venue", VENUES)
def test_duplicates_never_produce_events(venue: str) -> None:
    frames = traffic(venue, 11, 1500)
    sim = make_simulator(venue, 0, 1.0)
    doubled = [f for frame in frames for f in (frame, Frame(frame.ts_ns, sim.resend(frame.data)))]
    once, twice = make_adapter(venue), make_adapter(venue)
    assert play(twice, doubled) == play(once, frames)
    assert twice.counters.duplicates >= len(frames) * 9 // 10
    assert twice.books() == once.books()


@pytest.mark.parametrize("venue", VENUES)
def test_damaged_copies_are_counted_and_skipped(venue: str) -> None:
    frames = traffic(venue, 12, 1500)
    sim = make_simulator(venue, 0, 1.0)
    rng = Random(3)
    noisy: list[Frame] = []
    for frame in frames:
        noisy.append(Frame(frame.ts_ns, sim.corrupt(frame.data, rng)))
        noisy.append(Frame(frame.ts_ns, frame.data[: rng.randrange(len(frame.data))]))
        noisy.append(frame)
    clean, dirty = make_adapter(venue), make_adapter(venue)
    assert play(dirty, noisy) == play(clean, frames)
    assert dirty.counters.malformed == 2 * len(frames)
    assert dirty.counters.messages == 3 * len(frames)


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(venue: str, data: bytes) -> None:
    adapter = make_adapter(venue)
    adapter.on_message(data, 0)
    assert adapter.counters.messages == 1


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255))))
def test_mutated_traffic_never_raises(venue: str, seed: int, edits: list[tuple[int, int]]) -> None:
    """Valid frames with arbitrary byte edits, replayed into one adapter."""
    frames = traffic(venue, seed % 7, 40)
    adapter = make_adapter(venue)
    for i, frame in enumerate(frames):
        raw = bytearray(frame.data)
        for position, value in edits:
            if (position + i) % 3 == 0:
                raw[position % len(raw)] = value
        adapter.on_message(bytes(raw), frame.ts_ns)
        adapter.on_timer(frame.ts_ns)
    assert not any(t.book.crossed() for t in adapter.norm.tracks.values())
