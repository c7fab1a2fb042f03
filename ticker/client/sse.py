"""One SSE connection of a feed: an HTTP/1.1 GET read with h11 over a trio stream.

It sends the topics in the query and the resume position as `Last-Event-ID`, checks
the response, and hands over ticker's events as the same messages the WebSocket
carries, one resumable unit at a time (`SseDecoder`). A refusal (HTTP 400 and its
reason) or an `end` event becomes an `Ending`. No topic state here.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

import h11
import trio

from ticker.client.endings import (
    ConnectionEnded,
    Ending,
    EndingKind,
    ending_from_status,
    ending_from_stream_end,
)
from ticker.client.endpoint import Endpoint
from ticker.client.errors import FeedProtocolError
from ticker.client.event_stream import SseDecoder, StreamEnd
from ticker.client.network import open_stream
from ticker.core.messages import ServerMessage
from ticker.core.position import Position

RECEIVE_BYTES: Final = 65536
MAX_ERROR_BODY_BYTES: Final = 64 * 1024


class SseFeedConnection:
    """An open event stream: `receive` returns the next unit's messages."""

    compression: str | None = None

    def __init__(
        self, stream: trio.abc.Stream, connection: h11.Connection, decoder: SseDecoder
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._decoder = decoder
        self._ready: collections.deque[list[ServerMessage] | StreamEnd] = collections.deque()

    async def receive(self) -> list[ServerMessage] | Ending:
        """The next unit of messages, or how the stream ended."""
        while not self._ready:
            event = await _next_event(self._stream, self._connection)
            if isinstance(event, Ending):
                return event
            if isinstance(event, h11.Data):
                try:
                    self._ready.extend(self._decoder.feed(bytes(event.data)))
                except FeedProtocolError as exc:
                    return Ending(EndingKind.PROTOCOL, str(exc), exc)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return Ending(EndingKind.DROPPED, "the server ended the stream")
        item = self._ready.popleft()
        if isinstance(item, StreamEnd):
            return ending_from_stream_end(item.reason)
        return item

    async def authenticate(self, token: str) -> None:
        """An event stream cannot take a token in flight: it ends at the old token's
        expiry (`end` `token_expired`) and the feed reconnects with `token`."""
        del token
        await trio.lowlevel.checkpoint()

    async def abort(self) -> None:
        """Drop the connection now; `receive` then returns an Ending."""
        await self.aclose()

    async def aclose(self) -> None:
        """Drop the connection (an SSE client has nothing to say on the way out)."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(self._stream)


async def _next_event(stream: trio.abc.Stream, connection: h11.Connection) -> h11.Event | Ending:
    """The next h11 event, reading as needed; broken streams become an Ending."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            return Ending(EndingKind.DROPPED, f"broken HTTP stream: {exc}")
        if event is not h11.NEED_DATA:
            assert isinstance(event, h11.Event)
            return event
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            return Ending(EndingKind.DROPPED, f"connection lost: {exc}")
        connection.receive_data(bytes(data))


def request_target(endpoint: Endpoint, topics: Sequence[str]) -> str:
    """The request target: the path and the topics, comma-separated."""
    return f"{endpoint.path}?topics={quote(','.join(topics), safe='*,.-')}"


async def connect_sse(
    nursery: trio.Nursery,
    endpoint: Endpoint,
    topics: Sequence[str],
    position: Position | None,
    *,
    ssl_context: ssl.SSLContext | None,
    connect_timeout_s: float,
    max_event_bytes: int,
    headers: Sequence[tuple[str, str]] = (),
) -> SseFeedConnection:
    """Connect, request the stream and check the response (`nursery` is not used: the
    signature matches `connect_websocket`).

    Raises:
        ConnectionEnded: the connection could not be made or the request was refused.
    """
    del nursery
    # One deadline for TCP, TLS and the response together.
    deadline = trio.current_time() + connect_timeout_s
    stream = await open_stream(endpoint, ssl_context, connect_timeout_s)
    try:
        connection = h11.Connection(h11.CLIENT)
        request_headers = [
            ("Host", endpoint.host_header),
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("User-Agent", "ticker-client"),
            *headers,
        ]
        if position is not None:
            request_headers.append(("Last-Event-ID", str(position)))
        target = request_target(endpoint, topics)
        request = h11.Request(method="GET", target=target, headers=request_headers)
        data = connection.send(request) + connection.send(h11.EndOfMessage())
        ending: Ending | None = None
        with trio.move_on_at(deadline) as timer:
            await stream.send_all(data)
            ending = await _check_response(stream, connection)
        if timer.cancelled_caught:
            detail = f"no event-stream response within {connect_timeout_s} s"
            ending = Ending(EndingKind.CONNECT_FAILED, detail)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        await trio.aclose_forcefully(stream)
        raise ConnectionEnded(Ending(EndingKind.CONNECT_FAILED, str(exc))) from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    if ending is not None:
        await trio.aclose_forcefully(stream)
        raise ConnectionEnded(ending)
    return SseFeedConnection(stream, connection, SseDecoder(max_event_bytes))


async def _check_response(stream: trio.abc.Stream, connection: h11.Connection) -> Ending | None:
    """None for a 200 event stream; otherwise the Ending, with the refusal's reason."""
    event = await _next_event(stream, connection)
    if isinstance(event, Ending):
        return Ending(EndingKind.CONNECT_FAILED, event.detail)
    if not isinstance(event, h11.Response):
        return Ending(EndingKind.CONNECT_FAILED, f"unexpected {type(event).__name__}")
    if event.status_code != 200:
        body = bytearray()
        while len(body) < MAX_ERROR_BODY_BYTES:
            part = await _next_event(stream, connection)
            if not isinstance(part, h11.Data):
                break
            body += part.data
        return ending_from_status(event.status_code, body.decode("utf-8", "replace"))
    content_type = dict(event.headers).get(b"content-type", b"")
    if not content_type.startswith(b"text/event-stream"):
        detail = f"expected text/event-stream, got {content_type.decode('latin-1')!r}"
        return Ending(EndingKind.PROTOCOL, detail, FeedProtocolError(detail))
    return None
