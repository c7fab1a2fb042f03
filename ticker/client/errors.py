"""The exceptions the client SDK raises to its caller.

    TickerError                      (ticker.errors)
    └── FeedError                    the feed cannot go on; raised from iteration
        ├── FeedConfigError          a bad argument to `open_feed` (also a ValueError)
        ├── FeedRejected             the server refused the request for good: bad or
        │                            unknown topic (error 4400), HTTP 4xx, close 4400
        ├── FeedProtocolError        the server sent what the client cannot read
        │                            (wrong version, undecodable frame, wrong dictionary)
        ├── FeedTlsError             the TLS handshake failed (certificate not trusted)
        └── FeedUnavailable          gave up after `max_attempts` failed connections

Everything a feed recovers from by itself (a disconnect, an eviction as slow consumer,
a restart, a sequence gap) is not an exception: it is an `Ending` the feed acts on and,
when data may have been lost, a RESET update the caller sees.
"""

from __future__ import annotations

from ticker.errors import TickerError


class FeedError(TickerError):
    """The feed stopped and will not recover by itself."""


class FeedConfigError(FeedError, ValueError):
    """A bad argument to `open_feed` (topic, URL, option out of range)."""


class FeedRejected(FeedError):
    """The server refused the subscription or the connection for good.

    Attributes:
        code: the protocol error code or close code (4400, 4429, ...), or the HTTP
            status when the handshake itself was refused.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"server refused ({code}): {message}")
        self.code = code
        self.message = message


class FeedProtocolError(FeedError):
    """The server's bytes do not follow docs/PROTOCOL.md as this client reads it."""


class FeedTlsError(FeedError):
    """The TLS handshake failed; retrying would fail the same way."""


class FeedUnavailable(FeedError):
    """No connection could be made in `max_attempts` consecutive attempts."""
