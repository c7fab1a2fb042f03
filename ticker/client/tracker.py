"""The client's view of the stream: topic state, position, gaps and resets.

It takes what one connection receives, one unit at a time (a WebSocket frame's bytes,
decoded here, or SSE events up to one carrying an `id:`), keeps every topic's state in
a `Mirror`, checks every per-topic sequence, and turns messages into `Update`s
(the usual delta in one pass, everything else by every rule). It decides where to resume
from, when a gap needs a resync, and which topics a reset rebuilt or dropped; the
answers are values the connection loop acts on. Pure: no sockets, no clocks (`now_ns`
comes in), so every rule here is tested without an event loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgpack

from ticker.client.errors import FeedProtocolError
from ticker.client.stats import FeedStats
from ticker.client.updates import Loss, Update, UpdateKind, book_update
from ticker.core.codec import DELTA, decode_frame, decode_server
from ticker.core.delta import book_data
from ticker.core.messages import (
    PROTOCOL_VERSION,
    DataMessage,
    Error,
    Heartbeat,
    Hello,
    Reset,
    ServerMessage,
)
from ticker.core.mirror import BOOK, Mirror, RefusalReason, Refused
from ticker.core.position import Position
from ticker.core.topics import ChannelKind, channel_kind
from ticker.errors import BadMessage

GAP_REASON = "gap"
CHECKSUM_REASON = "checksum"
"""A book failed its checksum: the client re-snapshots, as after a gap it cannot replay."""
SKIPPED_REASON = "skipped"
RESUBSCRIBED_REASON = "resubscribed"
"""A first subscription's connection ended before any data: the next one subscribed
afresh, and the stream had moved on since the first hello."""


_unpackb = msgpack.unpackb


class _Outcome(enum.Enum):
    DUPLICATE = "duplicate"
    """Already applied (a replay after a gap resync overlaps what is held): skipped."""
    RESYNC = "resync"
    """A gap: the position was rewound or a re-snapshot begun."""


class Step(NamedTuple):
    """What one unit produced, and what the connection loop must do next (a NamedTuple:
    one is built per unit, at a third of a frozen dataclass's cost).

    Attributes:
        updates: to hand to the caller, in order.
        resync: a sequence gap was found: end this connection and reconnect at once
            from `Tracker.resume_position()` (replay from before the gap, or fresh
            snapshots). Messages after the gap in this unit were not applied.
        refusal: the server refused the subscription, or some of its patterns (an
            `error` message; the rest of its unit was applied).
    """

    updates: list[Update]
    resync: bool = False
    refusal: Error | None = None


@dataclass(slots=True)
class _PendingReset:
    """A reset in progress: topics are forgotten until their snapshots arrive.

    `until` is None for a re-snapshot the client asked for itself (subscribing without
    a position): then the heartbeat ending the burst names it (an older server: the
    first snapshot's offset).
    """

    after: Position | None
    until: Position | None
    reason: str
    awaiting: dict[str, None] = field(default_factory=dict)
    rebuilt: bool = False


class Tracker:
    """Topic state, stream position and loss accounting of one feed.

    Args:
        stats: counters to bump (resets, gaps, duplicates, latency).
    """

    def __init__(self, stats: FeedStats | None = None) -> None:
        self.stats = stats if stats is not None else FeedStats()
        self.mirror = Mirror()
        self.epoch: int | None = None
        """The epoch of the stream the current connection follows (from its hello)."""
        self.heartbeat_s: float | None = None
        """The server's heartbeat period from the last hello (None: not told)."""
        self.position: Position | None = None
        """The position of the last unit processed completely."""
        self._topic_offsets: dict[str, int] = {}
        self._pending: _PendingReset | None = None
        self._first_hello: Position | None = None
        """The first connection's hello position, while no data has arrived yet."""
        self._resubscribed_after: Position | None = None
        """Set on a fresh resubscription: snapshots of a stream that moved on since the
        first hello are reported as RESETs (what happened in between may be missing)."""

    # -- what the connection loop asks ------------------------------------------------

    def resume_position(self) -> Position | None:
        """The position to subscribe with on the next connection (None: fresh snapshots).

        During a reset whose snapshots have not all arrived, it is still the position
        from before the reset, so the server answers with the reset again.
        """
        if self._pending is not None and self._pending.until is None:
            return None
        return self.position

    def resnapshotting(self) -> str | None:
        """Why every topic waits for a fresh snapshot (`gap`, `checksum`), or None."""
        pending = self._pending
        return pending.reason if pending is not None and pending.until is None else None

    def state(self, topic: str) -> dict[str, Any] | None:
        """The topic's whole state, or None when it is not held."""
        return self.mirror.data(topic) if topic in self.mirror else None

    def topics(self) -> list[str]:
        """Every topic whose state is held."""
        return self.mirror.topics()

    def connected(self) -> None:
        """A new connection starts: its hello will say which epoch it follows."""
        self.epoch = None
        self.heartbeat_s = None
        if self.position is None and self._pending is None:
            self._resubscribed_after = self._first_hello

    # -- the stream ---------------------------------------------------------------------

    def receive_frame(self, frame: bytes, now_ns: int) -> Step:
        """Decode one WebSocket frame and apply it as one unit: what
        `receive(decode_messages(frame), now_ns)` does, with the usual frame (one delta
        that follows the state held) decoded, checked and applied in one pass.

        Raises:
            BadMessage: the frame does not hold well-formed messages (nothing applied).
            FeedProtocolError: as `receive`.
        """
        try:
            obj = _unpackb(frame, raw=False, strict_map_key=False)
        except Exception:  # several messages (ExtraData), or bad bytes: decoded below
            obj = None
        epoch = self.epoch
        if (
            type(obj) is list
            and len(obj) >= 6
            and obj[0] == DELTA
            and epoch is not None
            and self._pending is None
        ):
            # The checks `decode_server` makes of a data message; `type(x) is int` also
            # refuses a bool, and msgpack makes no int subclasses.
            topic, seq, offset, ts_us, data = obj[1], obj[2], obj[3], obj[4], obj[5]
            if (
                type(topic) is str
                and type(seq) is int
                and type(offset) is int
                and type(ts_us) is int
                and type(data) is dict
            ):
                update = self._next_delta(topic, seq, offset, ts_us, data, epoch, now_ns)
                if update is not None:
                    self.stats.units += 1
                    self.position = update.position
                    self._first_hello = self._resubscribed_after = None
                    return Step([update])
        return self.receive(decode_messages(frame), now_ns)

    def receive(self, unit: list[ServerMessage], now_ns: int) -> Step:
        """Apply one unit of messages.

        Raises:
            FeedProtocolError: a hello of another protocol version, or data before any
                hello.
        """
        self.stats.units += 1
        updates: list[Update] = []
        reached: Position | None = None
        burst = _burst_position(unit)
        reset_seen = False
        refusal: Error | None = None
        for message in unit:
            if isinstance(message, DataMessage):
                epoch = self._require_epoch()
                pending = self._pending
                if pending is None and not message.snapshot:
                    # The usual delta, in one pass; anything else takes the rules below.
                    _, topic, seq, offset, ts_us, data = message
                    update = self._next_delta(topic, seq, offset, ts_us, data, epoch, now_ns)
                    if update is not None:
                        updates.append(update)
                        reached = update.position
                        continue
                if pending is not None:
                    if self._rebuilds(pending, message, epoch, reset_seen):
                        updates.append(self._rebuild(pending, message, epoch, burst, now_ns))
                        reached = Position(epoch, message.offset)
                        continue
                    updates += self._finish_reset(now_ns)
                outcome = self._apply(message, epoch, now_ns, burst)
                if outcome is _Outcome.RESYNC:
                    # Nothing after a gap is applied: the resync brings it back in order.
                    return Step(updates, resync=True, refusal=refusal)
                if outcome is not _Outcome.DUPLICATE:
                    updates.append(outcome)
                reached = Position(epoch, message.offset)
            elif isinstance(message, Heartbeat):
                # Written after everything up to its position: a safe resume point.
                updates += self._finish_reset(now_ns)
                if self.position is not None or reached is not None:
                    reached = Position(message.epoch, message.offset)
                # Else a first subscription has had no data yet: the heartbeat may have
                # been written before the subscribe was taken, ahead of its snapshots.
            elif isinstance(message, Reset):
                self._begin_reset(Position(message.epoch, message.offset), message.reason)
                reset_seen = True
            elif isinstance(message, Hello):
                if message.version != PROTOCOL_VERSION:
                    raise FeedProtocolError(
                        f"server speaks protocol version {message.version}, "
                        f"this client {PROTOCOL_VERSION}"
                    )
                self.epoch = message.epoch
                # Not a resume point: the hello precedes the subscription's snapshot
                # burst, and resuming from it would never bring the snapshots of topics
                # that did not change since. Until the first data arrives a reconnect
                # subscribes without a position and gets fresh snapshots instead.
                self.heartbeat_s = message.heartbeat_s or None
                if self.position is None and self._first_hello is None:
                    self._first_hello = Position(message.epoch, message.offset)
            else:
                # The rest of the unit still counts: a refusal of some patterns (4403)
                # comes with the burst of the others.
                refusal = message
        pending = self._pending
        if pending is not None and pending.rebuilt:
            # A burst of snapshots travels as one unit: every topic it rebuilds is in it.
            updates += self._finish_reset(now_ns)
        if reached is not None and self._pending is None:
            self.position = reached
        if self.position is not None:
            self._first_hello = self._resubscribed_after = None
        return Step(updates, refusal=refusal)

    # -- internals ----------------------------------------------------------------------

    def _require_epoch(self) -> int:
        if self.epoch is None:
            raise FeedProtocolError("a data message arrived before the hello")
        return self.epoch

    def _next_delta(
        self,
        topic: str,
        seq: int,
        offset: int,
        ts_us: int,
        data: dict[str, Any],
        epoch: int,
        now_ns: int,
    ) -> Update | None:
        """Apply a delta that follows the state held (the next seq, a new offset, a book
        that passes its checksum) and return its update; None, with nothing changed,
        for any other, which `_apply` then handles by every rule. No reset may be
        pending. The same steps as `_apply` and `Mirror.apply` take for it."""
        offsets = self._topic_offsets
        last_offset = offsets.get(topic)
        if last_offset is not None and offset <= last_offset:
            return None
        held = self.mirror.advance(topic, seq, data)
        if held is None:
            return None
        offsets[topic] = offset
        latency_s = now_ns / 1e9 - ts_us / 1e6
        self.stats.latency.observe(latency_s)
        position = Position(epoch, offset)
        if held.kind is BOOK:
            return book_update(
                UpdateKind.DELTA, topic, seq, position, ts_us, latency_s, data, held.bids, held.asks
            )
        state = dict(held.fields)
        return Update(UpdateKind.DELTA, topic, seq, position, ts_us, latency_s, data, state)

    def _apply(
        self, message: DataMessage, epoch: int, now_ns: int, burst: Position | None
    ) -> Update | _Outcome:
        """Apply one data message: its update, or why there is none.

        `burst` is the position of the burst the message is a snapshot of (None: a
        message of the stream). A burst's snapshot is consistent with that position;
        its `ts` is when its topic last changed, not when it was sent, so it is not a
        latency sample.
        """
        topic = message.topic
        last_offset = self._topic_offsets.get(topic)
        if last_offset is not None and message.offset <= last_offset:
            # Already applied: a replay from before a gap resync overlaps what we hold.
            self.stats.duplicates += 1
            return _Outcome.DUPLICATE
        held = topic in self.mirror
        held_seq = self.mirror.seq(topic)
        result = self.mirror.apply(message)
        if isinstance(result, Refused):
            self._resync(topic, result, epoch)
            return _Outcome.RESYNC
        self._topic_offsets[topic] = message.offset
        position = Position(epoch, message.offset)
        if not message.snapshot:
            return self._update(UpdateKind.DELTA, message, position, now_ns)
        after = self._resubscribed_after
        # A snapshot at seq 1 is the topic's whole history (its first message): nothing
        # of it can have been missed, however far the stream moved on.
        if not held and after is not None and message.seq > 1 and _moved_on(after, position):
            self.stats.resets += 1 if self._first_hello is not None else 0
            self._first_hello = None  # counted once per resubscription
            loss = Loss(after, burst or position, RESUBSCRIBED_REASON)
            return self._update(
                UpdateKind.RESET, message, position, now_ns, loss=loss, sample=burst is None
            )
        skipped = message.seq - held_seq - 1 if held else 0
        if skipped > 0 and channel_kind(topic) is ChannelKind.EVENT:
            # Events are never conflated: a jump means events were missed.
            self.stats.resets += 1
            after = Position(epoch, last_offset) if last_offset is not None else None
            loss = Loss(after, burst or position, SKIPPED_REASON)
            return self._update(
                UpdateKind.RESET, message, position, now_ns, loss=loss, sample=burst is None
            )
        if skipped > 0:
            self.stats.conflated += 1
        return self._update(
            UpdateKind.SNAPSHOT,
            message,
            position,
            now_ns,
            skipped=max(skipped, 0),
            sample=burst is None,
        )

    def _update(
        self,
        kind: UpdateKind,
        message: DataMessage,
        position: Position,
        now_ns: int,
        *,
        loss: Loss | None = None,
        skipped: int = 0,
        sample: bool = True,
    ) -> Update:
        latency_s = now_ns / 1e9 - message.ts_us / 1e6
        if sample:
            self.stats.latency.observe(latency_s)
        topic = message.topic
        held = self.mirror.held[topic]
        if held.kind is BOOK:
            return book_update(
                kind,
                topic,
                message.seq,
                position,
                message.ts_us,
                latency_s,
                message.data,
                held.bids,
                held.asks,
                loss,
                skipped,
            )
        return Update(
            kind,
            topic,
            message.seq,
            position,
            message.ts_us,
            latency_s,
            message.data,
            dict(held.fields),
            loss,
            skipped,
        )

    def _resync(self, topic: str, refused: Refused, epoch: int) -> None:
        """A delta does not follow the state held: replay from before it, or re-snapshot."""
        if refused.reason is RefusalReason.CHECKSUM:
            # A replay would only apply more deltas to a wrong book: fresh snapshots.
            self.stats.checksum_mismatches += 1
            self._begin_reset(None, CHECKSUM_REASON)
            return
        self.stats.gaps += 1
        last_offset = self._topic_offsets.get(topic)
        if refused.reason is RefusalReason.GAP and last_offset is not None:
            # Everything of this topic up to `last_offset` is applied; the server replays
            # from there (what other topics already hold comes back as duplicates), or
            # answers with a reset if that is no longer in its replay buffer.
            self.position = Position(epoch, last_offset)
        else:
            self._begin_reset(None, GAP_REASON)

    def _begin_reset(self, until: Position | None, reason: str) -> None:
        """Forget every topic until a burst of snapshots rebuilds it."""
        pending = self._pending
        if pending is None:
            pending = self._pending = _PendingReset(self.position, until, reason)
            self.stats.resets += 1
        else:
            # A reset again before the last one finished (a reconnect in between): the
            # loss still starts where the first one began.
            pending.until, pending.reason, pending.rebuilt = until, reason, False
        for topic in self.mirror.topics():
            pending.awaiting[topic] = None
            self.mirror.forget(topic)
        self._topic_offsets.clear()

    @staticmethod
    def _rebuilds(
        pending: _PendingReset, message: DataMessage, epoch: int, reset_seen: bool
    ) -> bool:
        """True for a snapshot of the burst that answers the reset: after the reset in
        the same unit, or after the burst's first snapshot (`rebuilt` lasts one unit).
        (A server older than per-topic snapshot offsets sent them at the reset's
        offset, maybe in a unit of their own.)"""
        if not message.snapshot:
            return False
        until = pending.until
        if until is None or reset_seen or pending.rebuilt:
            return True
        return until.epoch == epoch and until.offset == message.offset

    def _rebuild(
        self,
        pending: _PendingReset,
        message: DataMessage,
        epoch: int,
        burst: Position | None,
        now_ns: int,
    ) -> Update:
        if pending.until is None:
            # The heartbeat that ends the burst names its position; an older server's
            # snapshots each carried it.
            pending.until = burst if burst is not None else Position(epoch, message.offset)
        pending.rebuilt = True
        pending.awaiting.pop(message.topic, None)
        self.mirror.forget(message.topic)
        self.mirror.apply(message)  # a snapshot of a topic not held is always applied
        self._topic_offsets[message.topic] = message.offset
        loss = Loss(pending.after, pending.until, pending.reason)
        position = Position(epoch, message.offset)
        return self._update(
            UpdateKind.RESET, message, position, now_ns, loss=loss, sample=burst is None
        )

    def _finish_reset(self, now_ns: int) -> list[Update]:
        """End a reset: topics its burst did not rebuild no longer exist on the server."""
        pending = self._pending
        if pending is None:
            return []
        self._pending = None
        if pending.until is not None:
            self.position = pending.until
        if pending.until is None or not pending.awaiting:
            return []
        loss = Loss(pending.after, pending.until, pending.reason)
        ts_us = now_ns // 1000
        dropped = []
        for topic in pending.awaiting:
            empty = _empty_state(topic)
            dropped.append(
                Update(UpdateKind.RESET, topic, 0, pending.until, ts_us, 0.0, empty, empty, loss)
            )
        return dropped


def decode_messages(frame: bytes) -> list[ServerMessage]:
    """The messages of one frame: almost always one, which `decode_server` reads in
    half the time `decode_frame` needs; a burst of several goes to `decode_frame`.

    Raises:
        BadMessage: the frame does not hold well-formed messages.
    """
    try:
        return [decode_server(frame)]
    except BadMessage:
        return decode_frame(frame)


def _burst_position(unit: list[ServerMessage]) -> Position | None:
    """The position of a burst of snapshots (or a reset unit): the heartbeat that ends
    it. None for any other unit."""
    last = unit[-1] if unit else None
    if not isinstance(last, Heartbeat):
        return None
    if any(isinstance(m, Reset) or (isinstance(m, DataMessage) and m.snapshot) for m in unit):
        return Position(last.epoch, last.offset)
    return None


def _moved_on(since: Position, now: Position) -> bool:
    return now.epoch != since.epoch or now.offset > since.offset


def _empty_state(topic: str) -> dict[str, Any]:
    return book_data({}, {}) if channel_kind(topic) is ChannelKind.BOOK else {}
