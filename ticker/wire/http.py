"""HTTP/1.1 request heads for the streaming front, and the small responses it writes.

The front reads a request head (bounded), parses it with h11 and routes on the path;
streaming endpoints are served by our own code, everything else by the application.
This module turns bytes into a `RequestHead` (or a `BadRequest` with its status) and
renders plain responses; it never touches a socket.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

import h11

from ticker.errors import ProtocolError

MAX_HEAD_BYTES: Final = 16 * 1024
MAX_QUERY_BYTES: Final = 4 * 1024

REASONS: Final = {
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

HTTP_VERSIONS: Final = ("1.0", "1.1")
"""Request versions served; any other (`HTTP/2.0` on a request line) gets 505."""


class BadRequest(ProtocolError):
    """The request head cannot be served; answer with `http_status`. `path` is the
    request's path when it was known (its endpoint decides the error's form)."""

    def __init__(self, message: str, http_status: int = 400, path: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.path = path


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request head. Header names are lower-case; repeated headers are joined."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    """The head's bytes as received, to hand the stream on to another server."""
    http_version: str = "1.1"
    """`1.0` or `1.1`."""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


def head_end(buffer: bytes | bytearray) -> int:
    """Index just past the blank line ending the head, or -1 if it is not complete yet.

    Raises:
        BadRequest: the head is longer than `MAX_HEAD_BYTES` (status 431).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BadRequest("request head too large", 431)
        return -1
    if end + 4 > MAX_HEAD_BYTES:
        raise BadRequest("request head too large", 431)
    return end + 4


_QUOTED_BYTES = re.compile(r"(bytearray\()?b(['\"]).*", re.DOTALL)


def parse_head(raw: bytes) -> RequestHead:
    """Parse one complete request head.

    Raises:
        BadRequest: not a valid HTTP/1.0 or 1.1 request head (another version: 505),
            or a query that does not parse.
    """
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    connection.receive_data(raw)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        # h11 quotes the offending line; it may hold a credential, so it is cut off.
        reason = _QUOTED_BYTES.sub("...", str(exc))
        raise BadRequest(f"malformed request: {reason}", exc.error_status_hint) from None
    if not isinstance(event, h11.Request):
        raise BadRequest("incomplete request head")
    version = event.http_version.decode("ascii")
    if version not in HTTP_VERSIONS:
        # HTTP/2 and later do not start with an HTTP/1-style request line.
        raise BadRequest(f"HTTP/{version} is not supported: use HTTP/1.1", 505)
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    target = event.target.decode("ascii", "replace")
    try:
        parts = urlsplit(target)
    except ValueError as exc:  # e.g. "//[x": an authority with a broken IPv6 literal
        raise BadRequest(f"bad request target: {exc}") from None
    if len(parts.query) > MAX_QUERY_BYTES:
        raise BadRequest(f"query string longer than {MAX_QUERY_BYTES} bytes", path=parts.path)
    try:
        query = parse_qs(
            parts.query, keep_blank_values=True, strict_parsing=False, max_num_fields=64
        )
    except ValueError as exc:
        raise BadRequest(f"bad query string: {exc}", path=parts.path) from None
    return RequestHead(event.method.decode("ascii"), parts.path, query, headers, raw, version)


def render_response(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """A whole HTTP/1.1 response head (and body). Header values must be plain ASCII."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def render_error(status: int, message: str) -> bytes:
    """A plain-text error response that closes the connection."""
    body = (message + "\n").encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]
    return render_response(status, headers + _challenge(status), body)


def _challenge(status: int) -> list[tuple[str, str]]:
    """A 401 names the scheme it wants (RFC 9110 11.6.1)."""
    return [("WWW-Authenticate", 'Bearer realm="ticker"')] if status == 401 else []


def render_json_error(status: int, message: str) -> bytes:
    """The application's JSON error, `{"error": message, "status": status}`, for a
    request refused before it reached the application; closes the connection."""
    body = json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    return render_response(status, headers + _challenge(status), body)
