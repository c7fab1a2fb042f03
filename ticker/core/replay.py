"""The replay buffer: the most recent published messages, bounded by count and bytes.

Offsets in the buffer are contiguous, so finding one is an index computation (O(1)).
A resume position is answered with a decision: `Replay(entries)` (everything after it,
possibly nothing) or `Reset(reason)` when the position is too old, from another epoch,
or ahead of the stream. Never a silent hole. Pure: it stores what it is given and
decides; it does not encode, filter topics or send.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from ticker.core.position import Position
from ticker.errors import ConfigError

T = TypeVar("T")


class ResetReason(enum.Enum):
    """Why a resume position cannot be served from the buffer."""

    TOO_OLD = "too_old"
    OTHER_EPOCH = "other_epoch"
    AHEAD = "ahead"


@dataclass(frozen=True, slots=True)
class Replay(Generic[T]):
    """Every entry after the requested position, oldest first (may be empty)."""

    entries: list[T]


@dataclass(frozen=True, slots=True)
class Reset:
    """The position cannot be served: send a reset and fresh snapshots."""

    reason: ResetReason


class ReplayBuffer(Generic[T]):
    """A ring of the last published entries of one epoch.

    Args:
        epoch: the stream's epoch.
        max_entries: keep at most this many entries.
        max_bytes: keep at most this many bytes, as reported by `append`'s `size`.
        after: the offset the buffer starts after (a follower that starts from a
            checkpoint holds nothing up to it); the first append carries `after + 1`.
    """

    def __init__(self, epoch: int, max_entries: int, max_bytes: int, after: int = 0) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ConfigError("replay buffer bounds must be >= 1")
        self.epoch = epoch
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: list[T | None] = [None] * max_entries
        self._sizes: list[int] = [0] * max_entries
        self._first = after + 1  # offset of the oldest entry held
        self._next = after + 1  # offset the next append must carry
        self._bytes = 0

    def __len__(self) -> int:
        return self._next - self._first

    @property
    def bytes(self) -> int:
        """Bytes held, the sum of the sizes given to `append`."""
        return self._bytes

    @property
    def first_offset(self) -> int:
        """Offset of the oldest entry held (equals `last_offset + 1` when empty)."""
        return self._first

    @property
    def last_offset(self) -> int:
        """Offset of the newest entry appended (0 before the first)."""
        return self._next - 1

    def append(self, offset: int, entry: T, size: int) -> None:
        """Store the entry published at `offset`; evict the oldest past either bound.

        Raises:
            ValueError: `offset` is not the next one (the sequencer is the only writer,
                so a hole here is a bug, not an input).
        """
        if offset != self._next:
            raise ValueError(f"replay buffer expected offset {self._next}, got {offset}")
        if offset - self._first == self.max_entries:
            self._evict_oldest()
        slot = offset % self.max_entries
        self._entries[slot] = entry
        self._sizes[slot] = size
        self._bytes += size
        self._next = offset + 1
        while self._bytes > self.max_bytes and offset > self._first:
            self._evict_oldest()

    def since(self, position: Position) -> Replay[T] | Reset:
        """Everything after `position`, or why that cannot be served."""
        if position.epoch != self.epoch:
            return Reset(ResetReason.OTHER_EPOCH)
        if position.offset > self.last_offset:
            return Reset(ResetReason.AHEAD)
        if position.offset < self._first - 1:
            return Reset(ResetReason.TOO_OLD)
        return Replay(self._slice(position.offset + 1, self._next))

    def get(self, offset: int) -> T | None:
        """The entry at `offset`, or None when it is not held."""
        if not self._first <= offset < self._next:
            return None
        return self._entries[offset % self.max_entries]

    def _slice(self, start: int, stop: int) -> list[T]:
        if start >= stop:
            return []
        cap = self.max_entries
        lo, hi = start % cap, stop % cap
        entries = self._entries[lo:hi] if lo < hi else self._entries[lo:] + self._entries[:hi]
        return entries  # type: ignore[return-value]  # every slot in range is filled

    def _evict_oldest(self) -> None:
        slot = self._first % self.max_entries
        self._entries[slot] = None
        self._bytes -= self._sizes[slot]
        self._sizes[slot] = 0
        self._first += 1
