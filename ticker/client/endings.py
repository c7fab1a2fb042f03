"""Why a connection ended, and what the feed does about it.

Every way a connection can end (a close code, a refused handshake, a dropped socket,
a stall, a gap the client found) becomes one `Ending`: reconnect and resume, back off
harder, or stop and raise to the caller. The close-code table is docs/PROTOCOL.md's.
Pure: the connection shells build endings, the feed loop acts on them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ticker.client.errors import FeedError, FeedProtocolError, FeedRejected
from ticker.errors import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_LIMIT_REACHED,
    CLOSE_SHUTDOWN,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHORIZED,
)

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009


class EndingKind(enum.Enum):
    """How a connection ended (one counter each in `FeedStats.endings`)."""

    SLOW_CONSUMER = "slow_consumer"
    """Evicted (close 4008, SSE `end`): the caller read too slowly. Resume."""
    SHUTDOWN = "shutdown"
    """The server is shutting down (close 4001, SSE `end`). Resume, elsewhere or later."""
    LIMIT = "limit"
    """A server limit (close 4429, HTTP 429/503). Back off, then retry."""
    DROPPED = "dropped"
    """The connection broke without a reason (TCP reset or EOF, close 1006). Resume."""
    STALLED = "stalled"
    """Nothing arrived within the stall timeout (heartbeats stopped). Resume."""
    GAP = "gap"
    """The client found a sequence gap and resyncs at once."""
    CONNECT_FAILED = "connect_failed"
    """No connection: refused, timed out, or the handshake broke. Back off, retry."""
    REJECTED = "rejected"
    """The server refused the request for good. Raise `FeedRejected`."""
    PROTOCOL = "protocol"
    """Bytes the client cannot read. Raise `FeedProtocolError`."""
    TLS = "tls"
    """The server's certificate is not trusted. Raise `FeedTlsError`."""
    CLOSED = "closed"
    """The feed was closed by its caller."""
    TOKEN_EXPIRED = "token_expired"
    """The token expired before a refresh (close 4401, SSE `end`). With a refresh
    callback: get a new token and resume; without: raise `FeedRejected`."""


@dataclass(frozen=True, slots=True)
class Ending:
    """One connection's end.

    Attributes:
        kind: what happened.
        detail: the close reason or error text, for the log line.
        error: set when the feed must stop: raised to the caller.
        healthy: the connection delivered data before it ended (with a long enough
            `lifetime_s`, the reconnect backoff starts again from its minimum).
        lifetime_s: how long the connection was open (0: it never opened).
    """

    kind: EndingKind
    detail: str = ""
    error: FeedError | None = None
    healthy: bool = False
    lifetime_s: float = 0.0


def ending_from_close(code: int, reason: str | None) -> Ending:
    """The ending for a WebSocket close frame from the server (or 1006: none)."""
    text = reason or ""
    if code == CLOSE_SLOW_CONSUMER:
        return Ending(EndingKind.SLOW_CONSUMER, text)
    if code == CLOSE_SHUTDOWN:
        return Ending(EndingKind.SHUTDOWN, text)
    if code == CLOSE_LIMIT_REACHED:
        return Ending(EndingKind.LIMIT, text)
    if code == CLOSE_BAD_REQUEST:
        return Ending(EndingKind.REJECTED, text, FeedRejected(code, text or "bad request"))
    if code == CLOSE_UNAUTHORIZED:
        return Ending(EndingKind.TOKEN_EXPIRED, text)
    if code == CLOSE_FORBIDDEN:  # revoked: a new token will not be issued by retrying
        return Ending(EndingKind.REJECTED, text, FeedRejected(code, text or "revoked"))
    if code in (CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG):
        message = f"connection closed with {code}: {text}"
        return Ending(EndingKind.PROTOCOL, text, FeedProtocolError(message))
    return Ending(EndingKind.DROPPED, f"close {code} {text}".strip())


def ending_from_status(status: int, body: str) -> Ending:
    """The ending for an HTTP response other than the upgrade or the event stream."""
    text = body.strip()[:200]
    if status in (429, 503):
        return Ending(EndingKind.LIMIT, f"HTTP {status}: {text}")
    if 400 <= status < 500:
        return Ending(EndingKind.REJECTED, text, FeedRejected(status, text or f"HTTP {status}"))
    return Ending(EndingKind.CONNECT_FAILED, f"HTTP {status}: {text}")


def ending_from_stream_end(reason: str) -> Ending:
    """The ending for an SSE `end` event (`slow_outbox`, `slow_write`, `shutdown`)."""
    if reason.startswith("slow"):
        return Ending(EndingKind.SLOW_CONSUMER, reason)
    if reason == "shutdown":
        return Ending(EndingKind.SHUTDOWN, reason)
    if reason == "token_expired":
        return Ending(EndingKind.TOKEN_EXPIRED, reason)
    if reason == "revoked":
        return Ending(EndingKind.REJECTED, reason, FeedRejected(CLOSE_FORBIDDEN, "token revoked"))
    return Ending(EndingKind.DROPPED, reason)


class ConnectionEnded(Exception):
    """Raised by a connection shell when opening fails; carries the `Ending`."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.detail)
        self.ending = ending
