"""Recording a running server's stream: its WebSocket messages as normalized events.

A ticker server publishes venue-neutral topics, not venue messages, so its stream is
recorded as a normalized capture: each book message becomes a `BookUpdate` and each
quote a `Quote` of the pseudo-venue `ticker` (books carry absolute sizes, so a delta
is a valid update; quotes are kept whole from the deltas), each trade a `Trade` of its
own venue. Replayed into another server these reproduce the recorded book, quote and
trade topics (ticker statistics are recomputed there from the trades it sees).
`StreamNormalizer` is pure; `record_stream` is its trio shell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ticker.capture.errors import TargetError
from ticker.capture.format import CaptureHeader, CaptureWriter, RecordKind
from ticker.capture.record import FLUSH_INTERVAL_S, iso_utc
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import DataMessage, Subscribe
from ticker.errors import BadMessage
from ticker.model.event_codec import encode_event
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.venues.reference import LISTINGS, VENUES

log = logging.getLogger("ticker.capture")

STREAM_VENUE = "ticker"
"""The venue a server's consolidated books and quotes are recorded under."""
STREAM_CHANNELS = ("book", "quote", "trade")
_SIDES = {"buy": TakerSide.BUY, "sell": TakerSide.SELL}


def stream_header(url: str, symbols: Sequence[str] | None, created_ns: int) -> CaptureHeader:
    """The header of a capture of a server's stream."""
    known = sorted({listing.symbol for listings in LISTINGS.values() for listing in listings})
    return CaptureHeader(
        created_at=iso_utc(created_ns),
        source=f"stream {url}",
        venues=(STREAM_VENUE, *VENUES),
        symbols=tuple(symbols) if symbols else tuple(known),
        kind="normalized",
        options={"url": url, "channels": list(STREAM_CHANNELS)},
    )


def topics_for(symbols: Sequence[str] | None) -> tuple[str, ...]:
    """The topic patterns to subscribe: every symbol, or the given ones."""
    if not symbols:
        return tuple(f"{channel}.*" for channel in STREAM_CHANNELS)
    return tuple(f"{channel}.{symbol}" for channel in STREAM_CHANNELS for symbol in symbols)


class StreamNormalizer:
    """Server data messages -> normalized events; `skipped` counts what had no event."""

    def __init__(self, venues: Sequence[str]) -> None:
        self._venues = frozenset(venues)
        self._quotes: dict[str, dict[str, Any]] = {}
        self.skipped = 0
        self.last_offset = 0
        """The stream offset of the last data message seen."""

    def on_message(self, message: DataMessage) -> list[NormalizedEvent]:
        self.last_offset = max(self.last_offset, message.offset)
        channel, _, symbol = message.topic.partition(".")
        data = message.data
        ts_ns = message.ts_us * 1000
        try:
            if channel == "book":
                bids = tuple((int(p), int(s)) for p, s in data.get("bids", ()))
                asks = tuple((int(p), int(s)) for p, s in data.get("asks", ()))
                return [BookUpdate(STREAM_VENUE, symbol, ts_ns, bids, asks, message.snapshot)]
            if channel == "quote":
                state = self._quotes.setdefault(message.topic, {})
                if message.snapshot:
                    state.clear()
                state.update(data)
                fields = [state.get(k) for k in ("bid", "bid_size", "ask", "ask_size")]
                return [Quote(STREAM_VENUE, symbol, ts_ns, *fields)]
            if channel == "trade" and data.get("venue") in self._venues:
                return [
                    Trade(str(data["venue"]), symbol, int(data["venue_ts"]) * 1000,
                          int(data["price"]), int(data["size"]), _SIDES[data["side"]],
                          str(data["id"]))
                ]  # fmt: skip
        except (KeyError, TypeError, ValueError):
            pass
        self.skipped += 1
        return []


async def record_stream(
    writer: CaptureWriter,
    url: str,
    duration_s: float,
    *,
    symbols: Sequence[str] | None = None,
    progress: Callable[[CaptureWriter], None] | None = None,
    flush_interval_s: float = FLUSH_INTERVAL_S,
    normalizer: StreamNormalizer | None = None,
) -> StreamNormalizer:
    """Subscribe to a server's book, quote and trade topics and record for `duration_s`.

    The caller closes `writer`. `normalizer` may be given to watch the progress.

    Raises:
        TargetError: the server cannot be reached, refuses, or closes the stream.
    """
    normalizer = normalizer or StreamNormalizer(writer.header.venues)
    ws_url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1/ws") else "/v1/ws")
    last_ns = 0
    try:
        async with open_websocket_url(ws_url, subprotocols=["ticker.v1"]) as ws:
            await ws.send_message(encode_client(Subscribe(topics_for(symbols))))
            next_flush = trio.current_time() + flush_interval_s
            with trio.move_on_after(duration_s):
                while True:
                    # A quiet stream still flushes every `flush_interval_s`.
                    # (A receive cut short loses nothing: the message stays queued.)
                    with trio.move_on_at(next_flush) as quiet:
                        frame = await ws.get_message()
                    if trio.current_time() >= next_flush:
                        next_flush = trio.current_time() + flush_interval_s
                        writer.flush()
                        if progress is not None:
                            progress(writer)
                    if quiet.cancelled_caught:
                        continue
                    last_ns = max(last_ns, time.time_ns())
                    if not isinstance(frame, bytes):
                        raise TargetError(f"{ws_url} sent a text frame")
                    for message in decode_frame(frame):
                        if isinstance(message, DataMessage):
                            for event in normalizer.on_message(message):
                                writer.add(RecordKind.EVENT, last_ns, event.venue,
                                           encode_event(event))  # fmt: skip
    except HandshakeError as exc:
        cause = exc.__cause__ or exc
        reason = str(cause) or type(cause).__name__
        raise TargetError(f"cannot open the stream {ws_url}: {reason}") from None
    except ConnectionClosed as exc:
        raise TargetError(f"{ws_url} closed the stream: {exc.reason}") from None
    except BadMessage as exc:
        raise TargetError(f"{ws_url} sent something unreadable: {exc}") from None
    return normalizer
