"""Server-sent events over HTTP/1.1: the response head, events and chunked framing.

An event is `event:`, `id:` (the position) and one `data:` line of compact JSON (which
never holds a raw newline). A heartbeat is a named event, not a comment, so a
browser's `onmessage`/`addEventListener` watchdog sees it. The body is sent chunked,
one chunk per write of however many events were waiting; to an HTTP/1.0 client, which
knows no chunks, it is sent as is and ends when the connection closes. Pure text and
bytes.
"""

from __future__ import annotations

from typing import Final

from ticker.wire.http import render_response

SSE_HEADERS: Final = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
    ("Transfer-Encoding", "chunked"),
    ("Connection", "keep-alive"),
]


SSE_HEADERS_HTTP10: Final = [
    *SSE_HEADERS[:3],
    ("Connection", "close"),
]
"""For an HTTP/1.0 request: no chunks (RFC 9112 7.1: never to a 1.0 client); the body
ends when the connection closes."""


def response_head(http_version: str = "1.1", cors: list[tuple[str, str]] | None = None) -> bytes:
    """The 200 response head that opens an event stream for a request of `http_version`,
    with the CORS headers `cors` (default: `Access-Control-Allow-Origin: *`)."""
    headers = SSE_HEADERS_HTTP10 if http_version == "1.0" else SSE_HEADERS
    if cors is None:
        cors = [("Access-Control-Allow-Origin", "*")]
    return render_response(200, [*headers, *cors], content_length=False)


def encode_event(event: str, data: str, event_id: str | None = None) -> str:
    """One event. `data` must be a single line (compact JSON is)."""
    if event_id is None:
        return f"event: {event}\ndata: {data}\n\n"
    return f"event: {event}\nid: {event_id}\ndata: {data}\n\n"


def encode_retry(retry_ms: int) -> str:
    """The `retry:` field telling the browser how long to wait before reconnecting."""
    return f"retry: {int(retry_ms)}\n\n"


def encode_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK: Final = b"0\r\n\r\n"
