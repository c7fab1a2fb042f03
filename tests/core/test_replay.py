from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.position import Position
from ticker.core.replay import Replay, ReplayBuffer, Reset, ResetReason
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
