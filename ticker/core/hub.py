"""The hub: the single-writer stage from normalized events to encoded, buffered messages.

Consolidate, sequence, encode once, keep in the replay buffer: what comes out is ready
for fanout, and every subscriber of a message gets these same bytes. The other forms a
message goes out in (a WebSocket frame, a zstd frame, an SSE event) are built at most
once per message, on first use, and then shared. One event that fails midway is
repaired, never left as a hole in the offsets (`EventRejected`). Pure: the shell owns
clocks and tasks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

from ticker.config import Config
from ticker.core.codec import DELTA, SNAPSHOT, pack_array, render_json
from ticker.core.compression import FrameCompressor
from ticker.core.consolidate import Consolidator
from ticker.core.messages import DataMessage
from ticker.core.position import Position
from ticker.core.replay import Replay, ReplayBuffer, Reset
from ticker.core.sequencer import Sequencer, StreamBroken
from ticker.core.topics import CHANNELS, ChannelKind, channel_kind
from ticker.errors import TickerError
from ticker.model.events import NormalizedEvent
from ticker.wire.sse import encode_event
from ticker.wire.websocket import Opcode, encode_frame

CONFLATABLE = {name: kind is not ChannelKind.EVENT for name, kind in CHANNELS.items()}
"""Whether a channel's messages may be conflated, by channel name (venue channels are
added on first use)."""

HELD_BASE_BYTES: Final = 240
HELD_BYTES_PER_PAYLOAD_BYTE: Final = 7
"""What a buffered message holds in memory besides the forms built on first use: its
value (the `DataMessage` and its data), the object and its msgpack bytes, estimated as
`HELD_BASE_BYTES + HELD_BYTES_PER_PAYLOAD_BYTE * size`. Fitted with tracemalloc on the
three venues' streams (~700 bytes for a 66-byte message; the data grows with the
payload). This, not the payload alone, is what `replay_max_bytes` bounds."""


_CONFLATABLE_TOPICS: dict[str, bool] = {}
"""`CONFLATABLE` by topic, so a message looks its topic up once (no split per message)."""
_CONFLATABLE_TOPICS_MAX: Final = 65_536
"""Topics are bounded by symbols x channels x venues; this bounds the cache whatever a
followed stream names (cleared when full)."""


def _conflatable(topic: str) -> bool:
    """Whether messages of `topic` may be conflated, remembered for the next message."""
    channel = topic.partition(".")[0]
    conflatable = CONFLATABLE.get(channel)
    if conflatable is None:  # a venue channel (`book@cbx`): at most 2 per venue
        conflatable = CONFLATABLE[channel] = channel_kind(topic) is not ChannelKind.EVENT
    if len(_CONFLATABLE_TOPICS) >= _CONFLATABLE_TOPICS_MAX:
        _CONFLATABLE_TOPICS.clear()
    _CONFLATABLE_TOPICS[topic] = conflatable
    return conflatable


def held_bytes(size: int) -> int:
    """The memory estimated for a buffered message of `size` payload bytes (see above)."""
    return HELD_BASE_BYTES + HELD_BYTES_PER_PAYLOAD_BYTE * size


class EventRejected(TickerError):
    """One event could not be published as it is (a bug, or a value nothing foresaw).

    The hub stays consistent: every offset the event spent is filled, with the message
    if it encodes, else with an empty keyframe of its topic (the topic is emptied);
    and the other topics the event touched are emptied too, since their state may hold
    half of it. `published` is what went into the replay buffer: fan it out like any
    other. The original exception is the `__cause__`.
    """

    def __init__(self, reason: str, published: list[Published]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.published = published


class Published:
    """A message as it goes out: the value, its msgpack bytes, and its other forms.

    `topic`, `conflatable` and `size` are what an outbox needs, worked out once here
    rather than once per subscriber. Once in a replay buffer, each form built is counted
    against the buffer's byte bound: a long-lived entry holds its forms as long as it
    is held, up to four times its payload (JSON text and the SSE event the most).
    """

    __slots__ = (
        "_held",
        "_json",
        "_sse",
        "_ws",
        "_ws_zstd",
        "conflatable",
        "epoch",
        "message",
        "offset",
        "payload",
        "size",
        "topic",
    )

    _json: str | None
    _sse: bytes | None
    _ws: bytes | None
    _ws_zstd: bytes | None
    _held: ReplayBuffer[Published] | None

    def __init__(
        self,
        message: DataMessage,
        epoch: int,
        payload: bytes | None = None,
        held: ReplayBuffer[Published] | None = None,
    ) -> None:
        # One of these is built per published message: fields are read by index and the
        # msgpack array is built here (the layout of `encode_data`), not via more calls.
        # `held`: the replay buffer this is about to be appended to (see `_built`).
        self.message = message
        self.epoch = epoch
        topic = self.topic = message[1]
        offset = self.offset = message[3]
        if payload is None:  # a follower gets the writer's bytes: encoded once, cluster-wide
            payload = pack_array(
                [
                    SNAPSHOT if message[0] else DELTA,
                    topic,
                    message[2],
                    offset,
                    message[4],
                    message[5],
                ]
            )
        self.payload = payload
        self.size = len(payload)
        conflatable = _CONFLATABLE_TOPICS.get(topic)
        self.conflatable = _conflatable(topic) if conflatable is None else conflatable
        self._json = self._sse = self._ws = self._ws_zstd = None
        self._held = held

    def _built(self, form: bytes | str) -> None:
        """Count a form just built against the replay buffer holding this message."""
        if self._held is not None:
            self._held.grew(self.offset, sys.getsizeof(form))

    @property
    def json(self) -> str:
        """The JSON text SSE carries, rendered on first use and then shared."""
        if self._json is None:
            self._json = render_json(self.message)
            self._built(self._json)
        return self._json

    @property
    def sse(self) -> bytes:
        """The whole SSE event (`event:`, `id:`, `data:`), built once."""
        if self._sse is None:
            name = "snapshot" if self.message.snapshot else "delta"
            text = encode_event(name, self.json, f"{self.epoch}-{self.offset}")
            self._sse = text.encode("utf-8")
            self._built(self._sse)
        return self._sse

    @property
    def ws(self) -> bytes:
        """A ready binary WebSocket frame holding the msgpack bytes, built once."""
        if self._ws is None:
            self._ws = encode_frame(Opcode.BINARY, self.payload)
            self._built(self._ws)
        return self._ws

    def ws_zstd(self, compressor: FrameCompressor) -> bytes:
        """A ready WebSocket frame holding the zstd-compressed msgpack, built once."""
        if self._ws_zstd is None:
            self._ws_zstd = encode_frame(Opcode.BINARY, compressor.compress(self.payload))
            self._built(self._ws_zstd)
        return self._ws_zstd


class Hub:
    """Consolidator + sequencer + encoder + replay buffer, in that order.

    The same hub also follows another hub's stream (`apply`, `restore`): an edge or a
    standby holds exactly the writer's state, positions and bytes, and the fanout half
    of a server cannot tell which of the two fed it.
    """

    def __init__(self, config: Config, epoch: int) -> None:
        self._config = config
        self._start(epoch, 0)

    def _start(self, epoch: int, offset: int) -> None:
        config = self._config
        self.epoch = epoch
        self.sequencer = Sequencer(epoch, config.keyframe_interval)
        self.consolidator = Consolidator(self.sequencer, config.max_venues)
        self.replay: ReplayBuffer[Published] = ReplayBuffer(
            epoch, config.replay_max_messages, config.replay_max_bytes, after=offset
        )
        self._snapshots: dict[str, Published] = {}
        self._snapshots_offset = -1

    @property
    def position(self) -> Position:
        """Position of the last published message."""
        return self.sequencer.position

    def publish(self, event: NormalizedEvent, now_ns: int) -> list[Published]:
        """Consolidate and publish one normalized event; returns what went out.

        Atomic as seen from the stream: every message is encoded before any is
        buffered, and a failure midway is repaired before it is raised.

        Raises:
            EventRejected: the event failed midway (see there); its `published` went
                into the replay buffer and must be fanned out.
        """
        now_us = now_ns // 1000
        self.sequencer.begin()
        try:
            messages = self.consolidator.on_event(event, now_us)
            if not messages:
                return []
            epoch, replay = self.epoch, self.replay
            published = [Published(m, epoch, None, replay) for m in messages]
        except Exception as exc:
            repaired = self._repair(event, now_us)
            self._buffer(repaired)
            raise EventRejected(f"{type(exc).__name__}: {exc}", repaired) from exc
        # `_buffer`, inlined: this runs once per event.
        append = replay.append
        for item in published:
            append(item.offset, item, HELD_BASE_BYTES + HELD_BYTES_PER_PAYLOAD_BYTE * item.size)
        return published

    def keyframe(self, topic: str, now_ns: int) -> Published:
        """Publish a whole-state keyframe of `topic` into the stream now."""
        published = Published(self.sequencer.keyframe(topic, now_ns // 1000), self.epoch)
        self._buffer([published])
        return published

    def snapshot(self, topic: str) -> DataMessage:
        """The whole state of `topic` consistent with the current position (not published);
        its seq, offset and ts are those of the topic's last message."""
        return self.sequencer.snapshot(topic)

    def current_snapshot(self, topic: str) -> Published:
        """`snapshot` encoded, shared by every caller until the position moves on (a
        book's with its checksum, as every book snapshot a client gets).

        Many subscribers ask for the same snapshot at once (a burst of subscribes, or
        slow consumers conflating in the same round); they share one encoding.
        """
        offset = self.sequencer.position.offset
        if offset != self._snapshots_offset:
            self._snapshots.clear()
            self._snapshots_offset = offset
        published = self._snapshots.get(topic)
        if published is None:
            published = Published(self.sequencer.snapshot_message(topic), self.epoch)
            self._snapshots[topic] = published
        return published

    def topics(self) -> list[str]:
        """Every topic with state."""
        return list(self.sequencer.topics())

    def since(self, position: Position) -> Replay[Published] | Reset:
        """Messages after `position` from the replay buffer, or why not."""
        return self.replay.since(position)

    def apply(self, messages: list[tuple[DataMessage, bytes]]) -> list[Published]:
        """Follow the writer: apply its messages (with their encoded bytes) in order.

        Raises:
            StreamBroken: a message does not continue the stream held; nothing after it
                was applied (rebuild with `restore`).
        """
        published: list[Published] = []
        apply = self.sequencer.apply
        epoch = self.epoch
        for message, payload in messages:
            apply(message)
            item = Published(message, epoch, payload)
            self._buffer([item])  # each as it is applied: a break leaves no hole
            published.append(item)
        return published

    def restore(
        self,
        epoch: int,
        offset: int,
        snapshots: list[DataMessage],
        history: Sequence[tuple[DataMessage, bytes]] = (),
    ) -> None:
        """Start over from a checkpoint: every topic's state at (`epoch`, `offset`).

        `history` is the stream just before and up to `offset` (contiguous, oldest
        first), kept in the replay buffer so clients can resume from it; it is not
        applied (the snapshots already hold its effect). Clears everything held before.
        """
        first = history[0][0].offset - 1 if history else offset
        if history and history[-1][0].offset != offset:
            raise StreamBroken("history must end at the checkpoint's offset")
        self._start(epoch, first)
        self._buffer([Published(message, epoch, payload) for message, payload in history])
        self.sequencer.restore(offset, snapshots)

    def checkpoint(self) -> list[DataMessage]:
        """Every topic's whole state at the current position (what `restore` takes)."""
        return [self.sequencer.snapshot(topic) for topic in self.sequencer.topics()]

    def _buffer(self, published: list[Published]) -> None:
        replay = self.replay
        append = replay.append
        for item in published:
            item._held = replay
            append(item.offset, item, held_bytes(item.size))

    def _repair(self, event: NormalizedEvent, now_us: int) -> list[Published]:
        """After `event` failed midway: fill every offset it spent, and empty each topic
        it touched that did not get a message out (see `EventRejected`)."""
        sequencer, epoch = self.sequencer, self.epoch
        repaired: list[Published] = []
        emptied: set[str] = set()
        for message in sequencer.issued:
            topic = message.topic
            if topic not in emptied:
                try:
                    repaired.append(Published(message, epoch))
                    continue
                except Exception:  # encoding failed: this topic cannot go on as it is
                    emptied.add(topic)
                    self.consolidator.forget(topic)
            repaired.append(Published(sequencer.empty_topic(topic, now_us, message), epoch))
        sent = {item.topic for item in repaired}
        for topic in self.consolidator.topics_of(event):
            if topic not in sent:
                self.consolidator.forget(topic)
                repaired.append(Published(sequencer.empty_topic(topic, now_us), epoch))
        return repaired
