"""The Python trading client: `open_feed` follows topics of a ticker server.

    async with open_feed("ws://127.0.0.1:8080/v1/ws", ["quote.*", "book.BTC-USD"]) as feed:
        async for update in feed:
            ...

It keeps every topic's state, checks every sequence, resumes or re-snapshots by
itself, and reports a loss as a RESET update. docs/CLIENT.md is the guide.
"""

from __future__ import annotations

from ticker.client.endings import Ending, EndingKind
from ticker.client.endpoint import Endpoint, Transport
from ticker.client.errors import (
    FeedConfigError,
    FeedError,
    FeedProtocolError,
    FeedRejected,
    FeedTlsError,
    FeedUnavailable,
)
from ticker.client.feed import Feed, FeedOptions, open_feed
from ticker.client.network import make_ssl_context
from ticker.client.stats import FeedStats, LatencyHistogram
from ticker.client.updates import Loss, Update, UpdateKind
from ticker.core.position import Position

__all__ = [
    "Ending",
    "EndingKind",
    "Endpoint",
    "Feed",
    "FeedConfigError",
    "FeedError",
    "FeedOptions",
    "FeedProtocolError",
    "FeedRejected",
    "FeedStats",
    "FeedTlsError",
    "FeedUnavailable",
    "LatencyHistogram",
    "Loss",
    "Position",
    "Transport",
    "Update",
    "UpdateKind",
    "make_ssl_context",
    "open_feed",
]
