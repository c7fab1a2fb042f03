"""The client-side mirror of topic state: snapshots and deltas applied in order.

It holds, per topic, the state and the sequence it is at, and refuses a delta whose
per-topic sequence does not follow the state it holds (a gap or a repeat), or after
which the book fails the message's checksum (the book diverged: it is dropped), so a
client can prove it missed nothing. The refusal is a value the caller acts on (resume or
re-snapshot). A book side (`BookSide`) is never changed once built (a delta builds a new
one), so what was handed out keeps the sides it saw, and a side sorts its levels at
most once. Pure; the client's tracker (its fast path reads `held`) and the tests that
check the sequencer use it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ticker.core.checksum import CHECKSUM_KEY, book_checksum
from ticker.core.delta import Fields, Levels, apply_levels
from ticker.core.messages import DataMessage
from ticker.core.topics import ChannelKind, channel_kind
from ticker.model.fixed import MAX_NANOS

BOOK = ChannelKind.BOOK
LATEST = ChannelKind.LATEST


class RefusalReason(enum.Enum):
    """Why a data message was not applied."""

    NO_SNAPSHOT = "no_snapshot"
    """A delta for a topic whose state we do not hold."""
    GAP = "gap"
    """The delta's sequence is past the next one: something was missed."""
    STALE = "stale"
    """The message's sequence is not after the state held (a repeat or an old one)."""
    CHECKSUM = "checksum"
    """After the delta, the book's checksum is not the one it carries: the book held
    had diverged from the server's, and is dropped (re-snapshot it)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The message was applied; the topic is now at `seq`."""

    seq: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The message was not applied; `held_seq` is where the topic still is (0: none)."""

    reason: RefusalReason
    held_seq: int


class BookSide:
    """One side of a book as held: `levels` (price -> size, sizes > 0), which nobody
    changes once the side is built, and the levels in book order, sorted when first
    asked for and then kept (a delta to the other side leaves this one shared).

    Args:
        levels: the side's levels; the caller gives up the dict.
        descending: bids (best = highest first) or asks (best = lowest first).
    """

    __slots__ = ("_ordered", "descending", "levels")

    def __init__(self, levels: Levels, descending: bool) -> None:
        self.levels = levels
        self.descending = descending
        self._ordered: tuple[tuple[int, int], ...] | None = None

    def with_levels(self, changes: Iterable[tuple[int, int] | list[int]]) -> BookSide:
        """A new side: these levels after absolute (price, size) changes, size 0 removes."""
        levels = dict(self.levels)
        apply_levels(levels, changes)
        return BookSide(levels, self.descending)

    def data(self) -> list[list[int]]:
        """The levels as a snapshot carries them: `[[price, size], ...]` best first, sizes
        saturated at MAX_NANOS (exactly `book_data`'s), in new lists on every call."""
        ordered = self._ordered
        if ordered is None:
            items = sorted(self.levels.items(), reverse=self.descending)  # prices are unique
            m = MAX_NANOS
            if items and max(self.levels.values()) >= m:
                items = [(price, size if size < m else m) for price, size in items]
            ordered = self._ordered = tuple(items)
        return [[price, size] for price, size in ordered]


class HeldTopic:
    """One topic's state. `bids` and `asks` are replaced, never changed, after they are
    set: what was handed out may still refer to them."""

    __slots__ = ("asks", "bids", "fields", "kind", "seq")

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self.seq = 0
        self.fields: Fields = {}
        self.bids = BookSide({}, descending=True)
        self.asks = BookSide({}, descending=False)


class Mirror:
    """The state of every topic a client follows.

    `snapshot_checksum_mismatches` counts book snapshots whose checksum is not the
    book's: a re-snapshot would bring the same, so the snapshot is kept (the server's
    checksum and this one disagree, not the books).
    """

    def __init__(self) -> None:
        self.held: dict[str, HeldTopic] = {}
        """Topic -> state; read by the client tracker's fast path, changed only here."""
        self.snapshot_checksum_mismatches = 0

    def __contains__(self, topic: str) -> bool:
        return topic in self.held

    def topics(self) -> list[str]:
        """Topics whose state is held."""
        return list(self.held)

    def seq(self, topic: str) -> int:
        """The sequence the topic is at (0 when not held)."""
        held = self.held.get(topic)
        return held.seq if held else 0

    def apply(self, message: DataMessage) -> Applied | Refused:
        """Apply a snapshot (always accepted unless older) or the next delta of a topic.

        Returns:
            `Applied`, or `Refused` with the reason: a delta of a topic not held
            (`no_snapshot`, whatever its seq), not after the seq held (`stale`), past
            the next one (`gap`), or after which the book fails the checksum it carries
            (`checksum`: the topic is dropped, what it held had diverged). A snapshot
            older than the state held is `stale`.
        """
        topic, seq, data = message.topic, message.seq, message.data
        held = self.held.get(topic)
        if message.snapshot:
            if held is not None and seq < held.seq:
                return Refused(RefusalReason.STALE, held.seq)
            # A fresh state merged with the snapshot's data is exactly that data.
            held = self.held[topic] = HeldTopic(channel_kind(topic))
            if held.kind is BOOK:
                bids = held.bids = held.bids.with_levels(data.get("bids", ()))
                asks = held.asks = held.asks.with_levels(data.get("asks", ()))
                expected = data.get(CHECKSUM_KEY)
                if expected is not None and expected != book_checksum(bids.levels, asks.levels):
                    self.snapshot_checksum_mismatches += 1
            else:
                held.fields = dict(data)
            held.seq = seq
            return Applied(seq)
        if held is None:
            # A topic's first message (seq 1) is a snapshot, so even a topic born
            # after subscribing starts from one: a delta alone is never enough.
            return Refused(RefusalReason.NO_SNAPSHOT, 0)
        if seq <= held.seq:
            return Refused(RefusalReason.STALE, held.seq)
        if seq != held.seq + 1:
            return Refused(RefusalReason.GAP, held.seq)
        if self.advance(topic, seq, data) is None:
            del self.held[topic]  # what it held had diverged
            return Refused(RefusalReason.CHECKSUM, 0)
        return Applied(seq)

    def advance(self, topic: str, seq: int, data: dict[str, Any]) -> HeldTopic | None:
        """Apply a topic's next delta (`seq` is the one after the state held), unless it
        is a book's and the book would then fail the checksum the delta carries.

        Returns:
            The topic's state after the delta; None, with nothing changed, when the
            topic is not held, `seq` is not the next one, or the checksum fails.
        """
        held = self.held.get(topic)
        if held is None or seq != held.seq + 1:
            return None
        kind = held.kind
        if kind is BOOK:
            # New sides, not changed ones: an update handed out may hold the old ones.
            bids = held.bids
            levels = data.get("bids", ())
            if levels:
                bids = bids.with_levels(levels)
            asks = held.asks
            levels = data.get("asks", ())
            if levels:
                asks = asks.with_levels(levels)
            expected = data.get(CHECKSUM_KEY)
            if expected is not None and expected != book_checksum(bids.levels, asks.levels):
                return None
            held.bids = bids
            held.asks = asks
        elif kind is LATEST:
            held.fields.update(data)
        else:
            held.fields = dict(data)
        held.seq = seq
        return held

    def forget(self, topic: str) -> None:
        """Drop a topic's state (after unsubscribing, or before a re-snapshot)."""
        self.held.pop(topic, None)

    def data(self, topic: str) -> dict[str, Any]:
        """The topic's whole state in the same form as a snapshot's data (a new dict).

        Raises:
            KeyError: the topic is not held.
        """
        held = self.held[topic]
        if held.kind is BOOK:
            return {"bids": held.bids.data(), "asks": held.asks.data()}
        return dict(held.fields)
