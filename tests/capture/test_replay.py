"""The replay plan: replay equals live ingest, windows, filters, faults, pacing, rebasing."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.capture.format import Record, RecordKind
from ticker.capture.replay import (
    Pacer,
    RecordFaults,
    ReplayCounts,
    ReplayFaults,
    ReplayOptions,
    Step,
    merge_records,
    replay_steps,
)
from ticker.model.event_codec import encode_event
from ticker.model.events import BookUpdate, NormalizedEvent

from .conftest import Captured, make_capture, opener


def steps(
    capture_opener: object, options: ReplayOptions, **kw: int
) -> tuple[list[Step], ReplayCounts]:
    counts = ReplayCounts()
    out = list(replay_steps(capture_opener, options, counts, **kw))  # type: ignore[arg-type]
    return out, counts


def events_of(out: list[Step]) -> list[NormalizedEvent]:
    return [event for step in out for event in step.events]


def wire(events: list[NormalizedEvent]) -> list[bytes]:
    return [encode_event(event) for event in events]


@pytest.mark.parametrize("speed", [None, 0.5, 1.0, 7.0, 1000.0])
def test_replay_at_any_speed_gives_exactly_the_live_events(
    capture: Captured, speed: float | None
) -> None:
    out, counts = steps(capture.opener(), ReplayOptions(speed=speed, max_sleep_s=0.01))
    assert wire(events_of(out)) == wire(capture.live)
    assert counts.records == len(capture.records())
    assert counts.events == len(capture.live)
    assert sum(c.disconnects for c in counts.venues.values()) > 0  # markers were replayed


def test_a_normalized_capture_replays_its_events() -> None:
    captured = make_capture(normalized=True, arrivals=600)
    out, counts = steps(captured.opener(), ReplayOptions(speed=None))
    assert wire(events_of(out)) == wire(captured.live)
    assert counts.records == len(captured.live)


def test_rebasing_shifts_every_timestamp_by_one_offset(capture: Captured) -> None:
    first = capture.records()[0].recv_ns
    now = first + 123_456_789_000
    out, _ = steps(capture.opener(), ReplayOptions(speed=None, rebase=True), rebase_to_ns=now)
    shifted = events_of(out)
    assert len(shifted) == len(capture.live)
    assert [e._replace(ts_ns=e.ts_ns - 123_456_789_000) for e in shifted] == capture.live


def test_a_window_from_mid_capture_restates_the_state_then_replays_live_events(
    capture: Captured,
) -> None:
    records = capture.records()
    start = records[len(records) // 2].recv_ns
    out, counts = steps(capture.opener(), ReplayOptions(speed=None, start_ns=start))
    state = out[0]
    assert state.records == 0 and state.events
    assert all(e.ts_ns == start for e in state.events)
    assert all(e.snapshot for e in state.events if isinstance(e, BookUpdate))
    # After the restated state, exactly what live ingest produced from that record on.
    first = next(i for i, r in enumerate(records) if r.recv_ns >= start)
    expected = [e for per_record in capture.live_by_record[first:] for e in per_record]
    assert wire(events_of(out[1:])) == wire(expected)
    assert counts.warmup_records == first
    assert counts.records == len(records) - first
    # The restated books are the adapters' books at that point, per venue and symbol.
    books = {(e.venue, e.symbol) for e in state.events if isinstance(e, BookUpdate)}
    assert {v for v, _ in books} == {"cbx", "fxa", "itx"}


def test_without_warmup_the_window_is_read_by_seeking(capture: Captured) -> None:
    records = capture.records()
    start, end = records[700].recv_ns, records[900].recv_ns
    out, counts = steps(
        capture.opener(), ReplayOptions(speed=None, start_ns=start, end_ns=end, warmup=False)
    )
    assert counts.warmup_records == 0
    assert counts.records == sum(1 for r in records if start <= r.recv_ns <= end)
    assert out[0].records == 1  # no restated state


def test_venue_and_symbol_filters(capture: Captured) -> None:
    out, counts = steps(
        capture.opener(),
        ReplayOptions(speed=None, venues=frozenset({"itx"}), symbols=frozenset({"ETH-USD"})),
    )
    events = events_of(out)
    assert events and {(e.venue, e.symbol) for e in events} == {("itx", "ETH-USD")}
    assert set(counts.venues) == {"itx"}
    itx_live = [e for e in capture.live if e.venue == "itx" and e.symbol == "ETH-USD"]
    assert wire(events) == wire(itx_live)
    assert counts.filtered_events > 0


def test_several_captures_merge_by_receive_time() -> None:
    a = make_capture(venues=("cbx",), arrivals=300, seed=1)
    b = make_capture(venues=("itx",), arrivals=300, seed=2)
    merged = list(merge_records([iter(a.records()), iter(b.records())]))
    assert len(merged) == 600
    assert [r.recv_ns for r in merged] == sorted(r.recv_ns for r in merged)
    out, _ = steps(opener(a.data, b.data), ReplayOptions(speed=None))
    events = events_of(out)
    assert [e for e in events if e.venue == "cbx"] == a.live
    assert [e for e in events if e.venue == "itx"] == b.live


RECORDS = [Record(1000 + 10 * i, RecordKind.RAW, "cbx" if i % 3 else "fxa", b"m%03d" % i)
           for i in range(300)]  # fmt: skip


@given(
    st.floats(0, 0.2), st.floats(0, 0.2), st.floats(0, 0.2), st.floats(0, 0.2),
    st.integers(0, 1000),
)  # fmt: skip
def test_faults_are_seeded_counted_and_keep_time_order(
    drop: float, duplicate: float, reorder: float, corrupt: float, seed: int
) -> None:
    plan = ReplayFaults(drop, duplicate, reorder, corrupt)
    runs = []
    for _ in range(2):
        faults = RecordFaults(plan, random.Random(seed))
        runs.append((list(faults.apply(RECORDS)), dict(faults.injected)))
    (out, injected), (again, _) = runs
    assert out == again  # the same seed, the same faults
    assert [r.recv_ns for r in out] == sorted(r.recv_ns for r in out)
    assert len(out) == len(RECORDS) - injected["drop"] + injected["duplicate"]
    assert sum(r.payload not in {x.payload for x in RECORDS} for r in out) <= injected["corrupt"]
    per_venue_order = [r.payload for r in out if r.venue == "cbx"]
    if injected["reorder"] == 0 and injected["drop"] == 0 and injected["duplicate"] == 0:
        assert (
            per_venue_order == [r.payload for r in RECORDS if r.venue == "cbx"]
            or injected["corrupt"]
        )


def test_reorder_swaps_a_record_with_the_next_of_its_own_venue() -> None:
    faults = RecordFaults(ReplayFaults(reorder=1.0), random.Random(1))
    records = [Record(1, RecordKind.RAW, "cbx", b"a"), Record(2, RecordKind.RAW, "fxa", b"x"),
               Record(3, RecordKind.RAW, "cbx", b"b")]  # fmt: skip
    out = list(faults.apply(records))
    # a waits for b (its venue's next); x, held too, has no successor and comes last.
    assert [r.payload for r in out] == [b"b", b"a", b"x"]
    assert [r.recv_ns for r in out] == [3, 3, 3]


def test_disconnect_markers_are_never_faulted() -> None:
    marker = Record(5, RecordKind.DISCONNECT, "cbx", b"")
    faults = RecordFaults(ReplayFaults(drop=1.0), random.Random(0))
    assert list(faults.apply([marker])) == [marker]


def test_fault_rates_are_checked() -> None:
    with pytest.raises(ValueError):
        ReplayFaults(drop=0.7, corrupt=0.7)
    with pytest.raises(ValueError):
        ReplayFaults(reorder=-0.1)


def test_faults_in_a_replay_make_the_adapters_see_gaps(capture: Captured) -> None:
    options = ReplayOptions(speed=None, faults=ReplayFaults(drop=0.02), seed=5)
    _, counts = steps(capture.opener(), options)
    clean = steps(capture.opener(), ReplayOptions(speed=None))[1]
    assert counts.faults["drop"] > 0
    assert sum(c.gaps for c in counts.venues.values()) > sum(c.gaps for c in clean.venues.values())
    # The same seed and loop, the same replay; another loop, other faults.
    assert dataclasses.asdict(steps(capture.opener(), options)[1]) == dataclasses.asdict(counts)
    other = steps(capture.opener(), options, loop=1)[1]
    assert other.faults != counts.faults or other.venues != counts.venues


def test_pacer_divides_gaps_by_speed_and_caps_quiet_periods() -> None:
    pacer = Pacer(2.0, max_sleep_s=1.0)
    s = 1_000_000_000
    dues = [pacer.due_s(t) for t in (5 * s, 6 * s, 6 * s, 16 * s, 17 * s)]
    assert dues == [0.0, 0.5, 0.5, 1.5, 2.0]
    assert Pacer(None).due_s(10 * s) == 0.0
    with pytest.raises(ValueError):
        Pacer(0)


def test_steps_carry_due_times_at_the_recorded_pace(capture: Captured) -> None:
    records = capture.records()
    out, _ = steps(capture.opener(), ReplayOptions(speed=4.0))
    span_s = (records[-1].recv_ns - records[0].recv_ns) / 1e9
    assert out[-1].due_s == pytest.approx(span_s / 4.0)
    assert [s.due_s for s in out] == sorted(s.due_s for s in out)
