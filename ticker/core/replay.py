"""The replay buffer: the most recent published messages, bounded by count and bytes.

Offsets in the buffer are contiguous, so finding one is an index computation (O(1)).
A resume position is answered with a decision: `Replay(entries)` (everything after it,
possibly nothing; a view, O(1) to make) or `Reset(reason)` when the position is too old,
from another epoch, or ahead of the stream. Never a silent hole. A `ReplayRun` walks a
replay a bounded slice per call. Pure: it stores what it is given and decides; it does
not encode, filter topics or send.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

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
    """Every entry after the requested position, oldest first (may be empty).

    From `ReplayBuffer.since`, `entries` is a `ReplayRange`: a view that reads the buffer
    and stays valid until the buffer evicts what it covers.
    """

    entries: Sequence[T]


@dataclass(frozen=True, slots=True)
class Reset:
    """The position cannot be served: send a reset and fresh snapshots."""

    reason: ResetReason


class ReplayBuffer(Generic[T]):
    """A ring of the last published entries of one epoch.

    Args:
        epoch: the stream's epoch.
        max_entries: keep at most this many entries.
        max_bytes: keep at most this many bytes, as reported by `append`'s `size` and
            `grew` (checked at each append).
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
        # Machine integers, not int objects: a list would keep one more object alive
        # per entry held (each size is past the small ints Python shares).
        self._sizes = array("q", bytes(8 * max_entries))
        self._first = after + 1  # offset of the oldest entry held
        self._next = after + 1  # offset the next append must carry
        self._bytes = 0

    def __len__(self) -> int:
        return self._next - self._first

    @property
    def bytes(self) -> int:
        """Bytes held, the sum of the sizes given to `append` and `grew` for the entries
        still held."""
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

    def grew(self, offset: int, size: int) -> None:
        """Count `size` more bytes for the entry at `offset` (something it holds was built
        after it was appended); nothing when the entry is no longer held.

        Evicts nothing itself: the next `append` brings the bytes back under
        `max_bytes`. Evicting here could drop the entries a replay is about to read,
        from inside that replay's own read.
        """
        if self._first <= offset < self._next:
            self._sizes[offset % self.max_entries] += size
            self._bytes += size

    def since(self, position: Position) -> Replay[T] | Reset:
        """Everything after `position`, or why that cannot be served."""
        if position.epoch != self.epoch:
            return Reset(ResetReason.OTHER_EPOCH)
        if position.offset > self.last_offset:
            return Reset(ResetReason.AHEAD)
        if position.offset < self._first - 1:
            return Reset(ResetReason.TOO_OLD)
        return Replay(ReplayRange(self, position.offset + 1, self._next))

    def get(self, offset: int) -> T | None:
        """The entry at `offset`, or None when it is not held."""
        if not self._first <= offset < self._next:
            return None
        return self._entries[offset % self.max_entries]

    def _evict_oldest(self) -> None:
        slot = self._first % self.max_entries
        self._entries[slot] = None
        self._bytes -= self._sizes[slot]
        self._sizes[slot] = 0
        self._first += 1


class ReplayRange(Sequence[T]):
    """The entries of offsets `start` to `stop - 1` of a buffer, read when asked for.

    Made in O(1) whatever its length: a resume from the oldest position copies nothing.
    It is valid while the buffer still holds those offsets; reading one the buffer has
    since evicted raises `LookupError` (`get` answers None instead).
    """

    __slots__ = ("_buffer", "start", "stop")

    def __init__(self, buffer: ReplayBuffer[T], start: int, stop: int) -> None:
        self._buffer = buffer
        self.start = start
        self.stop = max(start, stop)

    def __len__(self) -> int:
        return self.stop - self.start

    def get(self, offset: int) -> T | None:
        """The entry at `offset`, or None when it is outside the range or evicted."""
        if not self.start <= offset < self.stop:
            return None
        return self._buffer.get(offset)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offset = self.start + index if index >= 0 else self.stop + index
        if not self.start <= offset < self.stop:
            raise IndexError("replay range index out of range")
        # Inlined `ReplayBuffer.get`: a replay reads every entry through here.
        buffer = self._buffer
        if offset < buffer._first:
            raise LookupError(f"offset {offset} was evicted from the replay buffer")
        return buffer._entries[offset % buffer.max_entries]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[T]:
        for index in range(len(self)):
            yield self[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReplayRange):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them

    def __repr__(self) -> str:
        return f"ReplayRange(offsets {self.start}..{self.stop - 1})"


@dataclass(frozen=True, slots=True)
class Evicted:
    """The buffer dropped the next entry before a run reached it: the rest of the replay
    cannot be served (the reader fell a whole buffer behind)."""


class ReplayRun(Generic[T]):
    """A replay being written out a slice at a time: its range and how far it has got.

    Each `take` scans at most `max_scanned` entries and stops once the wanted ones reach
    `max_bytes`, so a resume from the oldest position of a full buffer costs its caller
    bounded work per call, however much the buffer holds.

    Args:
        entries: what `ReplayBuffer.since` answered (any sequence; a `ReplayRange`
            whose entries were evicted before the run reached them ends it).
    """

    __slots__ = ("_entries", "_next")

    def __init__(self, entries: Sequence[T]) -> None:
        self._entries = entries
        self._next = 0  # index of the next entry to scan

    @property
    def done(self) -> bool:
        """Every entry has been scanned."""
        return self._next >= len(self._entries)

    @property
    def scanned(self) -> int:
        """Entries scanned so far."""
        return self._next

    def take(
        self,
        wanted: Callable[[T], bool],
        size: Callable[[T], int],
        *,
        max_scanned: int,
        max_bytes: int,
    ) -> list[T] | Evicted:
        """The next wanted entries, oldest first; the run moves past every entry scanned.

        Args:
            wanted: whether an entry goes out (the rest are skipped).
            size: an entry's bytes, counted against `max_bytes`.
            max_scanned: scan at most this many entries (>= 1).
            max_bytes: stop after the entry that reaches this many bytes.

        Returns:
            The entries (possibly none, when none of those scanned was wanted), or
            `Evicted` when the next entry is no longer held.
        """
        entries = self._entries
        index = self._next
        stop = min(len(entries), index + max_scanned)
        budget = max_bytes
        taken: list[T] = []
        while index < stop and budget > 0:
            try:
                entry = entries[index]
            except LookupError:
                if taken:
                    break  # write what was read; the next take reports the eviction
                return Evicted()
            index += 1
            if wanted(entry):
                taken.append(entry)
                budget -= size(entry)
        self._next = index
        return taken
