"""The exceptions ticker raises when a contract is broken.

    TickerError
    ├── ProtocolError            a peer sent something we cannot accept
    │   ├── BadTopic             unknown channel, bad symbol, bad pattern
    │   ├── BadPosition          a resume position that does not parse
    │   ├── BadMessage           undecodable or ill-formed wire message
    │   ├── Unauthorized         no token, or one that does not verify (401 / 4401)
    │   └── Forbidden            a verified token not entitled to this (403 / 4403)
    ├── ConfigError              a setting out of range
    ├── LogError                 the cluster log in Redis refused or failed a command
    │   ├── LogUnavailable       Redis unreachable, too slow or loading: try again later
    │   └── Fenced               the lease is not ours, or the entry is not after the last
    └── EventRejected            one event the hub could not publish, repaired
                                 (in ticker.core.hub: it carries what was published)

Expected situations (a gap, a position too old, a full outbox) are return values,
never exceptions. Each ProtocolError carries the WebSocket close code and the HTTP
status a shell should answer with, like h11's `error_status_hint`.
"""

from __future__ import annotations

from typing import Final

MAX_ECHO_CHARS: Final = 64
"""Characters of a peer's input an error message quotes back (`echo`)."""
MAX_ERROR_CHARS: Final = 300
"""Characters of any `ProtocolError` message: what a peer is told and what is logged."""

# WebSocket close codes (4000-4999 are for applications; documented in docs/PROTOCOL.md).
CLOSE_BAD_REQUEST = 4400
CLOSE_LIMIT_REACHED = 4429
CLOSE_SLOW_CONSUMER = 4008
CLOSE_SHUTDOWN = 4001
CLOSE_UNAUTHORIZED = 4401
"""The connection's token expired (a close), or a refreshed token did not verify."""
CLOSE_FORBIDDEN = 4403
"""The subject was revoked (a close), or a pattern it is not entitled to (an error)."""


class TickerError(Exception):
    """Base of every exception ticker raises on purpose."""


def echo(value: object) -> str:
    """`repr(value)` for an error message, cut to `MAX_ECHO_CHARS`: a peer's input is
    quoted back to it (and logged) only that far, however much it sent."""
    text = repr(value)
    if len(text) <= MAX_ECHO_CHARS:
        return text
    return f"{text[: MAX_ECHO_CHARS - 3]}... ({len(text)} characters)"


class ProtocolError(TickerError):
    """A peer broke the wire protocol; the shell tells that peer and counts it.

    The message is cut to `MAX_ERROR_CHARS`, whatever it quotes of the peer's input.
    """

    close_code: int = CLOSE_BAD_REQUEST
    http_status: int = 400

    def __init__(self, message: str = "") -> None:
        if len(message) > MAX_ERROR_CHARS:
            message = f"{message[: MAX_ERROR_CHARS - 15]}... (cut short)"
        super().__init__(message)


class BadTopic(ProtocolError):
    """A topic or topic pattern that is not `<channel>.<symbol>` with a known channel."""


class BadPosition(ProtocolError):
    """A resume position that does not parse as `<epoch>-<offset>`."""


class BadMessage(ProtocolError):
    """Bytes that do not decode to a well-formed protocol message."""


class Unauthorized(ProtocolError):
    """No token where one is required, or one that does not verify. The message says
    why in general terms and never quotes the token."""

    close_code = CLOSE_UNAUTHORIZED
    http_status = 401


class Forbidden(ProtocolError):
    """A verified subject asked for what it is not entitled to, or was revoked."""

    close_code = CLOSE_FORBIDDEN
    http_status = 403


class ConfigError(TickerError):
    """A configuration value out of its allowed range."""


class LogError(TickerError):
    """The cluster log (Redis) failed a command in a way that is neither of the below."""


class LogUnavailable(LogError):
    """Redis is unreachable, did not answer in time, or is loading: try again later.

    Whether a write that raised this was applied is unknown; reading the log tells.
    """


class Fenced(LogError):
    """A fenced write was refused and nothing was written: the lease is not ours, or the
    entry's ID is not after the log's last one."""
