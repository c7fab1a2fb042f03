"""Server counters: plain integers bumped on the hot path, read by logs and metrics.

One object per server; nothing here allocates per message. The reasons a connection
can end are an enum so every end is counted under exactly one name.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

STREAM_TRANSPORTS = ("ws", "sse")
"""The streaming transports (publishers, `publish`, and the app, `http`, are counted too)."""


class EndReason(enum.Enum):
    """Why a streaming connection ended (one log line and one counter each)."""

    CLIENT_CLOSED = "client_closed"
    PEER_RESET = "peer_reset"
    SLOW_OUTBOX = "slow_outbox"
    """Evicted: the outbox overflowed even after conflation."""
    SLOW_WRITE = "slow_write"
    """Evicted: a write did not complete within the write timeout."""
    SLOW_REPLAY = "slow_replay"
    """Evicted: the replay buffer dropped messages a resume had not been sent yet."""
    SLOW_PING = "slow_ping"
    """Evicted: it was being sent data and answered no ping within the ping timeout (it
    stopped reading; the kernel buffers on both ends still had room, so no write
    blocked)."""
    PING_TIMEOUT = "ping_timeout"
    """Silent and sent nothing since its last input: gone, not slow."""
    PROTOCOL_ERROR = "protocol_error"
    BAD_REQUEST = "bad_request"
    LIMIT = "limit"
    SHUTDOWN = "shutdown"
    TOKEN_EXPIRED = "token_expired"
    """Its token's `exp` passed without a refresh (WebSocket 4401)."""
    REVOKED = "revoked"
    """Its token's `jti` or `sub` was put on the deny list (WebSocket 4403)."""


FANOUT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
"""Upper bounds of the fanout latency histogram (seconds); the last bucket is +Inf."""


@dataclass(slots=True)
class LatencyHistogram:
    """Counts of observations per bucket (cumulative only when read), and their sum."""

    bounds: tuple[float, ...] = FANOUT_BUCKETS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(FANOUT_BUCKETS_S) + 1))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum_s += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


@dataclass(slots=True)
class ServerStats:
    """Monotonic counters of one server process."""

    connections_open: Counter[str] = field(default_factory=Counter)
    connections_total: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    messages_sent: int = 0
    bytes_sent: int = 0
    writes: int = 0
    coalesced_writes: int = 0
    """Writes that carried more than one message."""
    conflations: int = 0
    resumes: int = 0
    resumes_limited: int = 0
    """Resumes refused by the per-address rate limit (error 4429 / HTTP 429)."""
    limited: Counter[str] = field(default_factory=Counter)
    """Refusals and caps by the abuse limits, by limit (`LIMIT_NAMES`,
    `ticker/server/limits.py`)."""
    resets: int = 0
    deep_resumes: int = 0
    """Resumes older than the replay buffer served from the cluster log."""
    bad_requests: int = 0
    accept_errors: int = 0
    """Accepts that failed for lack of resources (the fd limit, memory)."""
    tls_failures: int = 0
    """Connections dropped for a failed TLS handshake or a bad TLS record."""
    internal_errors: int = 0
    """Connections closed because serving them raised an unexpected error (a bug)."""
    published: int = 0
    ingest_events: int = 0
    hub_rejected_events: int = 0
    """Events the hub could not publish (a bug or an unforeseen value): skipped, with
    the stream repaired; logged once per reason, then rate-limited."""
    fanout_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Per hub batch: from taking the batch off the channel to the end of its fanout
    (every idle connection written)."""
