"""Reconnect delays: exponential backoff with jitter.

The ceiling doubles on each failed attempt from `min_s` up to `max_s`, and each delay
is drawn uniformly from the upper half of it ("equal jitter"): clients that lost the
same server at the same moment spread out, and no delay is ever near zero. Pure: the
random generator comes in, and the shell does the sleeping.
"""

from __future__ import annotations

import random

from ticker.client.errors import FeedConfigError


class Backoff:
    """Delays before successive reconnect attempts.

    Args:
        min_s: the first ceiling (the first delay is in [min_s/2, min_s]).
        max_s: the largest ceiling.
        rng: where the jitter comes from (seed it for reproducible tests).
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random) -> None:
        if not 0 < min_s <= max_s:
            raise FeedConfigError(f"backoff needs 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng
        self._ceiling = min_s

    def next_delay(self) -> float:
        """The delay before the next attempt; the one after may be up to twice as long."""
        ceiling = self._ceiling
        self._ceiling = min(self.max_s, ceiling * 2)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """A connection worked: the next failure starts again from `min_s`."""
        self._ceiling = self.min_s
