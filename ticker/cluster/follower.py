"""Following the cluster log into this process's hub: what edges (and `all` with Redis)
serve from.

Start from the checkpoint (with the log just before it as replay history), then read
every entry after the hub's position and fan it out, exactly as the local hub task
would. A new epoch in the log or a hole (entries trimmed while this node was away)
rebuilds from the checkpoint and sends every client away to resume: they get a reset
naming why. Redis being away keeps clients connected (heartbeats go on) and readiness
says why; nothing is skipped when it returns.
"""

from __future__ import annotations

import logging
import time

import trio

from ticker.cluster.log_codec import BadLogData, decode_checkpoint, decode_entry
from ticker.cluster.redis_log import ClusterLog, LogEntry, LogUnavailable, open_cluster_log
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.core.position import Position
from ticker.core.sequencer import StreamBroken
from ticker.server.context import ServerContext
from ticker.server.deep_replay import DeepSource, SourceFailed
from ticker.server.stats import EndReason

log = logging.getLogger("ticker.cluster")

READ_COUNT = 256
"""Entries taken per read: a catching-up edge fans out in batches of this many."""
BLOCK_MS = 1000
"""A read waits this long for new entries before it asks again."""
HISTORY_ENTRIES_PER_READ = 1000
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0


async def run_follower(
    context: ServerContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Follow the cluster log into `context.hub` and its fanout until cancelled.

    `task_status.started()` is called once the hub holds the log's state (the node can
    serve); until then readiness names what it waits for.
    """
    config = context.config
    status = context.cluster
    assert status is not None
    async with (
        open_cluster_log(
            config.redis_url, config.cluster, command_timeout_s=config.redis_timeout_s
        ) as cluster_log,
        # A blocking XREAD holds its connection: resumes read the log on their own client.
        open_cluster_log(
            config.redis_url, config.cluster, command_timeout_s=config.redis_timeout_s
        ) as reads,
    ):
        await _start(cluster_log, context)
        context.deep_source = deep_source(reads)
        task_status.started()
        retry_s = RETRY_MIN_S
        while True:
            hub = context.hub
            try:
                entries = await cluster_log.read_after(
                    hub.position, count=READ_COUNT, block_ms=BLOCK_MS
                )
            except LogUnavailable as exc:
                status.log_errors += 1
                status.problem = f"cluster log unreachable: {exc}"
                await trio.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            retry_s = RETRY_MIN_S
            status.problem = None
            try:
                _apply(context, entries)
            except _Rebuild as rebuild:
                # Before the rebuild: each close names the last position in the old stream.
                sent = _send_clients_away(context)
                log.warning(
                    "cluster log: %s; rebuilding from the checkpoint; %d clients sent away "
                    "to resume (they get a reset)",
                    rebuild,
                    sent,
                )
                await _start(cluster_log, context)


class _Rebuild(Exception):
    """The log does not continue what the hub holds (new epoch, or a trimmed hole)."""


def _apply(context: ServerContext, entries: list[LogEntry]) -> None:
    """Apply entries to the hub and fan them out; a batch per call, as the hub task does."""
    hub, status = context.hub, context.cluster
    assert status is not None
    published = []
    for entry in entries:
        if entry.position.epoch != hub.epoch:
            raise _Rebuild(f"the log moved to epoch {entry.position.epoch} from {hub.epoch}")
        try:
            messages = decode_entry(entry.position, entry.data)
            if messages[0][0].offset != hub.position.offset + 1:
                raise _Rebuild(
                    f"entries {hub.position.offset + 1}..{messages[0][0].offset - 1} were "
                    "trimmed from the log before this node read them"
                )
            published += hub.apply(messages)
        except (BadLogData, StreamBroken) as exc:
            raise _Rebuild(f"entry {entry.position} does not continue the stream: {exc}") from None
        status.applied_entries += 1
    if published:
        context.stats.published += len(published)
        context.fanout.publish(published)
        status.follow_lag_s = max(0.0, time.time() - published[-1].message.ts_us / 1e6)


def deep_source(reads: ClusterLog) -> DeepSource:
    """Resumes older than the replay buffer read the log through this (see
    `ticker.server.deep_replay`): the messages of up to N entries after a position."""

    async def read(after: Position, max_entries: int) -> list[tuple[DataMessage, bytes]]:
        try:
            entries = await reads.read_range(after, count=max_entries)
            messages: list[tuple[DataMessage, bytes]] = []
            for entry in entries:
                if entry.position.epoch != after.epoch:
                    break
                messages += decode_entry(entry.position, entry.data)
        except (LogUnavailable, BadLogData) as exc:
            raise SourceFailed(str(exc)) from None
        return messages

    return read


def _send_clients_away(context: ServerContext) -> int:
    """Before a rebuild every stream is cut (4001 with its last position): clients resume
    and get a reset (`other_epoch` or `too_old`) with fresh snapshots. Returns how many."""
    subscribers = list(context.fanout.subscribers())
    for subscriber in subscribers:
        subscriber.end(EndReason.SHUTDOWN)
    return len(subscribers)


async def _start(cluster_log: ClusterLog, context: ServerContext) -> None:
    """Load the checkpoint, the history before it and nothing else; retries until Redis
    answers and the log has something to start from."""
    status = context.cluster
    assert status is not None
    retry_s = RETRY_MIN_S
    while True:
        try:
            problem = await _load(cluster_log, context.hub, context.config.replay_max_messages)
            if problem is None:
                status.rebuilds += 1
                status.problem = None
                # Clients that subscribed meanwhile (before the first load, or during a
                # rebuild) were served the state just replaced: the log's next deltas
                # would not apply to what they hold. Cut now, before any is fanned out.
                sent = _send_clients_away(context)
                if sent:
                    log.warning("cluster log: %d clients that subscribed while the state "
                                "was loading sent away to resume", sent)  # fmt: skip
                return
            if problem != status.problem:
                log.warning("cluster log: %s", problem)
            status.problem = problem
        except LogUnavailable as exc:
            status.log_errors += 1
            status.problem = f"cluster log unreachable: {exc}"
        except BadLogData as exc:
            status.problem = f"cluster log unreadable: {exc}"
            log.error("cluster log: %s", exc)
        await trio.sleep(retry_s)
        retry_s = min(retry_s * 2, RETRY_MAX_S)


async def _load(cluster_log: ClusterLog, hub: Hub, history_messages: int) -> str | None:
    """Restore `hub` from the log; otherwise why the log has nothing to start from yet."""
    data = await cluster_log.read_checkpoint()
    last = await cluster_log.last_position()
    if data is not None:
        checkpoint = decode_checkpoint(data)
        at = checkpoint.position
        if last is None or last.epoch == at.epoch:
            following = await cluster_log.read_range(at, count=1)
            if following and _first_offset(following[0]) != at.offset + 1:
                return (
                    f"the log no longer holds what follows checkpoint {at} (entries up to "
                    f"{_first_offset(following[0]) - 1} were trimmed): waiting for a newer "
                    "checkpoint; keep cluster_log_max_entries well above the entries "
                    "written in checkpoint_interval_s"
                )
            history = await read_history(cluster_log, at, history_messages)
            hub.restore(at.epoch, at.offset, checkpoint.snapshots, history)
            log.info("following the cluster log from checkpoint %s (%d messages of history)",
                     at, len(history))  # fmt: skip
            return None
    first = await cluster_log.first_position()
    if first is None:
        return "waiting for the leading hub's first entry"
    entries = await cluster_log.read_range(Position(first.epoch, 0), count=1)
    if entries and _first_offset(entries[0]) == 1:
        hub.restore(first.epoch, 0, [])
        log.info("following the cluster log from its start (epoch %d)", first.epoch)
        return None
    return "waiting for the leading hub's first checkpoint"


def _first_offset(entry: LogEntry) -> int:
    """The offset of the first message in `entry`."""
    return decode_entry(entry.position, entry.data)[0][0].offset


async def read_history(
    cluster_log: ClusterLog, at: Position, max_messages: int
) -> list[tuple[DataMessage, bytes]]:
    """The log's messages up to and including `at`, contiguous, newest `max_messages` at
    most (fewer where the log was trimmed or the epoch began)."""
    history: list[tuple[DataMessage, bytes]] = []
    before = Position(at.epoch, at.offset + 1)
    while len(history) < max_messages:
        entries = await cluster_log.read_before(before, count=HISTORY_ENTRIES_PER_READ)
        chunk: list[tuple[DataMessage, bytes]] = []
        for entry in entries:
            if entry.position.epoch == at.epoch:
                chunk += decode_entry(entry.position, entry.data)
        expected_last = (history[0][0].offset - 1) if history else at.offset
        if not chunk or chunk[-1][0].offset != expected_last:
            break
        # Keep only the contiguous tail of the chunk.
        start = len(chunk) - 1
        while start > 0 and chunk[start - 1][0].offset == chunk[start][0].offset - 1:
            start -= 1
        history = chunk[start:] + history
        if start > 0 or len(entries) < HISTORY_ENTRIES_PER_READ:
            break
        before = entries[0].position
    return history[-max_messages:] if len(history) > max_messages else history
