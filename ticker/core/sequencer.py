"""The sequencer: the single writer of the hub's stream.

It assigns every published message its position (epoch, offset) and its per-topic
sequence, keeps the current state of every topic, turns new values into deltas against
the last published state, and publishes keyframes (whole-state snapshots) as a topic's
first message (seq 1), on demand, and every `keyframe_interval` updates of a topic.
Book snapshots, and book deltas at every `CHECKSUM_EVERY`th seq, carry the book's
checksum (`ticker.core.checksum`). It
can hand out a snapshot of any topic consistent with the current position, follows
another sequencer's stream (`apply`, `restore`), and keeps a journal of what it
published since `begin` so its user can repair a failure midway. Book state holds exact
sums; what is published saturates (`ticker.core.delta`). Pure and synchronous: it never
encodes, never reads a clock (`now_us` comes in) and never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ticker.core.checksum import CHECKSUM_EVERY, CHECKSUM_KEY, book_checksum
from ticker.core.delta import (
    Fields,
    Levels,
    add_to_levels,
    apply_levels,
    book_data,
)
from ticker.core.messages import DataMessage
from ticker.core.position import Position
from ticker.core.topics import ChannelKind, channel_kind
from ticker.errors import ConfigError
from ticker.model.fixed import saturate

_new_message: Callable[[type[DataMessage], tuple[bool, str, int, int, int, Fields]], DataMessage]
_new_message = tuple.__new__
"""`DataMessage(...)` without the NamedTuple's Python-level `__new__` (one frame and one
tuple fewer per message); the caller passes the six fields in their order."""


class _TopicState:
    """One topic's published state. Book topics use `bids`/`asks`, others `fields`."""

    __slots__ = ("asks", "bids", "fields", "kind", "offset", "seq", "since_keyframe", "ts_us")

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self.seq = 0
        # The stream offset and time of the topic's last message (the one at `seq`):
        # a snapshot carries them, so a client can tell when the topic last changed.
        self.offset = 0
        self.ts_us = 0
        self.since_keyframe = 0
        self.fields: Fields = {}
        self.bids: Levels = {}
        self.asks: Levels = {}

    def data(self) -> Fields:
        if self.kind is ChannelKind.BOOK:
            return book_data(self.bids, self.asks)
        return dict(self.fields)

    def message_data(self) -> Fields:
        """`data()` as a snapshot message carries it: a book's with its checksum."""
        data = self.data()
        if self.kind is ChannelKind.BOOK:
            data[CHECKSUM_KEY] = book_checksum(self.bids, self.asks)
        return data


class StreamBroken(Exception):
    """A followed stream does not continue the state held (an offset or seq skipped)."""


def _load(state: _TopicState, data: Fields) -> None:
    """Replace a topic's state with a snapshot's data."""
    if state.kind is ChannelKind.BOOK:
        state.bids = {price: size for price, size in data.get("bids", ()) if size}
        state.asks = {price: size for price, size in data.get("asks", ()) if size}
    else:
        state.fields = dict(data)
    state.since_keyframe = 0


def _merge(state: _TopicState, data: Fields) -> None:
    """Apply a delta's data to a topic's state."""
    if state.kind is ChannelKind.BOOK:
        apply_levels(state.bids, data.get("bids", ()))
        apply_levels(state.asks, data.get("asks", ()))
    elif state.kind is ChannelKind.LATEST:
        state.fields.update(data)
    else:
        state.fields = dict(data)


class Sequencer:
    """Positions, per-topic sequences, topic state and delta computation.

    Args:
        epoch: this stream's epoch; a new one whenever history was lost.
        keyframe_interval: publish a whole-state snapshot instead of a delta after this
            many deltas of one topic, so a reader can join mid-stream from the log.
    """

    def __init__(self, epoch: int, keyframe_interval: int = 100) -> None:
        if epoch < 0:
            raise ConfigError("epoch must be >= 0")
        if keyframe_interval < 1:
            raise ConfigError("keyframe_interval must be >= 1")
        self.epoch = epoch
        self.keyframe_interval = keyframe_interval
        self._offset = 0
        self._topics: dict[str, _TopicState] = {}
        self._journal: list[DataMessage] | None = None

    @property
    def position(self) -> Position:
        """The position of the last published message (offset 0: nothing yet)."""
        return Position(self.epoch, self._offset)

    def begin(self) -> None:
        """Start a new journal: `issued` lists what is published from now on.

        Nothing is journaled until the first `begin`, so a user that never repairs
        (a test, a benchmark) keeps nothing.
        """
        if self._journal is None:
            self._journal = []
        else:
            self._journal.clear()

    @property
    def issued(self) -> list[DataMessage]:
        """Every message published since the last `begin`, in offset order."""
        return list(self._journal or ())

    def topics(self) -> Iterator[str]:
        """Every topic that has state, in first-published order."""
        return iter(self._topics)

    def set_fields(
        self, topic: str, fields: Fields, now_us: int, like: DataMessage | None = None
    ) -> DataMessage | None:
        """Publish the new whole value of a latest-value topic, as a delta of what changed.

        The topic's first message is a snapshot of the whole value. Returns None when
        nothing changed (no message is published). With `like` (a message just
        published from the same input, e.g. the composite quote of a venue's quote),
        a delta equal to its data shares that dict instead of holding a copy: the
        replay buffer keeps every message, and a venue's data often equals the
        composite's.
        """
        state = self._topics.get(topic) or self._state(topic, ChannelKind.LATEST)
        old = state.fields
        get = old.get
        # `diff_fields`, inlined: this runs for every quote and every trade.
        delta = {name: value for name, value in fields.items() if get(name) != value}
        if not delta:
            return None
        old.update(delta)
        if like is not None and not like[0] and like[5] == delta:
            delta = like[5]  # never changed once published: sharing it is safe
        return self._publish(topic, state, delta, now_us)

    def add_to_levels(
        self,
        topic: str,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        now_us: int,
        like: DataMessage | None = None,
    ) -> DataMessage | None:
        """Add size increments to book levels and publish the new absolute sizes.

        Each (price, increment) moves that level's size; a level that reaches 0 is
        removed and published with size 0. The topic's first message is a snapshot of
        the whole book. Sizes are published saturated at MAX_NANOS. Returns None when no
        published level changed. With `like` (a book message just published from the
        same increments: the composite of a venue's book), data equal to its data
        shares its objects rather than holding copies (see `set_fields`).
        """
        state = self._topics.get(topic) or self._state(topic, ChannelKind.BOOK)
        changed_bids = add_to_levels(state.bids, bids) if bids else []
        changed_asks = add_to_levels(state.asks, asks) if asks else []
        if not changed_bids and not changed_asks:
            return None
        # `_publish`, inlined for books: one message per book event and topic, and a
        # delta with or without a checksum, shared with `like` where equal.
        seq = state.seq = state.seq + 1
        offset = self._offset = self._offset + 1
        state.offset, state.ts_us = offset, now_us
        since = state.since_keyframe = state.since_keyframe + 1
        if seq == 1 or since >= self.keyframe_interval:
            state.since_keyframe = 0
            message = _new_message(
                DataMessage, (True, topic, seq, offset, now_us, state.message_data())
            )
        else:
            data: Fields | None = None
            if like is not None and not like[0]:
                shared = like[5]
                if changed_bids == shared["bids"] and changed_asks == shared["asks"]:
                    changed_bids, changed_asks = shared["bids"], shared["asks"]
                    if seq % CHECKSUM_EVERY:
                        if CHECKSUM_KEY not in shared:
                            data = shared
                    elif (
                        CHECKSUM_KEY in shared
                        and (other := self._topics.get(like[1])) is not None
                        and other.seq == like[2]  # `like` is still that book's last message
                        and other.bids == state.bids
                        and other.asks == state.asks
                    ):
                        data = shared  # equal books, equal checksums: one computed, not two
            if data is None:
                data = {"bids": changed_bids, "asks": changed_asks}
                if not seq % CHECKSUM_EVERY:
                    # A checksum costs ~10x the encoding of a small delta: every tenth only.
                    data[CHECKSUM_KEY] = book_checksum(state.bids, state.asks)
            message = _new_message(DataMessage, (False, topic, seq, offset, now_us, data))
        if self._journal is not None:
            self._journal.append(message)
        return message

    def add_event(self, topic: str, fields: Fields, now_us: int) -> DataMessage:
        """Publish one event of an event topic (a trade); it becomes the topic's state.

        The topic's first event goes out as a snapshot (it is the whole state), the
        others as deltas (no periodic keyframes: every event carries the whole state).
        """
        state = self._topics.get(topic) or self._state(topic, ChannelKind.EVENT)
        state.fields = fields
        seq = state.seq = state.seq + 1
        offset = self._offset = self._offset + 1
        state.offset, state.ts_us = offset, now_us
        message = _new_message(DataMessage, (seq == 1, topic, seq, offset, now_us, fields))
        if self._journal is not None:
            self._journal.append(message)
        return message

    def keyframe(self, topic: str, now_us: int) -> DataMessage:
        """Publish the whole state of `topic` now, as the topic's next sequence.

        Raises:
            KeyError: the topic has no state yet.
        """
        state = self._topics[topic]
        self._advance(state, now_us)
        state.since_keyframe = 0
        return self._journaled(
            DataMessage(True, topic, state.seq, self._offset, now_us, state.message_data())
        )

    def empty_topic(self, topic: str, now_us: int, spent: DataMessage | None = None) -> DataMessage:
        """Forget `topic`'s state and publish it empty, as a keyframe.

        How a failure is repaired without a hole: with `spent` (a message of `topic`
        this sequencer published but that could not be sent), the keyframe takes its
        seq and offset; without, it is the topic's next message. A subscriber applying
        it holds the same (empty) state as the sequencer.

        Raises:
            BadTopic: the topic's channel is unknown.
        """
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _TopicState(channel_kind(topic))
        state.fields = {}
        state.bids = {}
        state.asks = {}
        state.since_keyframe = 0
        if spent is not None:
            state.offset, state.ts_us = spent.offset, now_us
            return DataMessage(True, topic, spent.seq, spent.offset, now_us, state.message_data())
        self._advance(state, now_us)
        return self._journaled(
            DataMessage(True, topic, state.seq, self._offset, now_us, state.message_data())
        )

    def snapshot(self, topic: str) -> DataMessage:
        """The whole state of `topic`, consistent with the current position; not published.

        Its `seq`, `offset` and `ts_us` are those of the topic's last message: the state
        is exactly what that message left, and it still holds at the current position
        (no later message of the topic exists). Apply every later message of the topic
        (seq > snapshot.seq) to it to follow the stream. A topic with no state yet has
        seq 0, offset 0, ts 0 and empty data. A book's data here is its state, without
        the checksum a snapshot message carries (`snapshot_message`).

        Raises:
            BadTopic: the topic's channel is unknown.
        """
        state = self._topics.get(topic)
        if state is None:
            kind = channel_kind(topic)
            empty: dict[str, Any] = book_data({}, {}) if kind is ChannelKind.BOOK else {}
            return DataMessage(True, topic, 0, 0, 0, empty)
        return DataMessage(True, topic, state.seq, state.offset, state.ts_us, state.data())

    def snapshot_message(self, topic: str) -> DataMessage:
        """`snapshot` as it goes to a client: a book's data with its checksum.

        Raises:
            BadTopic: the topic's channel is unknown.
        """
        state = self._topics.get(topic)
        if state is None:
            return self.snapshot(topic)
        return DataMessage(True, topic, state.seq, state.offset, state.ts_us, state.message_data())

    def replace_levels(
        self, topic: str, bids: Levels, asks: Levels, now_us: int
    ) -> DataMessage | None:
        """Publish whatever makes the book `topic` exactly `bids`/`asks` (absolute sizes).

        A hub that took over from another rebuilds its per-venue books from the venues'
        snapshots; the first composite it computes replaces the book it inherited from
        the log, as one ordinary delta (levels it no longer has go out with size 0).
        Returns None when the book is already equal.
        """
        state = self._state(topic, ChannelKind.BOOK)
        changes: dict[str, list[list[int]]] = {}
        for name, old, new in (("bids", state.bids, bids), ("asks", state.asks, asks)):
            changed = [
                [price, saturate(size)]
                for price, size in new.items()
                if size and saturate(old.get(price, 0)) != saturate(size)
            ]
            changed += [[price, 0] for price in old if not new.get(price)]
            changes[name] = changed
        if not changes["bids"] and not changes["asks"]:
            return None
        state.bids = {price: size for price, size in bids.items() if size}
        state.asks = {price: size for price, size in asks.items() if size}
        return self._publish(topic, state, changes, now_us)

    def state(self, topic: str) -> Fields:
        """The published whole state of `topic` (empty when it has none)."""
        state = self._topics.get(topic)
        return state.data() if state is not None else {}

    # -- following another sequencer's stream (edges, a standby hub) ------------------

    def apply(self, message: DataMessage) -> None:
        """Apply one message of another sequencer's stream, as that sequencer had it.

        The follower's state, offsets and sequences then equal the writer's, so it can
        hand out the same snapshots and, once it leads, continue the same stream.

        Raises:
            StreamBroken: the message is not the next offset, or a delta does not follow
                its topic's sequence (the caller must rebuild from a checkpoint).
        """
        if message.offset != self._offset + 1:
            raise StreamBroken(f"expected offset {self._offset + 1}, got {message.offset}")
        state = self._topics.get(message.topic)
        if state is None:
            state = self._topics[message.topic] = _TopicState(channel_kind(message.topic))
        if message.snapshot:
            _load(state, message.data)
        elif message.seq != state.seq + 1:
            raise StreamBroken(f"{message.topic}: expected seq {state.seq + 1}, got {message.seq}")
        else:
            _merge(state, message.data)
            state.since_keyframe += 1
        state.seq = message.seq
        state.offset, state.ts_us = message.offset, message.ts_us
        self._offset = message.offset

    def restore(self, offset: int, snapshots: list[DataMessage]) -> None:
        """Start from a checkpoint: every topic's whole state at stream `offset`.

        Raises:
            StreamBroken: this sequencer has already published or applied something.
        """
        if self._offset or self._topics:
            raise StreamBroken("restore needs an empty sequencer")
        for message in snapshots:
            state = self._topics[message.topic] = _TopicState(channel_kind(message.topic))
            _load(state, message.data)
            state.seq = message.seq
            # A checkpoint written before snapshots carried their topic's own offset
            # has the checkpoint's offset and time here: later, but never wrong to apply.
            state.offset, state.ts_us = message.offset, message.ts_us
        self._offset = offset

    def _state(self, topic: str, kind: ChannelKind) -> _TopicState:
        state = self._topics.get(topic)
        if state is None:
            if channel_kind(topic) is not kind:
                raise ValueError(f"{topic} is not a {kind.value} topic")
            state = self._topics[topic] = _TopicState(kind)
        return state

    def _advance(self, state: _TopicState, now_us: int) -> None:
        """Take the next offset for the topic's next message."""
        state.seq += 1
        self._offset += 1
        state.offset, state.ts_us = self._offset, now_us

    def _publish(self, topic: str, state: _TopicState, delta: Fields, now_us: int) -> DataMessage:
        # `_advance` and `_journaled`, inlined: this runs once per published update.
        seq = state.seq = state.seq + 1
        offset = self._offset = self._offset + 1
        state.offset, state.ts_us = offset, now_us
        since = state.since_keyframe = state.since_keyframe + 1
        # Seq 1 is a snapshot: a client that subscribed before the topic existed holds
        # nothing for it, and a snapshot is the only message it may start from.
        if seq == 1 or since >= self.keyframe_interval:
            state.since_keyframe = 0
            message = _new_message(
                DataMessage, (True, topic, seq, offset, now_us, state.message_data())
            )
        else:
            if seq % CHECKSUM_EVERY == 0 and state.kind is ChannelKind.BOOK:
                # A checksum costs ~10x the encoding of a small delta: every tenth only.
                delta[CHECKSUM_KEY] = book_checksum(state.bids, state.asks)
            message = _new_message(DataMessage, (False, topic, seq, offset, now_us, delta))
        if self._journal is not None:
            self._journal.append(message)
        return message

    def _journaled(self, message: DataMessage) -> DataMessage:
        if self._journal is not None:
            self._journal.append(message)
        return message
