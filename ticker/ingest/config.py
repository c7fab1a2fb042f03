"""Limits and timeouts of the venue adapters, in one frozen object.

Owns the defaults for every bound the ingest layer enforces (book depth, message size,
resync concurrency and backoff, log rate). The server-wide configuration embeds it.
Must not read the environment or files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Bounds and timeouts for one venue adapter.

    Attributes:
        max_levels_per_side: a new level beyond this many is refused (counted malformed).
        max_message_bytes: a longer native message is refused (counted malformed).
        max_inflight_resyncs: snapshot requests outstanding at once; further symbols
            that need a resync wait their turn.
        resync_timeout_ns: re-request a snapshot that has not arrived after this long...
        resync_max_backoff_ns: ...doubling per attempt, up to this.
        log_lines_per_s: bad-input log lines per second, the rest are summarized.
    """

    max_levels_per_side: int = 1000
    max_message_bytes: int = 1 << 20
    max_inflight_resyncs: int = 16
    resync_timeout_ns: int = 2_000_000_000
    resync_max_backoff_ns: int = 30_000_000_000
    log_lines_per_s: int = 5

    def __post_init__(self) -> None:
        if min(self.max_levels_per_side, self.max_message_bytes, self.max_inflight_resyncs) < 1:
            raise ValueError("ingest limits must be positive")
        if not 0 < self.resync_timeout_ns <= self.resync_max_backoff_ns:
            raise ValueError("need 0 < resync_timeout_ns <= resync_max_backoff_ns")
        if self.log_lines_per_s < 0:
            raise ValueError("log_lines_per_s must not be negative")
