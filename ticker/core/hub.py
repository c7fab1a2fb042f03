"""The hub: the single-writer stage from normalized events to encoded, buffered messages.

Consolidate, sequence, encode once, keep in the replay buffer: what comes out is ready
for fanout, and every subscriber of a message gets these same bytes. The JSON form is
rendered at most once per message, on first use. Pure: the shell owns clocks and tasks.
"""

from __future__ import annotations

from ticker.config import Config
from ticker.core.codec import encode_data, render_json
from ticker.core.consolidate import Consolidator
from ticker.core.messages import DataMessage
from ticker.core.position import Position
from ticker.core.replay import Replay, ReplayBuffer, Reset
from ticker.core.sequencer import Sequencer
from ticker.core.topics import CHANNELS, ChannelKind
from ticker.model.events import NormalizedEvent

CONFLATABLE = {name: kind is not ChannelKind.EVENT for name, kind in CHANNELS.items()}


class Published:
    """A message as it goes out: the value, its msgpack bytes, and lazily its JSON.

    `topic`, `conflatable` and `size` are what an outbox needs, worked out once here
    rather than once per subscriber.
    """

    __slots__ = ("_json", "conflatable", "message", "payload", "size", "topic")

    def __init__(self, message: DataMessage) -> None:
        self.message = message
        self.topic = message.topic
        self.payload = encode_data(message)
        self.size = len(self.payload)
        self.conflatable = CONFLATABLE[message.topic.partition(".")[0]]
        self._json: str | None = None

    @property
    def json(self) -> str:
        """The JSON text SSE carries, rendered on first use and then shared."""
        if self._json is None:
            self._json = render_json(self.message)
        return self._json


class Hub:
    """Consolidator + sequencer + encoder + replay buffer, in that order."""

    def __init__(self, config: Config, epoch: int) -> None:
        self.sequencer = Sequencer(epoch, config.keyframe_interval)
        self.consolidator = Consolidator(self.sequencer)
        self.replay: ReplayBuffer[Published] = ReplayBuffer(
            epoch, config.replay_max_messages, config.replay_max_bytes
        )

    @property
    def position(self) -> Position:
        """Position of the last published message."""
        return self.sequencer.position

    def publish(self, event: NormalizedEvent, now_ns: int) -> list[Published]:
        """Consolidate and publish one normalized event; returns what went out."""
        return self._buffer(self.consolidator.on_event(event, now_ns // 1000))

    def keyframe(self, topic: str, now_ns: int) -> Published:
        """Publish a whole-state keyframe of `topic` into the stream now."""
        return self._buffer([self.sequencer.keyframe(topic, now_ns // 1000)])[0]

    def snapshot(self, topic: str, now_ns: int) -> DataMessage:
        """The whole state of `topic` consistent with the current position (not published)."""
        return self.sequencer.snapshot(topic, now_ns // 1000)

    def since(self, position: Position) -> Replay[Published] | Reset:
        """Messages after `position` from the replay buffer, or why not."""
        return self.replay.since(position)

    def _buffer(self, messages: list[DataMessage]) -> list[Published]:
        published = []
        append = self.replay.append
        for message in messages:
            item = Published(message)
            append(message.offset, item, item.size)
            published.append(item)
        return published
