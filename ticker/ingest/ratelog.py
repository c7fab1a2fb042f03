"""A rate-limited warning log for bad venue input.

Owns the per-second budget of lines on the "ticker.ingest" logger, so a feed that
turns to garbage cannot flood the log; suppressed lines are counted and summarized.
Time comes in as `now_ns`. Must not count metrics (the adapters' counters do).
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("ticker.ingest")

_NS_PER_S = 1_000_000_000


class RateLimitedLog:
    """At most `lines_per_s` warnings per second of `now_ns`, plus one summary line."""

    __slots__ = ("_lines", "_lines_per_s", "_logger", "_prefix", "_suppressed", "_window")

    def __init__(self, prefix: str, lines_per_s: int, logger: logging.Logger = LOGGER) -> None:
        self._prefix = prefix
        self._lines_per_s = lines_per_s
        self._logger = logger
        self._window = -1
        self._lines = 0
        self._suppressed = 0

    def warning(self, now_ns: int, message: str) -> None:
        """Log `message` unless this second's budget is spent."""
        window = now_ns // _NS_PER_S
        if window != self._window:
            if self._suppressed:
                self._logger.warning(
                    "%s: %d more bad-input lines suppressed", self._prefix, self._suppressed
                )
            self._window = window
            self._lines = 0
            self._suppressed = 0
        if self._lines < self._lines_per_s:
            self._lines += 1
            self._logger.warning("%s: %s", self._prefix, message)
        else:
            self._suppressed += 1
