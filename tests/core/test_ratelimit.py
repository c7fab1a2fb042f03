"""The per-address token buckets: bursts, refill, refusal with a retry time, bounded keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.ratelimit import KeyedRateLimit, Limited
from ticker.errors import ConfigError


def test_a_burst_then_one_per_refill_period() -> None:
    limit = KeyedRateLimit(rate_per_s=2.0, burst=3, max_keys=10)
    assert [limit.take("a", 100.0) for _ in range(3)] == [None, None, None]
    refused = limit.take("a", 100.0)
    assert refused == Limited(0.5)
    assert limit.take("b", 100.0) is None  # another address has its own bucket
    assert limit.take("a", 100.25) == Limited(0.25)
    assert limit.take("a", 100.5) is None
    assert limit.take("a", 100.5) is not None
    # A long quiet spell refills to the burst, not beyond it.
    assert [limit.take("a", 1000.0) for _ in range(4)][-1] is not None


def test_a_clock_that_steps_back_does_not_drain_or_fill_a_bucket() -> None:
    limit = KeyedRateLimit(rate_per_s=1.0, burst=1, max_keys=10)
    assert limit.take("a", 50.0) is None
    assert limit.take("a", 10.0) is not None
    assert limit.take("a", 11.0) is None


def test_tracked_addresses_are_bounded_and_the_least_recent_is_forgotten() -> None:
    limit = KeyedRateLimit(rate_per_s=0.001, burst=1, max_keys=3)
    for key in "abc":
        assert limit.take(key, 0.0) is None
    assert limit.take("a", 0.0) is not None  # "a" is now the most recently seen
    assert limit.take("d", 0.0) is None  # forgets "b"
    assert len(limit) == 3
    assert limit.take("b", 0.0) is None  # back with a full bucket
    assert limit.take("a", 0.0) is not None  # "a" was kept (c was forgotten)
    assert len(limit) == 3


@pytest.mark.parametrize(("rate", "burst", "keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bounds_must_be_positive(rate: float, burst: int, keys: int) -> None:
    with pytest.raises(ConfigError):
        KeyedRateLimit(rate, burst, keys)


@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 5), max_size=60),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    limit = KeyedRateLimit(rate, burst, max_keys=1)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        result = limit.take("x", now)
        if result is None:
            allowed += 1
        else:
            assert result.retry_after_s > 0
    assert allowed <= burst + rate * now + 1e-9
