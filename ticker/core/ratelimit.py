"""Token buckets by key (a source address): how often each may do something costly.

Bounded: at most `max_keys` buckets are kept; past that the least recently used is
forgotten (it comes back with a full bucket). Pure: the caller passes `now`; this module
reads no clock and knows nothing of sockets or what is being limited.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ticker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Limited:
    """Over the limit: a token comes back after `retry_after_s`."""

    retry_after_s: float


class KeyedRateLimit:
    """One token bucket per key: `burst` tokens, refilled at `rate_per_s`.

    Args:
        rate_per_s: tokens added per second to each bucket (> 0).
        burst: a bucket's size: how many may be taken at once after a quiet spell (>= 1).
        max_keys: buckets kept at once (>= 1).

    Raises:
        ConfigError: a bound out of range.
    """

    def __init__(self, rate_per_s: float, burst: int, max_keys: int) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ConfigError("rate limit needs rate_per_s > 0, burst >= 1, max_keys >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        # key -> (tokens, when they were counted); oldest use first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> Limited | None:
        """Take one token from `key`'s bucket.

        Args:
            key: whose bucket (e.g. a client's IP address).
            now: the current time in seconds (any monotonic clock).

        Returns:
            None when a token was taken; `Limited` when the bucket is empty (nothing
            was taken).
        """
        buckets = self._buckets
        held = buckets.get(key)
        if held is None:
            tokens = float(self.burst)
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
        else:
            tokens, then = held
            # max(): a clock that steps back must not drain the bucket.
            tokens = min(float(self.burst), tokens + max(0.0, now - then) * self.rate_per_s)
            buckets.move_to_end(key)
        if tokens < 1:
            buckets[key] = (tokens, now)
            return Limited((1 - tokens) / self.rate_per_s)
        buckets[key] = (tokens - 1, now)
        return None
