"""A connection's outbox: what waits to be written, bounded in bytes, and its policy.

`offer` never blocks and answers with a decision: queued, absorbed into a conflated
topic, or evict. On overflow, latest-value and book topics conflate: their queued
messages are dropped and the topic is marked, so the next `take` asks the shell for
one fresh snapshot of it (the newest state) instead; later messages of a marked topic
are absorbed, since that snapshot will include them. Event topics (trades) cannot
conflate: if the outbox is still over its bound the connection must be evicted. Bytes
queued for the connection elsewhere (snapshot bursts waiting in its backlog) are `held`
here and count against the same bound. Pure: the shell owns sockets, timers and snapshots.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ticker.errors import ConfigError


class Item(Protocol):
    """What an outbox holds: an encoded message (see `ticker.core.hub.Published`)."""

    @property
    def topic(self) -> str: ...
    @property
    def conflatable(self) -> bool: ...
    @property
    def size(self) -> int: ...


T = TypeVar("T", bound=Item)


class Offer(enum.Enum):
    """The outcome of offering one message to an outbox."""

    QUEUED = "queued"
    CONFLATED = "conflated"
    """The message's topic is (now) conflated; a snapshot replaces its deltas."""
    EVICT = "evict"
    """The outbox cannot take it even after conflating: evict the connection."""


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Everything to write now: queued items in order, then topics to snapshot."""

    items: list[T]
    snapshot_topics: list[str]


class Outbox(Generic[T]):
    """A byte-bounded queue with conflation for one connection.

    Args:
        max_bytes: the most bytes of queued messages held; beyond it, conflate, then evict.
    """

    __slots__ = ("_conflated", "_items", "bytes", "conflations", "held", "max_bytes", "waiting")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ConfigError("outbox max_bytes must be >= 1")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.held = 0
        """Bytes queued for the connection outside this outbox (snapshot bursts)."""
        self.conflations = 0
        self._items: list[T] = []  # a list: an empty deque costs 624 bytes per connection
        self._conflated: dict[str, None] = {}  # insertion-ordered set
        self.waiting = False
        """Whether anything waits (queued items or conflated topics): kept up to date by
        every change, so the fanout's per-connection check is one attribute read rather
        than a call of `__bool__` (a tenth of a microsecond, per connection and write)."""

    def __bool__(self) -> bool:
        return self.waiting

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> Offer:
        """Queue `item`, conflate, or tell the caller to evict. Never blocks."""
        if self._conflated and item.topic in self._conflated:
            return Offer.CONFLATED
        size = item.size
        if self.bytes + self.held + size > self.max_bytes:
            self._conflate()
            if item.conflatable:
                self._conflated[item.topic] = None
                self.waiting = True
                return Offer.CONFLATED
            if self.bytes + self.held + size > self.max_bytes:
                return Offer.EVICT
        self._items.append(item)
        self.bytes += size
        self.waiting = True
        return Offer.QUEUED

    def offer_all(self, items: list[T]) -> tuple[Offer, int]:
        """Offer `items` in order: EVICT at the first that cannot be taken (the rest are
        not offered), else QUEUED; and how many were conflated. Never blocks."""
        if not self._conflated:
            size = sum(item.size for item in items)
            if self.bytes + self.held + size <= self.max_bytes:
                self._items += items
                self.bytes += size
                self.waiting = bool(self._items)
                return Offer.QUEUED, 0
        conflated = 0
        for item in items:
            result = self.offer(item)
            if result is Offer.EVICT:
                return Offer.EVICT, conflated
            if result is Offer.CONFLATED:
                conflated += 1
        return Offer.QUEUED, conflated

    def conflate(self, topic: str) -> None:
        """Mark `topic` so its next write is one snapshot (rate-limited connections)."""
        self._conflated[topic] = None
        self.waiting = True

    def hold(self, size: int) -> bool:
        """Count `size` bytes queued for the connection elsewhere (a snapshot burst)
        against the bound, conflating what waits here if that makes room.

        With nothing waiting they always fit, whatever their size: one subscription's
        snapshots are never refused for their size alone. Behind other waiting bytes,
        they must fit within `max_bytes`.

        Returns:
            True if held; False (nothing held) if the connection is too far behind to
            take them: the caller evicts it, as for `Offer.EVICT`.
        """
        if self.bytes + self.held and self.bytes + self.held + size > self.max_bytes:
            self._conflate()
            if self.bytes + self.held and self.bytes + self.held + size > self.max_bytes:
                return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        """`size` held bytes were written (or dropped): they no longer count."""
        self.held -= size

    def take(self) -> Batch[T]:
        """Everything waiting, oldest first; the outbox is empty afterwards."""
        items, self._items = self._items, []
        topics = list(self._conflated)
        self._conflated.clear()
        self.bytes = 0
        self.waiting = False
        return Batch(items, topics)

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Drop what waits for topics for which `keep` is false (after an unsubscribe)."""
        kept = [item for item in self._items if keep(item.topic)]
        self._items = kept
        self.bytes = sum(item.size for item in kept)
        for topic in [t for t in self._conflated if not keep(t)]:
            del self._conflated[topic]
        self.waiting = bool(self._items) or bool(self._conflated)

    def _conflate(self) -> None:
        kept: list[T] = []
        freed = 0
        for item in self._items:
            if item.conflatable:
                self._conflated[item.topic] = None
                freed += item.size
            else:
                kept.append(item)
        if freed:
            self.conflations += 1
            self._items = kept
            self.bytes -= freed
