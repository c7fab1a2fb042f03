"""The client-side mirror of topic state: snapshots and deltas applied in order.

It holds, per topic, the state and the sequence it is at, and refuses a delta whose
per-topic sequence does not follow the state it holds (a gap or a repeat), or after
which the book fails the message's checksum (the book diverged: it is dropped), so a
client can prove it missed nothing. The refusal is a value the caller acts on (resume or
re-snapshot). Pure; used by the client SDK and by the tests that check the sequencer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ticker.core.checksum import CHECKSUM_KEY, book_checksum
from ticker.core.delta import Fields, Levels, apply_levels, book_data
from ticker.core.messages import DataMessage
from ticker.core.topics import ChannelKind, channel_kind


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


class _Held:
    __slots__ = ("asks", "bids", "fields", "kind", "seq")

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self.seq = 0
        self.fields: Fields = {}
        self.bids: Levels = {}
        self.asks: Levels = {}


class Mirror:
    """The state of every topic a client follows.

    `snapshot_checksum_mismatches` counts book snapshots whose checksum is not the
    book's: a re-snapshot would bring the same, so the snapshot is kept (the server's
    checksum and this one disagree, not the books).
    """

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self.snapshot_checksum_mismatches = 0

    def __contains__(self, topic: str) -> bool:
        return topic in self._held

    def topics(self) -> list[str]:
        """Topics whose state is held."""
        return list(self._held)

    def seq(self, topic: str) -> int:
        """The sequence the topic is at (0 when not held)."""
        held = self._held.get(topic)
        return held.seq if held else 0

    def apply(self, message: DataMessage) -> Applied | Refused:
        """Apply a snapshot (always accepted unless older) or the next delta of a topic.

        A delta of a topic not held is refused (`no_snapshot`), whatever its seq. A book
        delta carrying a `checksum` the book then fails is refused (`checksum`) and the
        topic is dropped: what it held had diverged.
        """
        held = self._held.get(message.topic)
        if message.snapshot:
            if held is not None and message.seq < held.seq:
                return Refused(RefusalReason.STALE, held.seq)
            # A fresh state merged with the snapshot's data is exactly that data.
            held = self._held[message.topic] = _Held(channel_kind(message.topic))
            self._merge(held, message.data)
        else:
            if held is None:
                # A topic's first message (seq 1) is a snapshot, so even a topic born
                # after subscribing starts from one: a delta alone is never enough.
                return Refused(RefusalReason.NO_SNAPSHOT, 0)
            if message.seq <= held.seq:
                return Refused(RefusalReason.STALE, held.seq)
            if message.seq != held.seq + 1:
                return Refused(RefusalReason.GAP, held.seq)
            self._merge(held, message.data)
            if not _checksum_holds(held, message.data):
                del self._held[message.topic]
                return Refused(RefusalReason.CHECKSUM, 0)
        held.seq = message.seq
        if message.snapshot and not _checksum_holds(held, message.data):
            self.snapshot_checksum_mismatches += 1
        return Applied(message.seq)

    def forget(self, topic: str) -> None:
        """Drop a topic's state (after unsubscribing, or before a re-snapshot)."""
        self._held.pop(topic, None)

    def data(self, topic: str) -> dict[str, Any]:
        """The topic's whole state in the same form as a snapshot's data.

        Raises:
            KeyError: the topic is not held.
        """
        held = self._held[topic]
        if held.kind is ChannelKind.BOOK:
            return book_data(held.bids, held.asks)
        return dict(held.fields)

    @staticmethod
    def _merge(held: _Held, data: dict[str, Any]) -> None:
        if held.kind is ChannelKind.BOOK:
            apply_levels(held.bids, data.get("bids", ()))
            apply_levels(held.asks, data.get("asks", ()))
        elif held.kind is ChannelKind.LATEST:
            held.fields.update(data)
        else:
            held.fields = dict(data)


def _checksum_holds(held: _Held, data: dict[str, Any]) -> bool:
    """Whether a book matches the checksum its message carries (true when none is)."""
    expected = data.get(CHECKSUM_KEY) if held.kind is ChannelKind.BOOK else None
    return expected is None or expected == book_checksum(held.bids, held.asks)
