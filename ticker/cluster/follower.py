"""Following the cluster log into this process's hub: what edges (and `all` with Redis)
serve from.

Start from the checkpoint (with the log just before it as replay history), then read
every entry after the hub's position and fan it out, exactly as the local hub task
would. A new epoch in the log or a hole (entries trimmed while this node was away)
rebuilds from the checkpoint and sends every client away to resume: they get a reset
naming why. Redis being away keeps clients connected (heartbeats go on) and readiness
says why; nothing is skipped when it returns. An entry that is not a ticker hub batch
(added by hand, or a format this version cannot read) is skipped, logged and counted:
positions are carried by the messages, so if it held any, the next batch shows the hole.
"""

from __future__ import annotations

import logging
import time

import trio

from ticker.cluster.log_codec import BadLogData, decode_checkpoint, decode_entry
from ticker.cluster.redis_log import (
    ClusterLog,
    LogEntry,
    LogError,
    LogUnavailable,
    open_cluster_log,
)
from ticker.cluster.status import ClusterStatus
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
FIRST_ENTRY_READ = 16
"""Entries read per request while looking for the first ticker batch after a position."""


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
        context.deep_source = deep_source(reads, status)
        task_status.started()
        retry_s = RETRY_MIN_S
        # Where the next read starts: the hub's position, or past foreign entries skipped.
        cursor = context.hub.position
        while True:
            cursor = max(cursor, context.hub.position)
            try:
                entries = await cluster_log.read_after(cursor, count=READ_COUNT, block_ms=BLOCK_MS)
            except (LogUnavailable, LogError) as exc:
                status.log_errors += 1
                what = "unreachable" if isinstance(exc, LogUnavailable) else "unreadable"
                status.problem = f"cluster log {what}: {exc}"
                await trio.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            retry_s = RETRY_MIN_S
            status.problem = None
            try:
                _apply(context, entries)
                if entries:
                    cursor = max(cursor, entries[-1].position)
            except _Rebuild as rebuild:
                # Before the rebuild: each close names the last position in the old stream.
                sent = _send_clients_away(context)
                log.warning(
                    "cluster log: %s; rebuilding from the checkpoint; %d clients sent away "
                    "to resume (they get a reset)",
                    rebuild,
                    sent,
                )
                await _start(cluster_log, context, needs=rebuild.needs)
                cursor = context.hub.position


class _Rebuild(Exception):
    """The log does not continue what the hub holds (new epoch, or a trimmed hole)."""

    def __init__(self, why: str, needs: Position | None = None) -> None:
        super().__init__(why)
        self.needs = needs
        """A hole: the checkpoint to start from must be at or after this position."""


def decode_or_skip(
    entry: LogEntry, status: ClusterStatus
) -> list[tuple[DataMessage, bytes]] | None:
    """The messages of a ticker entry; None for a foreign one (not written by a ticker hub,
    or a format this version cannot read), logged and counted once per entry.

    Skipping is safe: every message carries its offset, so an entry that held messages
    this node needed shows as a hole at the next ticker entry, and that is never skipped.
    """
    why = entry.foreign
    if why is None:
        try:
            return decode_entry(entry.position, entry.data)
        except BadLogData as exc:
            why = str(exc)
    if status.last_foreign is None or entry.position > status.last_foreign:
        status.last_foreign = entry.position
        status.foreign_entries += 1
        log.error(
            "cluster log: skipped entry %s: not a ticker hub batch (%s); only ticker "
            "hubs may write the cluster log (ticker_cluster_foreign_entries_total)",
            entry.position,
            why,
        )
    return None


def _apply(context: ServerContext, entries: list[LogEntry]) -> None:
    """Apply entries to the hub and fan them out; a batch per call, as the hub task does."""
    hub, status = context.hub, context.cluster
    assert status is not None
    published = []
    for entry in entries:
        messages = decode_or_skip(entry, status)
        if messages is None:
            continue
        if entry.position.epoch != hub.epoch:
            raise _Rebuild(f"the log moved to epoch {entry.position.epoch} from {hub.epoch}")
        first = messages[0][0].offset
        if first != hub.position.offset + 1:
            raise _Rebuild(
                f"entries {hub.position.offset + 1}..{first - 1} were trimmed from the log "
                "before this node read them, or are not readable",
                needs=Position(hub.epoch, first - 1),
            )
        try:
            published += hub.apply(messages)
        except StreamBroken as exc:
            raise _Rebuild(f"entry {entry.position} does not continue the stream: {exc}") from None
        status.applied_entries += 1
    if published:
        context.stats.published += len(published)
        context.fanout.publish(published)
        status.follow_lag_s = max(0.0, time.time() - published[-1].message.ts_us / 1e6)


def deep_source(reads: ClusterLog, status: ClusterStatus) -> DeepSource:
    """Resumes older than the replay buffer read the log through this (see
    `ticker.server.deep_replay`): the messages of up to N entries after a position,
    contiguous (a hole ends the answer there: the next read then fails on it)."""

    async def read(after: Position, max_entries: int) -> list[tuple[DataMessage, bytes]]:
        try:
            entries = await reads.read_range(after, count=max_entries)
        except (LogUnavailable, LogError) as exc:
            raise SourceFailed(str(exc)) from None
        messages: list[tuple[DataMessage, bytes]] = []
        for entry in entries:
            decoded = decode_or_skip(entry, status)
            if decoded is None:
                continue
            if entry.position.epoch != after.epoch:
                break
            if messages and decoded[0][0].offset != messages[-1][0].offset + 1:
                break  # a foreign entry took the place of ours: never serve across a hole
            messages += decoded
        return messages

    return read


def _send_clients_away(context: ServerContext) -> int:
    """Before a rebuild every stream is cut (4001 with its last position): clients resume
    and get a reset (`other_epoch` or `too_old`) with fresh snapshots. Returns how many."""
    subscribers = list(context.fanout.subscribers())
    for subscriber in subscribers:
        subscriber.end(EndReason.SHUTDOWN)
    return len(subscribers)


async def _start(
    cluster_log: ClusterLog, context: ServerContext, *, needs: Position | None = None
) -> None:
    """Load the checkpoint, the history before it and nothing else; retries until Redis
    answers and the log has something to start from (with `needs`, a checkpoint at or
    after it: the log has a hole before it)."""
    status = context.cluster
    assert status is not None
    retry_s = RETRY_MIN_S
    while True:
        try:
            problem = await _load(
                cluster_log, context.hub, context.config.replay_max_messages, status, needs
            )
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
        except (BadLogData, LogError) as exc:
            status.problem = f"cluster log unreadable: {exc}"
            log.error("cluster log: %s", exc)
        await trio.sleep(retry_s)
        retry_s = min(retry_s * 2, RETRY_MAX_S)


async def _load(
    cluster_log: ClusterLog,
    hub: Hub,
    history_messages: int,
    status: ClusterStatus,
    needs: Position | None = None,
) -> str | None:
    """Restore `hub` from the log; otherwise why the log has nothing to start from yet."""
    data = await cluster_log.read_checkpoint()
    last = await cluster_log.last_position()
    if data is not None:
        checkpoint = decode_checkpoint(data)
        at = checkpoint.position
        if needs is not None and at.epoch == needs.epoch and at < needs:
            return (
                f"the log does not hold offsets up to {needs.offset} (trimmed, or entries "
                f"this node cannot read): waiting for a checkpoint at or after {needs}"
            )
        if last is None or last.epoch == at.epoch:
            following = await _first_offset_after(cluster_log, at, status)
            if following is not None and following != at.offset + 1:
                return (
                    f"the log no longer holds what follows checkpoint {at} (entries up to "
                    f"{following - 1} were trimmed, or are not readable): waiting for a newer "
                    "checkpoint; keep cluster_log_max_entries well above the entries "
                    "written in checkpoint_interval_s"
                )
            history = await read_history(cluster_log, at, history_messages, status)
            hub.restore(at.epoch, at.offset, checkpoint.snapshots, history)
            log.info("following the cluster log from checkpoint %s (%d messages of history)",
                     at, len(history))  # fmt: skip
            return None
    first = await cluster_log.first_position()
    if first is None:
        return "waiting for the leading hub's first entry"
    # (After a hole in this epoch the start of the log would only lead to it again.)
    starts = needs is None or needs.epoch != first.epoch
    if starts and await _first_offset_after(cluster_log, Position(first.epoch, 0), status) == 1:
        hub.restore(first.epoch, 0, [])
        log.info("following the cluster log from its start (epoch %d)", first.epoch)
        return None
    return "waiting for the leading hub's first checkpoint"


async def _first_offset_after(
    cluster_log: ClusterLog, after: Position, status: ClusterStatus
) -> int | None:
    """The offset of the first message of the first ticker entry after `after` in its
    epoch (foreign entries skipped), or None if there is none."""
    while True:
        entries = await cluster_log.read_range(after, count=FIRST_ENTRY_READ)
        for entry in entries:
            if entry.position.epoch != after.epoch:
                return None
            messages = decode_or_skip(entry, status)
            if messages is not None:
                return messages[0][0].offset
        if len(entries) < FIRST_ENTRY_READ:
            return None
        after = entries[-1].position


async def read_history(
    cluster_log: ClusterLog, at: Position, max_messages: int, status: ClusterStatus
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
                chunk += decode_or_skip(entry, status) or []
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
