"""One streaming connection as the fanout sees it: outbox, write path and its end.

The fanout hands each connection its part of a batch synchronously (`publish`): when
the socket is idle it is written at once, with bytes framed once and shared by every
connection that wants the same part; otherwise it joins the outbox, and `flush_nowait`
writes whatever waits in one send. Only when the kernel buffer is full, or a resume's
replay is still to be written, does a drain task take over: bounded by the write timeout,
a replay slice per turn of the event loop. Every way a connection ends goes through
`end`, once. It owns a non-blocking socket; it never awaits in `publish` or
`flush_nowait`, so the fanout never waits on one subscriber.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import trio

from ticker.core.hub import Hub, Published
from ticker.core.messages import Reset
from ticker.core.outbox import Offer, Outbox
from ticker.core.position import Position
from ticker.core.replay import Evicted, ReplayRun
from ticker.core.topics import TopicPattern
from ticker.server.framing import Framing
from ticker.server.shared_write import SharedWrite
from ticker.server.stats import EndReason, ServerStats
from ticker.wire.transport import Transport

log = logging.getLogger("ticker.server")

MAX_WRITE_BYTES = 1024 * 1024
"""A single write carries at most about this much replay backlog."""

MAX_REPLAY_SCAN = 512
"""A write looks at most this many replay entries (matching topics, framing): the work a
resume may do in one turn of the event loop, whatever the replay buffer holds. About
1 ms (WebSocket) to 5 ms (SSE, rendering JSON on first use) per turn
(benchmarks/bench_resume.py)."""


class Membership(Protocol):
    """What a connection needs of the tree that holds it: to leave it when it ends.
    (The fanout implements it; this module must not import the fanout.)"""

    def remove(self, subscriber: Subscriber) -> None: ...


class SnapshotBurst:
    """Snapshots consistent with `position`, to be written as one unit that ends with a
    heartbeat at `position` (each snapshot carries its own topic's last offset).

    After a reset, the reset travels in the same unit, first: a client cut between the
    two would hold the reset's position without the state it names. Such a burst may
    have no snapshots (nothing matches) and is written all the same.
    """

    __slots__ = ("items", "position", "reset", "size")

    def __init__(
        self, items: list[Published], position: Position, reset: Reset | None = None
    ) -> None:
        if not items and reset is None:
            raise ValueError("a burst without a reset needs snapshots")
        if reset is not None and Position(reset.epoch, reset.offset) != position:
            raise ValueError("a reset's snapshots are consistent with its position")
        self.items = items
        self.position = position
        self.reset = reset
        self.size = sum(item.size for item in items)
        """Bytes it holds against the connection's outbox bound while it waits."""


class ReplayBacklog:
    """A resume's replay waiting in the backlog: a run over the replay buffer and the
    patterns it serves (narrowed when the connection unsubscribes)."""

    __slots__ = ("_wanted", "patterns", "run")

    def __init__(self, run: ReplayRun[Published], patterns: list[TopicPattern]) -> None:
        self.run = run
        self.patterns = patterns
        # Topic -> wanted: a replay has up to a whole buffer of messages but few topics.
        self._wanted: dict[str, bool] = {}

    def wants(self, item: Published) -> bool:
        """Whether `item` goes out on this replay."""
        topic = item.topic
        wanted = self._wanted.get(topic)
        if wanted is None:
            wanted = self._wanted[topic] = any(p.matches(topic) for p in self.patterns)
        return wanted

    def narrow(self, patterns: list[TopicPattern]) -> None:
        """Serve only `patterns` from now on (after an unsubscribe)."""
        self.patterns = patterns
        self._wanted.clear()


class DeepReplay:
    """A resume's replay read from a deeper log than the replay buffer (the cluster log):
    messages a fetch task has read and not yet handed to the writer
    (`ticker.server.deep_replay`). Until it is `done`, nothing behind it is written."""

    __slots__ = ("_taken", "_wanted", "after", "arrived", "done", "patterns", "ready")

    def __init__(self, after: int, patterns: list[TopicPattern]) -> None:
        self.after = after
        self.patterns = patterns
        self.ready: list[Published] = []
        self.done = False
        self.arrived = trio.Event()
        self._taken = trio.Event()
        self._wanted: dict[str, bool] = {}

    def add(self, items: list[Published]) -> None:
        """Messages read from the log, in order (only the wanted ones are kept)."""
        wanted = self._wanted
        for item in items:
            keep = wanted.get(item.topic)
            if keep is None:
                keep = wanted[item.topic] = any(p.matches(item.topic) for p in self.patterns)
            if keep:
                self.ready.append(item)
        self.after = items[-1].offset
        self._wake()

    def take(self, max_bytes: int, size: Callable[[Published], int]) -> list[Published]:
        """The ready messages up to about `max_bytes`, oldest first."""
        count = 0
        budget = max_bytes
        for item in self.ready:
            if budget <= 0:
                break
            budget -= size(item)
            count += 1
        taken, self.ready = self.ready[:count], self.ready[count:]
        if taken:
            self._taken.set()
            self._taken = trio.Event()
        return taken

    def narrow(self, patterns: list[TopicPattern]) -> None:
        """Serve only `patterns` from now on (after an unsubscribe)."""
        self.patterns = patterns
        wanted = self._wanted
        wanted.clear()
        # At most READY_MAX_MESSAGES ready, of few topics: one match per topic.
        for topic in {item.topic for item in self.ready}:
            wanted[topic] = any(p.matches(topic) for p in patterns)
        self.ready = [item for item in self.ready if wanted[item.topic]]

    def finish(self) -> None:
        """The fetch ended: the replay buffer (or a reset) follows in the backlog."""
        self.done = True
        self._wake()

    async def wait_taken(self) -> None:
        await self._taken.wait()

    def _wake(self) -> None:
        self.arrived.set()
        self.arrived = trio.Event()


class Subscriber:
    """One WebSocket or SSE connection's fanout-side state.

    Slotted: thousands exist at once and a per-instance dict was a large part of the
    memory an idle connection costs.
    """

    __slots__ = (
        "__weakref__",
        "backlog",
        "bytes",
        "closing_sent",
        "control",
        "delivered_offset",
        "draining",
        "dropping",
        "ended",
        "epoch",
        "fanout",
        "framing",
        "heartbeat_due",
        "hub",
        "messages",
        "nursery",
        "opened_at",
        "outbox",
        "patterns",
        "peer",
        "pending",
        "pending_offset",
        "rate_limited",
        "sock",
        "stats",
        "write_timeout_s",
    )

    def __init__(
        self,
        sock: Transport,
        peer: str,
        framing: Framing,
        hub: Hub,
        stats: ServerStats,
        *,
        outbox_max_bytes: int,
        write_timeout_s: float,
        rate_limited: bool = False,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.framing = framing
        self.hub = hub
        # The epoch of the stream this connection is served (its hello's): a follower's
        # hub may be restored to another epoch before a deferred close is sent.
        self.epoch = hub.epoch
        self.stats = stats
        self.outbox: Outbox[Published] = Outbox(outbox_max_bytes)
        self.write_timeout_s = write_timeout_s
        self.rate_limited = rate_limited
        self.patterns: dict[str, TopicPattern] = {}
        self.backlog: list[SnapshotBurst | ReplayBacklog | DeepReplay] = []
        self.control: list[bytes] = []
        # After an unsubscribe, topic -> still wanted, for what was queued before it
        # (filtered as it is written, so an unsubscribe never walks the queue); None
        # when everything queued is wanted.
        self.dropping: dict[str, bool] | None = None
        self.heartbeat_due = False
        self.draining = False
        self.pending: memoryview | None = None
        self.pending_offset = 0
        self.delivered_offset = 0
        self.messages = 0
        self.bytes = 0
        self.opened_at = time.monotonic()
        self.ended: EndReason | None = None
        self.closing_sent = False
        self.fanout: Membership | None = None
        self.nursery: trio.Nursery | None = None

    # -- called by the fanout, synchronously ----------------------------------------

    def publish(self, shared: SharedWrite) -> None:
        """Take this connection's part of a batch; write it now if the socket is idle.

        The common case (nothing queued, no write in progress) writes the group's shared
        bytes straight into the socket without touching the outbox. Never blocks. (The
        fanout gives a whole group its part at once with `publish_to`.)
        """
        publish_to((self,), shared)

    def _queue(self, shared: SharedWrite) -> None:
        """The part of a batch for a connection that cannot take it in one write now:
        queue it (conflating, or evicting on overflow) behind what waits, and write
        what can be written."""
        if self.rate_limited:
            self._offer_rate_limited(shared.items)
            return
        result, conflated = self.outbox.offer_all(shared.items)
        self.stats.conflations += conflated
        if result is Offer.EVICT:
            self.end(EndReason.SLOW_OUTBOX)
            return
        self.flush_nowait()

    def add_snapshots(self, burst: SnapshotBurst, *, first: bool = False) -> None:
        """Queue a burst of snapshots (after any replay; `first`: before everything) and
        write what can be written now.

        Its bytes count against the outbox bound until written: a burst that does not
        fit behind what already waits ends the connection as a slow consumer, so
        subscribing over and over on a connection that does not read costs bounded
        memory.
        """
        if self.ended is not None:
            return
        if not self.outbox.hold(burst.size):
            self.end(EndReason.SLOW_OUTBOX)
            return
        if first:
            self.backlog.insert(0, burst)
        else:
            self.backlog.append(burst)
        self.flush_nowait()

    def patterns_changed(self, *, narrowed: bool) -> None:
        """Call after `patterns` changed. After an unsubscribe (`narrowed`), what is
        queued for topics no longer wanted is dropped as it comes up to be written: O(1)
        now, whatever is queued. After a subscribe, a topic wanted again is kept."""
        if narrowed or self.dropping is not None:
            self.dropping = {}

    def flush_nowait(self) -> None:
        """Write what waits now if the socket is idle; hand the rest to a drain task."""
        if self.draining or self.ended is not None:
            return
        data = self._collect()
        if data is not None:
            self._send(data)
        elif self.backlog and self.ended is None:
            self._start_drain()  # a replay slice that matched nothing: the rest goes later

    def _offer_rate_limited(self, items: list[Published]) -> None:
        """A rate-limited stream conflates latest-value topics and writes on its ticks."""
        for item in items:
            if item.conflatable:
                self.outbox.conflate(item.topic)
                continue
            result = self.outbox.offer(item)
            if result is Offer.EVICT:
                self.end(EndReason.SLOW_OUTBOX)
                return
            if result is Offer.CONFLATED:
                self.stats.conflations += 1

    def _send(self, data: bytes) -> None:
        """Write `data` (counted, bringing us to `pending_offset`) or start a drain."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.end(EndReason.PEER_RESET)
            return
        if sent == len(data):
            self.delivered_offset = self.pending_offset
            if self.backlog:
                self._start_drain()  # the rest of a replay, on later turns of the loop
            return
        self.pending = memoryview(data)[sent:]
        self._start_drain()

    def _start_drain(self) -> None:
        self.draining = True
        assert self.nursery is not None
        self.nursery.start_soon(self._drain)

    # -- the end of a connection -----------------------------------------------------

    def end(self, reason: EndReason) -> None:
        """End this connection for `reason` (first call wins); frees it from the fanout.

        A slow or shut-down WebSocket gets a close frame naming the last position it was
        sent (an SSE stream an `end` event). At shutdown, a write in progress is finished
        first, with whatever was queued behind it (but not the rest of a replay), within
        the write timeout, so the closing message can follow whole frames; otherwise a
        half-written frame means the TCP connection is just closed.
        """
        if self.ended is not None:
            return
        self.ended = reason
        if self.fanout is not None:
            self.fanout.remove(self)
        if reason is EndReason.SHUTDOWN and self.draining:
            return  # the drain task finishes the write, then calls _close()
        self._close()

    def _close(self) -> None:
        """Send the closing message if no frame is half-written; stop the session."""
        if self.pending is None and self.ended is not None and not self.closing_sent:
            self.closing_sent = True
            position = f"{self.epoch}-{self.delivered_offset}"
            closing = self.framing.closing(self.ended, position)
            if closing:
                with contextlib.suppress(OSError):
                    self.sock.send(closing)
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    # -- internals -------------------------------------------------------------------

    def _collect(self) -> bytes | None:
        """Everything to write now as one buffer, and the offset it brings us to."""
        framing = self.framing
        now_ns = time.time_ns()
        parts: list[bytes] = []
        if self.control:
            parts += self.control
            self.control.clear()
        count = 0
        last = 0
        if self.backlog:
            budget = MAX_WRITE_BYTES
            backlog = self.backlog
            taken = 0
            while taken < len(backlog) and budget > 0:
                entry = backlog[taken]
                if isinstance(entry, DeepReplay):
                    fetched = entry.take(budget, lambda item: len(framing.frame(item)))
                    for item in fetched:
                        frame = framing.frame(item)
                        parts.append(frame)
                        budget -= len(frame)
                    if fetched:
                        count += len(fetched)
                        last = fetched[-1].offset
                    if not (entry.done and not entry.ready):
                        break  # waiting for the log: nothing behind it may go first
                    taken += 1
                    continue
                if isinstance(entry, ReplayBacklog):
                    items = entry.run.take(
                        entry.wants,
                        lambda item: len(framing.frame(item)),
                        max_scanned=MAX_REPLAY_SCAN,
                        max_bytes=budget,
                    )
                    if isinstance(items, Evicted):
                        # Fell a whole buffer behind: no way to go on without a gap.
                        self.end(EndReason.SLOW_REPLAY)
                        return None
                    for item in items:
                        frame = framing.frame(item)
                        parts.append(frame)
                        budget -= len(frame)
                    if items:
                        count += len(items)
                        last = items[-1].offset
                    if not entry.run.done:
                        break  # the rest on a later turn of the loop, before anything else
                    taken += 1
                    continue
                taken += 1
                self.outbox.release(entry.size)
                snapshots = entry.items
                if self.dropping is not None:
                    snapshots = [item for item in snapshots if self._still_wanted(item.topic)]
                    if not snapshots and entry.reset is None:
                        continue  # unsubscribed from all of it meanwhile
                parts.append(framing.snapshots(snapshots, entry.position, now_ns, entry.reset))
                count += len(snapshots)
                budget -= len(parts[-1])
                last = entry.position.offset
            del backlog[:taken]
        if not self.backlog and self.outbox:
            batch = self.outbox.take()
            items, topics = batch.items, batch.snapshot_topics
            if self.dropping is not None:
                items = [item for item in items if self._still_wanted(item.topic)]
                topics = [topic for topic in topics if self._still_wanted(topic)]
            for queued in items:
                parts.append(framing.frame(queued))
                last = queued.offset
            count += len(items)
            if topics:
                # Consistent with the current position, which every queued item
                # written before them is at or below.
                position = self.hub.position
                burst = [self.hub.current_snapshot(t) for t in topics]
                parts.append(framing.snapshots(burst, position, now_ns))
                last = position.offset
                count += len(burst)
        if not self.backlog and not self.outbox:
            self.dropping = None  # everything queued before the unsubscribe is gone
        if self.heartbeat_due and not self.backlog:
            self.heartbeat_due = False
            parts.append(framing.heartbeat(self.hub.position, now_ns))
        if not parts:
            return None
        if last:
            self.pending_offset = last
        data = framing.wrap(parts)
        self._count(count, data)
        return data

    def _still_wanted(self, topic: str) -> bool:
        dropping = self.dropping
        assert dropping is not None
        wanted = dropping.get(topic)
        if wanted is None:
            wanted = dropping[topic] = any(p.matches(topic) for p in self.patterns.values())
        return wanted

    def _replaying(self) -> bool:
        return any(isinstance(entry, ReplayBacklog | DeepReplay) for entry in self.backlog)

    def _count(self, messages: int, data: bytes) -> None:
        stats = self.stats
        stats.writes += 1
        stats.messages_sent += messages
        stats.bytes_sent += len(data)
        if messages > 1:
            stats.coalesced_writes += 1
        self.messages += messages
        self.bytes += len(data)

    async def _drain(self) -> None:
        """Finish a write the kernel could not take at once, then whatever followed.

        A replay in the backlog goes out one slice per pass, and every pass lets the
        event loop run (waiting for the socket, or a bare checkpoint when a slice
        matched nothing), so other connections are served between slices.
        """
        try:
            while True:
                if self.pending is not None:
                    with trio.move_on_after(self.write_timeout_s) as deadline:
                        while self.pending:
                            await trio.lowlevel.wait_writable(self.sock)
                            try:
                                sent = self.sock.send(self.pending)
                            except BlockingIOError:
                                continue
                            self.pending = self.pending[sent:]
                    if deadline.cancelled_caught:
                        self.end(EndReason.SLOW_WRITE)
                        return
                    self.pending = None
                    self.delivered_offset = self.pending_offset
                else:
                    head = self.backlog[0] if self.backlog else None
                    if isinstance(head, DeepReplay) and not head.ready and not head.done:
                        await head.arrived.wait()  # the log is being read
                    else:
                        await trio.lowlevel.checkpoint()
                if self.ended is not None and self._replaying():
                    return  # shutting down: the client resumes the rest elsewhere
                data = self._collect()
                if data is not None:
                    self.pending = memoryview(data)
                elif not self.backlog or self.ended is not None:
                    return
        except OSError:
            self.end(EndReason.PEER_RESET)
        finally:
            self.draining = False
            if self.ended is not None:
                self._close()  # a shutdown waited for this write to finish


def publish_to(subscribers: Iterable[Subscriber], shared: SharedWrite) -> None:
    """Give every one of `subscribers` the same part of a batch (`Subscriber.publish`).

    This is the fanout's per-connection step, so the idle case (nothing queued, no write
    in progress) is written here inline: the shared bytes go straight into the socket
    with no Python call per connection besides the `send()` itself, and the server's
    counters are added up once per call. (With one message per write, those calls and
    counters cost about a tenth of a delivery.) Everything else (a write in progress,
    something queued, a rate-limited stream, a part larger than the outbox bound) goes
    through `Subscriber._queue`. Never blocks.
    """
    count = len(shared.items)
    last = shared.last_offset
    framing: Framing | None = None
    data = b""
    size = 0
    # Writes and bytes not yet added to `stats` (every connection of a server shares one).
    stats: ServerStats | None = None
    writes = written = 0
    try:
        for sub in subscribers:
            if sub.ended is not None:
                continue
            if (
                sub.draining
                or sub.heartbeat_due
                or sub.rate_limited
                or sub.control
                or sub.backlog
                or sub.outbox.waiting
            ):
                sub._queue(shared)
                continue
            if sub.framing is not framing:
                framing = sub.framing
                data = shared.data(framing)
                size = len(data)
            if size > sub.outbox.max_bytes:
                sub._queue(shared)
                continue
            if sub.stats is not stats:
                if stats is not None:
                    _count_writes(stats, writes, written, count)
                stats = sub.stats
                writes = written = 0
            writes += 1
            written += size
            sub.messages += count
            sub.bytes += size
            sub.pending_offset = last
            try:
                sent = sub.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sub.end(EndReason.PEER_RESET)
                continue
            if sent == size:
                sub.delivered_offset = last
            else:  # the rest by a drain task (the backlog is empty: nothing else waits)
                sub.pending = memoryview(data)[sent:]
                sub._start_drain()
    finally:
        if stats is not None:
            _count_writes(stats, writes, written, count)


def _count_writes(stats: ServerStats, writes: int, written: int, messages: int) -> None:
    """Count `writes` writes of `messages` messages each, `written` bytes in all."""
    stats.writes += writes
    stats.messages_sent += writes * messages
    stats.bytes_sent += written
    if messages > 1:
        stats.coalesced_writes += writes
