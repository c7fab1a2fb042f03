"""The life of one streaming connection, whatever its transport.

`run_session` registers the connection, runs its read loop inside a nursery (where a
drain task may also run), and on any way out frees everything at once and logs one
line with the reason. The transports' read loops live in their own modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio

from ticker.server.context import ServerContext
from ticker.server.stats import EndReason
from ticker.server.subscriber import Subscriber

log = logging.getLogger("ticker.server")


async def run_session(
    subscriber: Subscriber,
    transport: str,
    context: ServerContext,
    read_loop: Callable[[], Awaitable[EndReason]],
) -> None:
    """Serve one connection until its read loop returns, it is evicted, or shutdown."""
    stats = context.stats
    stats.connections_open[transport] += 1
    stats.connections_total[transport] += 1
    context.fanout.add(subscriber)
    try:
        async with trio.open_nursery() as nursery:
            subscriber.nursery = nursery
            reason = await read_loop()
            subscriber.end(reason)
    finally:
        if subscriber.ended is None:
            # Cancelled from outside: the server is stopping. end() never awaits.
            subscriber.end(EndReason.SHUTDOWN)
        context.fanout.remove(subscriber)
        subscriber.sock.close()
        stats.connections_open[transport] -= 1
        reason_name = subscriber.ended.value if subscriber.ended else "unknown"
        stats.ends[reason_name] += 1
        lag = context.hub.position.offset - subscriber.delivered_offset
        level = logging.WARNING if subscriber.ended in _BAD_ENDS else logging.INFO
        log.log(
            level,
            "connection end transport=%s peer=%s reason=%s duration_s=%.1f messages=%d "
            "bytes=%d last=%d lag=%d",
            transport,
            subscriber.peer,
            reason_name,
            time.monotonic() - subscriber.opened_at,
            subscriber.messages,
            subscriber.bytes,
            subscriber.delivered_offset,
            lag,
        )


_BAD_ENDS = frozenset(
    {
        EndReason.SLOW_OUTBOX,
        EndReason.SLOW_WRITE,
        EndReason.SLOW_REPLAY,
        EndReason.SLOW_PING,
        EndReason.PING_TIMEOUT,
        EndReason.PROTOCOL_ERROR,
    }
)
