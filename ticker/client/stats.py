"""A feed's counters and its latency histogram, read by the caller at any time.

Plain integers bumped by the tracker and the connection loop; the histogram has fixed
log-spaced buckets, so recording a latency allocates nothing and quantiles are
estimates to one bucket. No clocks, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

LATENCY_BUCKETS_S: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds of the latency buckets (seconds); one more bucket holds the rest."""


@dataclass(slots=True)
class LatencyHistogram:
    """Counts of latencies per bucket, with their sum and maximum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0

    def observe(self, seconds: float) -> None:
        """Record one latency (negative values, from clock skew, count as 0)."""
        seconds = max(seconds, 0.0)
        self.total += 1
        self.sum_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds
        self.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1

    @property
    def mean_s(self) -> float:
        """The mean latency (0 before the first observation)."""
        return self.sum_s / self.total if self.total else 0.0

    def quantile(self, q: float) -> float:
        """An upper bound for the `q` quantile (0 < q <= 1): its bucket's upper bound.

        Raises:
            ValueError: `q` outside (0, 1].
        """
        if not 0 < q <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {q}")
        if not self.total:
            return 0.0
        rank = q * self.total
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return LATENCY_BUCKETS_S[i] if i < len(LATENCY_BUCKETS_S) else self.max_s
        return self.max_s


@dataclass(slots=True)
class FeedStats:
    """Monotonic counters of one feed."""

    attempts: int = 0
    """Connection attempts (the first one included)."""
    connections: int = 0
    """Attempts that completed the handshake."""
    connections_by_url: Counter[str] = field(default_factory=Counter)
    """Attempts that completed the handshake, by URL (with several: which were used)."""
    endings: Counter[str] = field(default_factory=Counter)
    """Why connections ended or failed, by `EndingKind` value."""
    updates: int = 0
    """Updates handed to the caller's queue."""
    units: int = 0
    """Frames (SSE: groups of events) received and processed."""
    resets: int = 0
    """Times the state was rebuilt from snapshots after a loss."""
    gaps: int = 0
    """Sequence gaps the client found by itself."""
    checksum_mismatches: int = 0
    """Book deltas after which the book held failed the message's checksum: the book had
    diverged, and every topic was re-snapshotted (a reset with reason `checksum`)."""
    duplicates: int = 0
    """Messages already applied (replayed after a gap resync), skipped."""
    conflated: int = 0
    """Snapshots that stood for updates the server coalesced (slow consumer)."""
    forbidden: int = 0
    """`error` 4403 refusals of patterns outside the token's entitlements (see
    `Feed.forbidden`)."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Receive time minus publish time of every data message."""
