"""Snapshot-request scheduling for symbols being resynced.

Owns which symbols wait for a snapshot, which requests are in flight (bounded), and
when an unanswered request is repeated (timeout doubling per attempt, capped). Pure:
time comes in as `now_ns`; requests go out as values. Must not touch books or seqs.
"""

from __future__ import annotations

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import RequestSnapshot


class ResyncScheduler:
    """Snapshot requests of one venue: at most `max_inflight_resyncs` outstanding."""

    __slots__ = (
        "_inflight",
        "_max_backoff_ns",
        "_max_inflight",
        "_timeout_ns",
        "_venue",
        "_waiting",
    )

    def __init__(self, venue: str, config: IngestConfig) -> None:
        self._venue = venue
        self._timeout_ns = config.resync_timeout_ns
        self._max_backoff_ns = config.resync_max_backoff_ns
        self._max_inflight = config.max_inflight_resyncs
        # symbol -> (deadline ns, attempts so far); insertion-ordered.
        self._inflight: dict[str, tuple[int, int]] = {}
        self._waiting: dict[str, None] = {}

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._inflight or symbol in self._waiting

    def __len__(self) -> int:
        return len(self._inflight) + len(self._waiting)

    def delay_ns(self, attempt: int) -> int:
        """How long to wait for the answer to request number `attempt` (0-based)."""
        return min(self._timeout_ns << min(attempt, 62), self._max_backoff_ns)

    def begin(self, symbol: str, now_ns: int) -> RequestSnapshot | None:
        """`symbol` needs a snapshot: a request now, or None if queued or already asked."""
        if symbol in self:
            return None
        if len(self._inflight) < self._max_inflight:
            self._inflight[symbol] = (now_ns + self.delay_ns(0), 0)
            return RequestSnapshot(self._venue, symbol)
        self._waiting[symbol] = None
        return None

    def finish(self, symbol: str, now_ns: int) -> list[RequestSnapshot]:
        """`symbol` got its snapshot; returns requests for symbols promoted from waiting."""
        self._inflight.pop(symbol, None)
        self._waiting.pop(symbol, None)
        return self._promote(now_ns)

    def due(self, now_ns: int) -> list[RequestSnapshot]:
        """Requests to repeat (overdue, with backoff) or to start (a slot is free)."""
        out: list[RequestSnapshot] = []
        for symbol, (deadline, attempt) in list(self._inflight.items()):
            if now_ns >= deadline:
                self._inflight[symbol] = (now_ns + self.delay_ns(attempt + 1), attempt + 1)
                out.append(RequestSnapshot(self._venue, symbol))
        out.extend(self._promote(now_ns))
        return out

    def clear(self) -> None:
        """Forget every request (the session ended)."""
        self._inflight.clear()
        self._waiting.clear()

    def _promote(self, now_ns: int) -> list[RequestSnapshot]:
        out: list[RequestSnapshot] = []
        while self._waiting and len(self._inflight) < self._max_inflight:
            symbol = next(iter(self._waiting))
            del self._waiting[symbol]
            self._inflight[symbol] = (now_ns + self.delay_ns(0), 0)
            out.append(RequestSnapshot(self._venue, symbol))
        return out
