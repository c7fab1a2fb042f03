"""Leading the cluster: the lease, the rebuild, the fenced appends and the checkpoints.

A hub process contends for the lease; the one that holds it rebuilds its hub from the
checkpoint and the log after it, starts the venues, and appends every published batch
(already encoded) to the log, fenced by the lease token so that a hub that lost the lease,
even one paused past it and woken up, can never write. Batches Redis cannot take yet are
held (bounded: past the bound the hub task waits, and so ingest). Losing the lease, or
being fenced, ends the term: venues stop, held batches are dropped (they were never in
the log, so no client saw them), and the process stands by again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import trio

from ticker.cluster.follower import decode_or_skip
from ticker.cluster.log_codec import (
    BadLogData,
    Checkpoint,
    decode_checkpoint,
    encode_checkpoint,
    encode_entries,
)
from ticker.cluster.redis_log import ClusterLog, Fenced, LogUnavailable, open_cluster_log
from ticker.cluster.status import ClusterStatus
from ticker.config import Config
from ticker.core.hub import Hub, Published
from ticker.core.position import Position, new_epoch
from ticker.core.sequencer import StreamBroken
from ticker.model.events import NormalizedEvent
from ticker.server.context import ServerContext
from ticker.server.hub_batch import HubRejections, publish_batch

log = logging.getLogger("ticker.cluster")

RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
REBUILD_READ_ENTRIES = 1000
REBUILD_FAILED_PAUSE_S = 5.0
"""After a rebuild failed on the log's content, wait this long before leading again."""

StartVenues = Callable[[trio.Nursery], Awaitable[None]]
"""Starts the venue tasks of one term in the given nursery (they end with the term)."""


class LeaseLost(Exception):
    """The lease is gone: another hub leads, or it expired and could not be taken back."""


def writer_config(config: Config) -> Config:
    """The writer hub of `all` needs no replay buffer: the fanout's follower hub has it."""
    return dataclasses.replace(config, replay_max_messages=1)


async def run_leadership(
    context: ServerContext,
    writer: Hub,
    events: trio.MemoryReceiveChannel[Sequence[NormalizedEvent]],
    start_venues: StartVenues,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Contend for the lease; lead while it is held; stand by otherwise. Never returns.

    Args:
        context: the process's shared state (`context.cluster` is written here).
        writer: the hub that sequences while this process leads (rebuilt per term).
        events: the hub's input (venues and publishers); read only while leading.
        start_venues: starts this term's venue tasks.
    """
    config = context.config
    status = context.cluster
    assert status is not None
    token = secrets.token_hex(16)
    ttl_ms = max(1, int(config.lease_ttl_s * 1000))
    async with open_cluster_log(
        config.redis_url, config.cluster, command_timeout_s=config.redis_timeout_s
    ) as cluster_log:
        task_status.started()
        while True:
            try:
                taken = await cluster_log.acquire_lease(token, ttl_ms)
            except LogUnavailable as exc:
                status.log_errors += 1
                status.problem = f"cluster log unreachable: {exc}"
                taken = False
            if not taken:
                await trio.sleep(config.lease_ttl_s / 4)
                continue
            status.leading = True
            status.rebuilding = True
            status.lease_changes += 1
            status.problem = None
            log.info("took the lease of cluster %s; rebuilding the hub", config.cluster)
            pause_s = config.lease_ttl_s / 4
            try:
                await _lead(cluster_log, token, ttl_ms, context, writer, events, start_venues)
            except* (LeaseLost, Fenced) as stepped:
                log.warning("stepped down: %s", stepped.exceptions[0])
            except* LogUnavailable as lost:  # e.g. Redis went away during the rebuild
                status.log_errors += 1
                log.warning("stepped down: cluster log unreachable: %s", lost.exceptions[0])
            except* (BadLogData, StreamBroken) as broken:
                # The log cannot be continued from what it holds (a checkpoint the log no
                # longer follows, data we did not write): not a hub's decision to repair.
                status.problem = f"cannot rebuild from the cluster log: {broken.exceptions[0]}"
                log.error("stepped down: %s", status.problem)
                pause_s = REBUILD_FAILED_PAUSE_S
            finally:
                status.leading = False
                status.rebuilding = False
                status.held_batches = 0
                status.lease_changes += 1
                # Also on a graceful stop (cancelled): a standby then leads at once
                # instead of after the lease's TTL. Safe against our own appends still
                # in flight: from here on they are fenced.
                await _release(cluster_log, token, config.redis_timeout_s)
            await trio.sleep(pause_s)


async def _release(cluster_log: ClusterLog, token: str, timeout_s: float) -> None:
    """Free the lease if we hold it, bounded and shielded (it runs while cancelled too)."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(timeout_s),
        contextlib.suppress(LogUnavailable),
    ):
        await cluster_log.release_lease(token)


async def _lead(
    cluster_log: ClusterLog,
    token: str,
    ttl_ms: int,
    context: ServerContext,
    writer: Hub,
    events: trio.MemoryReceiveChannel[Sequence[NormalizedEvent]],
    start_venues: StartVenues,
) -> None:
    """One term: rebuild, then venues -> writer -> held batches -> the log, until fenced."""
    config = context.config
    status = context.cluster
    assert status is not None
    # The lease is renewed from the start: a rebuild can take longer than the lease. Until
    # it is done, a lapsed lease is not taken back (no entry is "ours" yet).
    appended = _Appended(Position(0, 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_keep_lease, cluster_log, token, ttl_ms, appended, config)
        await _rebuild(cluster_log, writer, config, status)
        log.info("leading cluster %s from %s", config.cluster, writer.position)
        appended.position = writer.position
        hold_send, hold_receive = trio.open_memory_channel[list[Published] | Checkpoint](
            config.cluster_hold_batches
        )
        nursery.start_soon(_append, cluster_log, token, ttl_ms, hold_receive, appended, context)
        nursery.start_soon(_write, writer, events, hold_send, context)
        await start_venues(nursery)
        status.rebuilding = False  # rebuilt and the venues started: ready to lead


class _Appended:
    """The position of the last batch the log took (what a lease may be taken back at)."""

    __slots__ = ("position",)

    def __init__(self, position: Position) -> None:
        self.position = position


async def _rebuild(
    cluster_log: ClusterLog, writer: Hub, config: Config, status: ClusterStatus
) -> None:
    """The writer takes the log's state: checkpoint, then every entry after it (foreign
    entries skipped: a hole they leave fails `apply` with StreamBroken)."""
    epoch = await cluster_log.epoch(new_epoch(time.time_ns(), random.Random()))
    data = await cluster_log.read_checkpoint()
    checkpoint = decode_checkpoint(data) if data is not None else None
    if checkpoint is not None and checkpoint.position.epoch == epoch:
        writer.restore(epoch, checkpoint.position.offset, checkpoint.snapshots)
    else:
        writer.restore(epoch, 0, [])
    after = writer.position
    while True:
        entries = await cluster_log.read_range(after, count=REBUILD_READ_ENTRIES)
        entries = [e for e in entries if e.position.epoch == epoch]
        if not entries:
            break
        for entry in entries:
            messages = decode_or_skip(entry, status)
            if messages is not None:
                writer.apply(messages)
        after = entries[-1].position
    writer.consolidator.adopt()


async def _write(
    writer: Hub,
    events: trio.MemoryReceiveChannel[Sequence[NormalizedEvent]],
    hold: trio.MemorySendChannel[list[Published] | Checkpoint],
    context: ServerContext,
) -> None:
    """The single writer of a term: take what waits (up to a batch), publish it, hold it
    for the log; every `checkpoint_interval_s` a checkpoint follows the batch it reflects."""
    config, stats = context.config, context.stats
    status = context.cluster
    assert status is not None
    limit = config.publish_batch_events
    rejections = HubRejections(stats)
    next_checkpoint = trio.current_time() + config.checkpoint_interval_s
    while True:
        batch = list(await events.receive())
        try:
            while len(batch) < limit:
                batch += events.receive_nowait()
        except trio.WouldBlock:
            pass
        now_ns = time.time_ns()
        published = publish_batch(writer, batch, now_ns, rejections)
        stats.ingest_events += len(batch)
        if writer is context.hub:  # a hub-role node: its own hub is the writer
            stats.published += len(published)
        if published:
            status.held_batches += 1
            try:
                # No scheduler pass here when the hold has room: this task goes on to
                # wait for events at once, so the process sleeps (and Redis, often on
                # the same core, runs) as soon as the append task has sent the batch.
                hold.send_nowait(published)
            except trio.WouldBlock:
                await hold.send(published)  # full (Redis slow or away): wait, as ingest does
        if trio.current_time() >= next_checkpoint:
            next_checkpoint = trio.current_time() + config.checkpoint_interval_s
            await hold.send(Checkpoint(writer.position, writer.checkpoint()))


async def _append(
    cluster_log: ClusterLog,
    token: str,
    ttl_ms: int,
    hold: trio.MemoryReceiveChannel[list[Published] | Checkpoint],
    appended: _Appended,
    context: ServerContext,
) -> None:
    """Append held batches in order; a batch Redis cannot take now is retried, never
    skipped (the stream must not have holes). Fenced ends the term, unless the lease
    merely lapsed while Redis was away and nobody appended since: then it is taken back
    here (as `_keep_lease` would on its next round) and the append goes on."""
    config = context.config
    status = context.cluster
    assert status is not None
    async for item in hold:
        retry_s = RETRY_MIN_S
        while True:
            try:
                if isinstance(item, Checkpoint):
                    await cluster_log.write_checkpoint(token, encode_checkpoint(item))
                    status.checkpoints += 1
                else:
                    # A large batch goes as several entries (bounded bytes per entry); a
                    # retry after a failure resends from the first entry not yet taken.
                    for position, data in encode_entries(item, config.cluster_log_max_entry_bytes):
                        if position <= appended.position:
                            continue
                        await cluster_log.append(
                            token, position, data, max_entries=config.cluster_log_max_entries
                        )
                        appended.position = position
                        status.appended_entries += 1
                    status.appended_batches += 1
                    status.held_batches -= 1
                status.problem = None
                break
            except LogUnavailable as exc:
                status.log_errors += 1
                status.problem = f"cluster log unreachable: {exc}; holding published batches"
                await trio.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
            except Fenced:
                taken_back = False
                with contextlib.suppress(LogUnavailable):
                    taken_back = await _take_back(cluster_log, token, ttl_ms, appended)
                if not taken_back:
                    raise


async def _keep_lease(
    cluster_log: ClusterLog,
    token: str,
    ttl_ms: int,
    appended: _Appended,
    config: Config,
) -> None:
    """Renew the lease every third of its time. If it lapsed (Redis was away), take it
    back only if nobody appended meanwhile; otherwise the term ends."""
    period = config.lease_ttl_s / 3
    while True:
        await trio.sleep(period)
        try:
            if await cluster_log.renew_lease(token, ttl_ms):
                continue
            if await _take_back(cluster_log, token, ttl_ms, appended):
                continue
        except LogUnavailable:
            continue  # appends are fenced: holding on is safe until Redis answers
        raise LeaseLost("another hub holds the lease, or appended after it lapsed")


async def _take_back(cluster_log: ClusterLog, token: str, ttl_ms: int, appended: _Appended) -> bool:
    """Take a lease that lapsed (Redis was away) back, only if nobody appended since our
    last entry. Raises LogUnavailable when Redis does not answer."""
    if not await cluster_log.acquire_lease(token, ttl_ms, only_if_last=appended.position):
        return False
    log.warning("lease lapsed while Redis was away; taken back at %s", appended.position)
    return True
