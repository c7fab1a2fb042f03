"""What a feed hands its caller: one `Update` per change of one topic.

An update names the topic, what arrived (`data`: a whole state or the delta applied),
the topic's whole state after it (`state`), where it sits in the stream (`position`,
`seq`) and how old it is (`latency_s`). A RESET update says the state was rebuilt
from a snapshot after a loss and names what may be missing (`loss`). Plain values; a
book's `state` is built when first read, from sides no later update changes.
"""

from __future__ import annotations

import enum
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, Final

from ticker.core.mirror import BookSide
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


_FIELDS: Final = (
    "kind", "topic", "seq", "position", "ts_us", "latency_s", "data", "state", "loss", "skipped",
)  # fmt: skip
_set = object.__setattr__
"""Fields are set past the frozen `__setattr__`, as a frozen dataclass sets them."""


class Update:
    """One change of one topic, in stream order. Frozen: assigning a field raises
    `dataclasses.FrozenInstanceError`; compared, printed and pickled by its fields.

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
        state: the topic's whole state after this update, in the snapshot form: a dict
            of this update's own (later updates never change it). A book's is built
            when first read (then kept), from the sides the update saw, so a caller
            who never reads it does not pay for it.
        loss: for RESET, what may be missing; None otherwise.
        skipped: for a SNAPSHOT, how many of the topic's updates the server coalesced
            into it (slow-consumer conflation); 0 otherwise.
    """

    __slots__ = (
        "_state", "data", "kind", "latency_s", "loss", "position", "seq", "skipped", "topic",
        "ts_us",
    )  # fmt: skip
    __match_args__ = _FIELDS

    kind: UpdateKind
    topic: str
    seq: int
    position: Position
    ts_us: int
    latency_s: float
    data: dict[str, Any]
    loss: Loss | None
    skipped: int
    _state: dict[str, Any] | tuple[BookSide, BookSide]
    """The state, or a book's (bids, asks) until it is first read."""

    def __init__(
        self,
        kind: UpdateKind,
        topic: str,
        seq: int,
        position: Position,
        ts_us: int,
        latency_s: float,
        data: dict[str, Any],
        state: dict[str, Any],
        loss: Loss | None = None,
        skipped: int = 0,
    ) -> None:
        _set(self, "kind", kind)
        _set(self, "topic", topic)
        _set(self, "seq", seq)
        _set(self, "position", position)
        _set(self, "ts_us", ts_us)
        _set(self, "latency_s", latency_s)
        _set(self, "data", data)
        _set(self, "_state", state)
        _set(self, "loss", loss)
        _set(self, "skipped", skipped)

    @property
    def state(self) -> dict[str, Any]:
        """The topic's whole state after this update (see the class doc)."""
        state = self._state
        if isinstance(state, tuple):
            bids, asks = state
            state = {"bids": bids.data(), "asks": asks.data()}
            _set(self, "_state", state)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return (
            self.kind, self.topic, self.seq, self.position, self.ts_us, self.latency_s,
            self.data, self.state, self.loss, self.skipped,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Update)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())  # as a frozen dataclass's: TypeError (dict fields)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in zip(_FIELDS, self._values(), strict=True)
        )
        return f"Update({fields})"

    def __reduce__(self) -> tuple[type[Update], tuple[Any, ...]]:
        return (Update, self._values())


def book_update(
    kind: UpdateKind,
    topic: str,
    seq: int,
    position: Position,
    ts_us: int,
    latency_s: float,
    data: dict[str, Any],
    bids: BookSide,
    asks: BookSide,
    loss: Loss | None = None,
    skipped: int = 0,
) -> Update:
    """An update of a book whose state is built from `bids` and `asks` when first read.

    Args:
        bids: the bids after the update (a side is never changed once built).
        asks: the same for asks.
    """
    update = Update(kind, topic, seq, position, ts_us, latency_s, data, _UNBUILT, loss, skipped)
    _set(update, "_state", (bids, asks))  # built by `Update.state` when first read
    return update


_UNBUILT: dict[str, Any] = {}
"""A placeholder state, replaced at once by `book_update` (never read, never changed)."""
