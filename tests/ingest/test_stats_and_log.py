"""Session statistics from trades, and the rate-limited bad-input log."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.ingest.ratelog import RateLimitedLog
from ticker.ingest.stats import SessionStats
from ticker.model.fixed import MAX_NANOS


@given(st.lists(st.tuples(st.integers(1, 10**12), st.integers(1, 10**9)), min_size=1))
def test_stats_follow_the_trades(trades: list[tuple[int, int]]) -> None:
    stats = SessionStats()
    assert (stats.last, stats.open, stats.high, stats.low, stats.change) == (None,) * 5
    for price, size in trades:
        stats.on_trade(price, size)
    prices = [p for p, _ in trades]
    assert stats.open == prices[0]
    assert stats.last == prices[-1]
    assert stats.high == max(prices)
    assert stats.low == min(prices)
    assert stats.volume == sum(s for _, s in trades)
    assert stats.change == prices[-1] - prices[0]
    stats.reset()
    assert stats.volume == 0 and stats.open is None


def test_volume_saturates_at_the_64_bit_limit() -> None:
    stats = SessionStats()
    stats.on_trade(1, MAX_NANOS)
    stats.on_trade(1, MAX_NANOS)
    assert stats.volume == MAX_NANOS


def test_log_is_rate_limited_per_second_and_summarizes(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog("cbx", 2)
    with caplog.at_level(logging.WARNING, logger="ticker.ingest"):
        for i in range(5):
            log.warning(1_000_000_000 + i, f"bad {i}")
        log.warning(2_500_000_000, "later")
    assert [r.getMessage() for r in caplog.records] == [
        "cbx: bad 0",
        "cbx: bad 1",
        "cbx: 3 more bad-input lines suppressed",
        "cbx: later",
    ]
