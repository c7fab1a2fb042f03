"""Reading `text/event-stream` bodies into protocol messages, in resumable units.

`EventStreamParser` splits a byte stream into events (the WHATWG rules: `\\n`, `\\r\\n`
or `\\r` line ends, `:` comments, `field: value`, a blank line dispatches).
`SseDecoder` turns ticker's events into the same messages the WebSocket carries and
groups them into units: a reset and the snapshots of one burst carry no `id:`, the
heartbeat that ends the burst does, so they travel as one unit, like a burst in one
WebSocket frame. Pure; bounded.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any, Final

from ticker.client.errors import FeedProtocolError
from ticker.core.codec import parse_json
from ticker.core.messages import (
    PROTOCOL_VERSION,
    DataMessage,
    Error,
    Heartbeat,
    Hello,
    Reset,
    ServerMessage,
)
from ticker.errors import BadMessage

MAX_EVENT_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its name (`message` when none was given), data and id."""

    event: str
    data: str
    id: str | None


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The server's `end` event: it is closing the stream (`reason`, `last` position)."""

    reason: str
    last: str


class EventStreamParser:
    """An incremental event-stream parser.

    Args:
        max_event_bytes: the longest event accepted (a stream that never dispatches
            would otherwise grow without bound).
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._size = 0

    def feed(self, data: bytes) -> list[SseEvent]:
        """Events completed by `data`.

        Raises:
            FeedProtocolError: invalid UTF-8, or an event longer than allowed.
        """
        try:
            self._text += self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise FeedProtocolError(f"event stream is not UTF-8: {exc}") from None
        events: list[SseEvent] = []
        text = self._text
        start = 0
        while True:
            end = _line_end(text, start)
            if end < 0:
                break
            line = text[start:end]
            start = end + (2 if text.startswith("\r\n", end) else 1)
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._text = text[start:]
        if self._size + len(self._text) > self.max_event_bytes:
            raise FeedProtocolError(f"an event longer than {self.max_event_bytes} bytes")
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        self._size += len(line)
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # `retry` and unknown fields: the feed has its own backoff

    def _dispatch(self) -> SseEvent | None:
        event, data, event_id = self._event, self._data, self._id
        self._event, self._data, self._id, self._size = "", [], None, 0
        if not data:
            return None  # `retry:` alone, or comments: nothing to dispatch
        return SseEvent(event or "message", "\n".join(data), event_id)


def _line_end(text: str, start: int) -> int:
    """Index of the next line end at or after `start`, or -1 if the line is incomplete.

    A `\\r` at the very end may be the first half of `\\r\\n`: wait for more.
    """
    newline = text.find("\n", start)
    ret = text.find("\r", start, newline if newline >= 0 else len(text))
    if ret >= 0:
        return ret if ret + 1 < len(text) else -1
    return newline


class SseDecoder:
    """ticker's SSE events as protocol messages, grouped into resumable units."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._parser = EventStreamParser(max_event_bytes)
        self._max_burst_bytes = max_event_bytes
        self._burst: list[ServerMessage] = []
        self._burst_bytes = 0

    def feed(self, data: bytes) -> list[list[ServerMessage] | StreamEnd]:
        """Units completed by `data`, and the stream's end if it came.

        Raises:
            FeedProtocolError: a malformed event, or a burst (events without `id:`)
                larger than `max_event_bytes` in all: a WebSocket burst is one frame,
                bounded alike.
        """
        out: list[list[ServerMessage] | StreamEnd] = []
        for event in self._parser.feed(data):
            try:
                item = _decode(event)
            except (BadMessage, ValueError, KeyError, TypeError) as exc:
                raise FeedProtocolError(f"bad {event.event!r} event: {exc}") from None
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                out.append(item)
            elif isinstance(item, DataMessage | Reset) and event.id is None:
                # A burst's snapshots (after a reset, the reset first): the heartbeat
                # that ends it carries the id. All or none.
                self._burst_bytes += len(event.data)
                if self._burst_bytes > self._max_burst_bytes:
                    raise FeedProtocolError(
                        f"{len(self._burst) + 1} events without an id: carry more than "
                        f"{self._max_burst_bytes} bytes (a burst must end with an id:)"
                    )
                self._burst.append(item)
            else:
                out.append([*self._burst, item])
                self._burst = []
                self._burst_bytes = 0
        return out


def _object(data: str) -> dict[str, Any]:
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("data is not a JSON object")
    return obj


def _decode(event: SseEvent) -> ServerMessage | StreamEnd | None:
    """One event as a message (None: an event this client does not know)."""
    name = event.event
    if name in ("snapshot", "delta"):
        return parse_json(event.data, snapshot=name == "snapshot")
    if name == "heartbeat":
        obj = _object(event.data)
        return Heartbeat(int(obj["epoch"]), int(obj["offset"]), int(obj["ts"]))
    if name == "hello":
        obj = _object(event.data)
        # heartbeat_s came later to SSE's hello: 0 means "not told" (an older server).
        version = int(obj.get("version", PROTOCOL_VERSION))
        heartbeat_s = float(obj.get("heartbeat_s", 0.0))
        dictionary = obj.get("zstd_dictionary")  # later still: None from older servers
        return Hello(
            version,
            int(obj["epoch"]),
            int(obj["offset"]),
            heartbeat_s,
            None,
            None if dictionary is None else int(dictionary),
        )
    if name == "reset":
        obj = _object(event.data)
        return Reset(int(obj["epoch"]), int(obj["offset"]), str(obj["reason"]))
    if name == "error":
        obj = _object(event.data)
        return Error(int(obj["code"]), str(obj["message"]))
    if name == "end":
        obj = _object(event.data)
        return StreamEnd(str(obj.get("reason", "")), str(obj.get("last", "")))
    return None
