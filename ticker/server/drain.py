"""Graceful drain: stop taking clients, send every open stream away, within a deadline.

On SIGTERM (or `ServerHandle.drain()`): readiness turns false and the listening socket
closes, so new connections are refused; then the open streams are ended in batches,
spread with jitter over half the deadline so their reconnects do not arrive at the
other servers all at once. A WebSocket gets the shutdown close (4001) naming the last
position it was sent, an SSE stream a final `end` event with it; both resume elsewhere
from there. Whatever is still open at the deadline is cut. This module decides the
order and pace only; how a connection ends is `Subscriber.end`.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import trio

from ticker.server.context import ServerContext
from ticker.server.stats import STREAM_TRANSPORTS, EndReason

log = logging.getLogger("ticker.server")

SETTLE_POLL_S = 0.02
"""How often the drain checks whether the ended sessions have finished closing."""


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What a drain did: connections sent away in order, and cut at the deadline."""

    ended: int
    cut: int
    seconds: float


async def drain(
    context: ServerContext, *, deadline_s: float, batch_size: int, rng: random.Random
) -> DrainResult:
    """Drain `context`'s server; returns once every stream closed or the deadline passed."""
    started = time.monotonic()
    context.shutting_down = True
    if context.accepting is not None:
        context.accepting.cancel()
    streams = list(context.fanout.subscribers())
    rng.shuffle(streams)
    batches = [streams[i : i + batch_size] for i in range(0, len(streams), batch_size)]
    log.info(
        "draining: %d streams in %d batches, deadline %.1f s",
        len(streams),
        len(batches),
        deadline_s,
    )
    pause_s = deadline_s / 2 / max(len(batches), 1)
    ended = 0
    with trio.move_on_after(deadline_s):
        for number, batch in enumerate(batches):
            for subscriber in batch:
                if subscriber.ended is None:
                    subscriber.end(EndReason.SHUTDOWN)
                    ended += 1
            if number < len(batches) - 1:
                await trio.sleep(pause_s * (0.5 + rng.random()))
        while _open_streams(context):  # noqa: ASYNC110 (sessions end on their own)
            await trio.sleep(SETTLE_POLL_S)
    cut = _open_streams(context)
    result = DrainResult(ended, cut, time.monotonic() - started)
    log.log(
        logging.WARNING if cut else logging.INFO,
        "drain done in %.2f s: %d streams sent away, %d cut at the deadline",
        result.seconds,
        result.ended,
        result.cut,
    )
    return result


def _open_streams(context: ServerContext) -> int:
    # What the drain sends away; publishers (`/v1/publish`) end when the server stops.
    return sum(context.stats.connections_open[t] for t in STREAM_TRANSPORTS)
