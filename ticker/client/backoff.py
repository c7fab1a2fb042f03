"""Reconnect delays and targets: exponential backoff with jitter, when a connection
counts as having worked, and which of several URLs the next attempt uses.

The ceiling doubles on each failed round from `min_s` up to `max_s`, and each delay
is drawn uniformly from the upper half of it ("equal jitter"): clients that lost the
same server at the same moment spread out, and no delay is ever near zero. Only a
connection that delivered data and lived at least `healthy_after_s(max_s)` starts the
backoff (and the count of failed attempts) over; one that ends sooner is a failure,
so a server that drops every connection right after its first frames is retried at
most about once per `max_s`, and `max_attempts` trips. With several URLs every
reconnect moves to the next one, round-robin; a move to a URL not yet tried in this
round waits only the first step (`min_s`, jittered), and the growing backoff is paid
once per full round. Pure: the random generator and the connection's lifetime come
in (in its `Ending`), and the shell does the sleeping and the connecting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from ticker.client.endings import Ending, EndingKind
from ticker.client.errors import FeedConfigError

MIN_HEALTHY_LIFETIME_S: Final = 1.0
"""A connection shorter than this never counts as having worked (see `healthy_after_s`)."""


def healthy_after_s(max_s: float) -> float:
    """How long a connection must last to reset the backoff: the longest delay (so the
    reconnect rate stays bounded whatever the server does), and at least 1 s."""
    return max(max_s, MIN_HEALTHY_LIFETIME_S)


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

    def first_delay(self) -> float:
        """A delay from the first step only (in [min_s/2, min_s]); the ceiling stays."""
        return self._rng.uniform(self.min_s / 2, self.min_s)

    def reset(self) -> None:
        """A connection worked: the next failure starts again from `min_s`."""
        self._ceiling = self.min_s


@dataclass(frozen=True, slots=True)
class Attempt:
    """The next connection attempt: after how long, and to which URL.

    Attributes:
        delay_s: seconds to wait first (0: at once).
        endpoint: the index of the URL to connect to, in the order given.
    """

    delay_s: float
    endpoint: int


class ReconnectPolicy:
    """After each connection's end: how long to wait, where to go next, and how many
    attempts failed in a row.

    Args:
        backoff: the delays of failed attempts.
        endpoints: how many URLs the feed moves between (1: always the same one).
    """

    def __init__(self, backoff: Backoff, endpoints: int = 1) -> None:
        if endpoints < 1:
            raise FeedConfigError(f"need at least one endpoint, got {endpoints}")
        self.backoff = backoff
        self.endpoints = endpoints
        self.healthy_after_s = healthy_after_s(backoff.max_s)
        self.failures = 0
        """Connections in a row that did not work (`max_attempts` bounds it)."""
        self.endpoint = 0
        """The index of the URL the current (or next) attempt uses."""
        self._gaps_in_a_row = 0
        self._tried_in_round = 0

    def worked(self, ending: Ending) -> bool:
        """The connection delivered data and lasted long enough to count as working."""
        return ending.healthy and ending.lifetime_s >= self.healthy_after_s

    def next_attempt(self, ending: Ending) -> Attempt:
        """Where and when to reconnect after `ending`; counts failures.

        Every reconnect moves to the next URL (round-robin; with one URL, the same).
        A connection that worked resets the backoff. A gap, or an eviction as a slow
        consumer of a connection that worked, reconnects at once: only one that keeps
        coming back (a gap again, or evictions of short connections) waits. Otherwise a
        move to a URL not yet tried since the last full wait (or since the connection
        that worked) waits only the backoff's first step; once every URL was tried, the
        next attempt waits the full, growing backoff and a new round starts.
        """
        worked = self.worked(ending)
        gap = ending.kind is EndingKind.GAP
        self._gaps_in_a_row = self._gaps_in_a_row + 1 if gap else 0
        if worked and not gap:
            self.backoff.reset()
        self.failures = 0 if worked else self.failures + 1
        # The URL that just ended counts as tried: after one that worked, a round
        # starts with it; after a failure, it joins the round under way.
        self._tried_in_round = 1 if worked else self._tried_in_round + 1
        self.endpoint = (self.endpoint + 1) % self.endpoints
        if self._gaps_in_a_row == 1:
            return Attempt(0.0, self.endpoint)
        if worked and ending.kind is EndingKind.SLOW_CONSUMER:
            return Attempt(0.0, self.endpoint)
        if self._tried_in_round < self.endpoints:
            return Attempt(self.backoff.first_delay(), self.endpoint)
        self._tried_in_round = 0
        return Attempt(self.backoff.next_delay(), self.endpoint)
