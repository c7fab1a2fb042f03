"""The text venues' parsing memos stay small whatever the feed sends: a long session of
ever-new prices, sizes and times must not grow the process (they made a soak's RSS creep
for hours at their old bounds of 100,000-131,072 entries each)."""

from __future__ import annotations

from ticker.venues import cbx_wire, fxa_wire, timestamps
from ticker.venues.decimals import DecimalCache

SMALL = 8192
"""At most a few thousand entries per memo (the working set; see the modules)."""


def test_a_decimal_memo_is_cleared_at_its_small_bound() -> None:
    cache = DecimalCache()
    for i in range(3 * SMALL):
        assert cache.nanos(f"{i}.5") == i * 1_000_000_000 + 500_000_000
        expected = f"0.{i:09d}".rstrip("0") if i else "0"
        assert cache.text(i) == expected
        assert len(cache._nanos) <= SMALL
        assert len(cache._text) <= SMALL


def test_the_venues_use_the_small_bound() -> None:
    for module in (cbx_wire, fxa_wire):
        assert module._DECIMALS._max_entries <= SMALL


def test_timestamp_memos_hold_at_most_a_few_thousand_stamps() -> None:
    base = timestamps.parse_fix_ms("20240102-03:04:05.000")
    for ms in range(20_000):  # 20 s of distinct milliseconds, and 20 distinct seconds
        seconds, rest = divmod(ms, 1000)
        text = f"20240102-03:04:{5 + seconds:02d}.{rest:03d}"
        assert timestamps.parse_fix_ms(text) == base + ms * 1_000_000
    for second in range(5000):
        day, rest = divmod(second, 86400)
        hour, rest = divmod(rest, 3600)
        stamp = f"2024-01-{1 + day:02d}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}.000001Z"
        assert timestamps.parse_iso_us(stamp) % 1_000_000_000 == 1000
    for memo in (timestamps._fix_times, timestamps._fix_seconds, timestamps._iso_seconds):
        assert len(memo) <= SMALL
