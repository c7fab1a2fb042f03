from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.position import Position
from ticker.core.replay import (
    Evicted,
    Replay,
    ReplayBuffer,
    ReplayRange,
    ReplayRun,
    Reset,
    ResetReason,
)
from ticker.errors import ConfigError


def filled(count: int, *, max_entries: int = 10, max_bytes: int = 10_000) -> ReplayBuffer[int]:
    buffer: ReplayBuffer[int] = ReplayBuffer(7, max_entries, max_bytes)
    for offset in range(1, count + 1):
        buffer.append(offset, offset, 10)
    return buffer


def test_resume_inside_the_buffer_replays_exactly_what_follows() -> None:
    buffer = filled(25)
    assert buffer.first_offset == 16
    assert buffer.since(Position(7, 20)) == Replay([21, 22, 23, 24, 25])
    assert buffer.since(Position(7, 15)) == Replay(list(range(16, 26)))
    assert buffer.since(Position(7, 25)) == Replay([])


def test_positions_that_cannot_be_served_get_a_reason() -> None:
    buffer = filled(25)
    assert buffer.since(Position(7, 14)) == Reset(ResetReason.TOO_OLD)
    assert buffer.since(Position(8, 20)) == Reset(ResetReason.OTHER_EPOCH)
    assert buffer.since(Position(7, 26)) == Reset(ResetReason.AHEAD)


def test_empty_buffer_serves_position_zero_and_nothing_else() -> None:
    buffer = filled(0)
    assert buffer.since(Position(7, 0)) == Replay([])
    assert buffer.since(Position(7, 1)) == Reset(ResetReason.AHEAD)


def test_byte_bound_evicts_oldest_but_keeps_the_newest_entry() -> None:
    buffer: ReplayBuffer[str] = ReplayBuffer(1, 100, 25)
    for offset in range(1, 6):
        buffer.append(offset, f"m{offset}", 10)
    assert len(buffer) == 2
    assert buffer.bytes == 20
    buffer.append(6, "huge", 1000)
    assert len(buffer) == 1
    assert buffer.get(6) == "huge"
    assert buffer.get(5) is None


def test_append_out_of_order_is_a_bug() -> None:
    buffer = filled(3)
    with pytest.raises(ValueError, match="expected offset 4"):
        buffer.append(5, 5, 1)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        ReplayBuffer(1, 0, 10)


@given(
    max_entries=st.integers(1, 20),
    max_bytes=st.integers(1, 200),
    sizes=st.lists(st.integers(1, 60), max_size=80),
    resume_at=st.integers(0, 90),
)
def test_replay_never_skips_or_repeats_and_respects_both_bounds(
    max_entries: int, max_bytes: int, sizes: list[int], resume_at: int
) -> None:
    buffer: ReplayBuffer[int] = ReplayBuffer(3, max_entries, max_bytes)
    for offset, size in enumerate(sizes, start=1):
        buffer.append(offset, offset, size)
        assert len(buffer) <= max_entries
        # The byte bound holds unless a single entry alone is larger than it.
        assert buffer.bytes <= max_bytes or len(buffer) == 1
        assert buffer.last_offset == offset
    answer = buffer.since(Position(3, resume_at))
    last = len(sizes)
    if resume_at > last:
        assert answer == Reset(ResetReason.AHEAD)
    elif resume_at < buffer.first_offset - 1:
        assert answer == Reset(ResetReason.TOO_OLD)
    else:
        assert isinstance(answer, Replay)
        assert answer.entries == list(range(resume_at + 1, last + 1))


def test_a_replay_is_a_view_of_the_buffer_until_it_moves_on() -> None:
    buffer = filled(25)
    answer = buffer.since(Position(7, 15))
    assert isinstance(answer, Replay) and isinstance(answer.entries, ReplayRange)
    entries = answer.entries
    assert len(entries) == 10
    assert entries[0] == 16 and entries[-1] == 25 and entries[2:4] == [18, 19]
    with pytest.raises(IndexError):
        entries[10]
    buffer.append(26, 26, 10)  # evicts offset 16; the view does not see 26
    assert len(entries) == 10 and entries[1] == 17
    assert entries.get(16) is None and entries.get(17) == 17 and entries.get(26) is None
    with pytest.raises(LookupError, match="offset 16 was evicted"):
        list(entries)


def size_of(entry: int) -> int:
    return 10


def walk(run: ReplayRun[int], wanted: set[int], max_scanned: int, max_bytes: int) -> list[int]:
    out: list[int] = []
    while not run.done:
        before = run.scanned
        taken = run.take(wanted.__contains__, size_of, max_scanned=max_scanned, max_bytes=max_bytes)
        assert isinstance(taken, list)
        assert 0 < run.scanned - before <= max_scanned
        assert sum(size_of(e) for e in taken[:-1]) < max_bytes
        out += taken
    return out


def test_a_run_takes_at_most_max_scanned_entries_and_about_max_bytes() -> None:
    buffer = filled(100, max_entries=100)
    answer = buffer.since(Position(7, 0))
    assert isinstance(answer, Replay)
    run = ReplayRun(answer.entries)
    evens = set(range(2, 101, 2))
    assert run.take(evens.__contains__, size_of, max_scanned=7, max_bytes=1000) == [2, 4, 6]
    assert run.scanned == 7
    # The byte budget stops after the entry that reaches it.
    assert run.take(evens.__contains__, size_of, max_scanned=50, max_bytes=25) == [8, 10, 12]
    assert run.scanned == 12
    assert run.take(lambda e: False, size_of, max_scanned=30, max_bytes=10) == []
    assert run.scanned == 42
    assert walk(run, evens, 10, 1000) == list(range(44, 101, 2))
    assert run.done


def test_a_run_overtaken_by_eviction_says_so_after_what_it_could_read() -> None:
    buffer = filled(10, max_entries=10)
    answer = buffer.since(Position(7, 0))
    assert isinstance(answer, Replay)
    run = ReplayRun(answer.entries)
    assert run.take(bool, size_of, max_scanned=3, max_bytes=1000) == [1, 2, 3]
    for offset in range(11, 16):
        buffer.append(offset, offset, 10)  # evicts 1..5
    assert run.take(bool, size_of, max_scanned=3, max_bytes=1000) == Evicted()
    assert run.scanned == 3  # it does not move past what it could not read


@given(
    count=st.integers(0, 60),
    resume_at=st.integers(0, 60),
    wanted=st.sets(st.integers(1, 60)),
    max_scanned=st.integers(1, 12),
    max_bytes=st.integers(1, 80),
)
def test_a_run_walks_exactly_the_wanted_entries_in_order(
    count: int, resume_at: int, wanted: set[int], max_scanned: int, max_bytes: int
) -> None:
    buffer = filled(count, max_entries=64)
    answer = buffer.since(Position(7, resume_at))
    if resume_at > count:
        assert answer == Reset(ResetReason.AHEAD)
        return
    assert isinstance(answer, Replay)
    run = ReplayRun(answer.entries)
    expected = [o for o in range(resume_at + 1, count + 1) if o in wanted]
    assert walk(run, wanted, max_scanned, max_bytes) == expected
