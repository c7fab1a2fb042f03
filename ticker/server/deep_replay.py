"""A resume older than the replay buffer, served from a deeper log (the cluster's Redis
stream) instead of a reset.

`subscribe` queues a `DeepReplay` in the connection's backlog and starts `run_deep_replay`
in the connection's nursery. The task reads the log a chunk at a time after the resume
position, keeps the wanted messages ready for the writer (bounded: it waits while the
writer has not taken them), and hands over to the replay buffer as soon as the buffer
holds the next offset; live messages wait in the outbox meanwhile, as for any resume.
If the log cannot continue (trimmed meanwhile, another epoch, unreachable), the
connection gets a reset and fresh snapshots at the current position instead, in one
unit, and what waited in its outbox is dropped (the snapshots already hold it).
Knows nothing of Redis: the source is a callable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ticker.core.hub import Hub, Published
from ticker.core.messages import DataMessage
from ticker.core.messages import Reset as ResetMessage
from ticker.core.position import Position
from ticker.core.replay import Replay, ReplayRange, ReplayRun
from ticker.core.topics import TopicPattern
from ticker.server.subscriber import DeepReplay, ReplayBacklog, SnapshotBurst, Subscriber

log = logging.getLogger("ticker.server")

DeepSource = Callable[[Position, int], Awaitable[list[tuple[DataMessage, bytes]]]]
"""Reads up to N log entries after a position: their messages (with their bytes) in
order. Raises `SourceFailed` when the log cannot answer."""

CHUNK_ENTRIES = 200
"""Log entries read per request."""
READY_MAX_MESSAGES = 4096
"""Fetched messages waiting for the writer at most; the reader waits beyond."""


class SourceFailed(Exception):
    """The deep log cannot answer (unreachable, unreadable)."""


async def run_deep_replay(
    subscriber: Subscriber,
    entry: DeepReplay,
    hub: Hub,
    source: DeepSource,
    snapshot_topics: Callable[[list[TopicPattern]], list[str]],
    until: int,
) -> None:
    """Fill `entry` from `source` until the replay buffer takes over (see the module).

    The replay ends at offset `until`, the hub's position when the resume was taken:
    what was published after it is in the connection's outbox already.
    """
    epoch = hub.epoch
    try:
        while subscriber.ended is None:
            if entry.after >= until:
                entry.finish()
                subscriber.flush_nowait()
                return
            answer = hub.since(Position(epoch, entry.after)) if hub.epoch == epoch else None
            if isinstance(answer, Replay):
                run = ReplayRun(ReplayRange(hub.replay, entry.after + 1, until + 1))
                backlog = subscriber.backlog
                index = backlog.index(entry) if entry in backlog else len(backlog) - 1
                backlog.insert(index + 1, ReplayBacklog(run, entry.patterns))
                entry.finish()
                subscriber.flush_nowait()
                return
            if hub.epoch != epoch:
                raise SourceFailed("the stream moved to another epoch")
            while len(entry.ready) >= READY_MAX_MESSAGES and subscriber.ended is None:
                await entry.wait_taken()
            messages = await source(Position(epoch, entry.after), CHUNK_ENTRIES)
            # The first entry may start before the resume position (a client of some
            # topics holds a position inside a hub batch) and the last go past `until`.
            messages = [m for m in messages if entry.after < m[0].offset <= until]
            if not messages or messages[0][0].offset != entry.after + 1:
                raise SourceFailed(f"the log no longer holds offset {entry.after + 1}")
            entry.add([Published(m, epoch, payload) for m, payload in messages])
            subscriber.flush_nowait()
    except SourceFailed as exc:
        if subscriber.ended is None:
            _reset_instead(subscriber, entry, hub, snapshot_topics, str(exc))


def _reset_instead(
    subscriber: Subscriber,
    entry: DeepReplay,
    hub: Hub,
    snapshot_topics: Callable[[list[TopicPattern]], list[str]],
    why: str,
) -> None:
    """Give up the deep replay: a reset and snapshots at the current position, one unit."""
    log.info("deep replay for %s stopped (%s): reset too_old", subscriber.peer, why)
    subscriber.backlog = [e for e in subscriber.backlog if e is not entry]
    subscriber.outbox.retain(lambda _topic: False)  # all older than the snapshots below
    current = hub.position
    reset = ResetMessage(current.epoch, current.offset, "too_old")
    topics = snapshot_topics(list(subscriber.patterns.values()))
    snapshots = [hub.current_snapshot(topic) for topic in topics]
    subscriber.stats.resets += 1
    entry.finish()
    subscriber.add_snapshots(SnapshotBurst(snapshots, current, reset), first=True)
