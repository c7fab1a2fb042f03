"""What a feed hands its caller: one `Update` per change of one topic.

An update names the topic, what arrived (`data`: a whole state or the delta applied),
the topic's whole state after it (`state`), where it sits in the stream (`position`,
`seq`) and how old it is (`latency_s`). A RESET update says the state was rebuilt
from a snapshot after a loss and names what may be missing (`loss`). Plain values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ticker.core.position import Position


class UpdateKind(enum.Enum):
    """How an update relates to what the caller saw before for its topic."""

    SNAPSHOT = "snapshot"
    """`data` is the topic's whole state and nothing was lost: the first state after
    subscribing, a keyframe, or a conflated catch-up of a latest-value or book topic
    (the server coalesced `skipped` updates into this one; the state is exact)."""
    DELTA = "delta"
    """`data` is the change applied to the previous state (`seq` = previous + 1)."""
    RESET = "reset"
    """The state was rebuilt from a snapshot after a loss: updates of this topic between
    `loss.after` and `loss.until` may never have been seen (see `Loss`). For a topic the
    server no longer has (a restart before it republished), `seq` is 0 and the state
    is empty."""


@dataclass(frozen=True, slots=True)
class Loss:
    """A stretch of the stream the caller may have missed.

    Attributes:
        after: the last position the feed held before the loss (None: none yet).
        until: the position the rebuilt state is consistent with.
        reason: `other_epoch` (the server restarted and lost its history), `too_old`
            (the resume position left the server's replay buffer), `ahead`, or
            `gap` (the client found a sequence gap and re-snapshotted), or
            `skipped` (an event topic's sequence jumped: events were missed).
    """

    after: Position | None
    until: Position
    reason: str


@dataclass(frozen=True, slots=True)
class Update:
    """One change of one topic, in stream order.

    Attributes:
        kind: SNAPSHOT, DELTA or RESET (see `UpdateKind`).
        topic: `<channel>.<symbol>`, e.g. `quote.BTC-USD`.
        seq: the topic's sequence number after this update (1, 2, 3, ...).
        position: the stream position (epoch, offset) of the message.
        ts_us: when the server published it, microseconds since the Unix epoch.
        latency_s: receive time minus `ts_us`, in seconds (wall clocks of both hosts;
            replayed messages show how long they waited).
        data: what arrived, in the protocol's msgpack form: a snapshot's whole state or
            a delta's changed fields/levels. Prices and sizes are int nanos
            (`ticker.model.fixed.format_nanos` renders them).
        state: the topic's whole state after this update, in the snapshot form.
        loss: for RESET, what may be missing; None otherwise.
        skipped: for a SNAPSHOT, how many of the topic's updates the server coalesced
            into it (slow-consumer conflation); 0 otherwise.
    """

    kind: UpdateKind
    topic: str
    seq: int
    position: Position
    ts_us: int
    latency_s: float
    data: dict[str, Any]
    state: dict[str, Any]
    loss: Loss | None = None
    skipped: int = 0
