"""Venue timestamp text: ISO-8601 with microseconds (cbx) and FIX UTCTimestamp (fxa).

Owns the exact conversions between those strings and int ns since the Unix epoch,
truncating to the format's precision on encode. Pure; the bounded memo caches only
speed up repeated seconds and hold no meaning. Must not know about messages or venues.
"""

from __future__ import annotations

import calendar
import time
from functools import lru_cache

_NS_PER_S = 1_000_000_000
_NS_PER_US = 1_000
_NS_PER_MS = 1_000_000
MAX_YEAR = 2261
"""The last whole year whose times in ns fit a signed 64-bit integer (to 2262-04-11)."""


@lru_cache(maxsize=1024)
def _iso_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@lru_cache(maxsize=1024)
def _fix_prefix(seconds: int) -> str:
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds))


def _epoch_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    if not (
        1970 <= year <= MAX_YEAR
        and 1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and 0 <= hour <= 23
        and 0 <= minute <= 59
        and 0 <= second <= 59
    ):
        raise ValueError("timestamp field out of range")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def _digits(text: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise ValueError(f"not digits: {text!r}")
    return int(text)


MAX_CACHED_STAMPS = 1024
"""Entries each memo below holds before it is cleared. Stamps arrive in time order, so
the working set is the last few seconds (or milliseconds): a small memo hits as often
as a large one, and a large one only grows the process for hours (100,000 entries
each, ~30 MB together, were most of a soak's slow RSS creep)."""
_iso_seconds: dict[str, int] = {}
_fix_seconds: dict[str, int] = {}
_fix_times: dict[str, int] = {}  # whole stamps: many messages share a millisecond


def _cached_seconds(cache: dict[str, int], head: str, fields: tuple[int, ...]) -> int:
    seconds = _epoch_seconds(*fields)
    if len(cache) >= MAX_CACHED_STAMPS:
        cache.clear()
    cache[head] = seconds
    return seconds


def format_iso_us(ts_ns: int) -> str:
    """Render ns since the epoch as "2024-01-02T03:04:05.123456Z" (truncated to us)."""
    seconds, rest = divmod(ts_ns, _NS_PER_S)
    return f"{_iso_prefix(seconds)}.{rest // _NS_PER_US:06d}Z"


def parse_iso_us(text: str) -> int:
    """Parse "YYYY-MM-DDTHH:MM:SS.ffffffZ" into ns since the epoch.

    Raises:
        ValueError: any other shape, or a field out of range.
    """
    if len(text) != 27 or text[19] != "." or text[26] != "Z" or not text.isascii():
        raise ValueError(f"not an ISO-8601 us timestamp: {text!r}")
    head = text[:19]
    seconds = _iso_seconds.get(head)
    if seconds is None:
        if (
            text[4] != "-"
            or text[7] != "-"
            or text[10] != "T"
            or text[13] != ":"
            or text[16] != ":"
        ):
            raise ValueError(f"not an ISO-8601 us timestamp: {text!r}")
        fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
        seconds = _cached_seconds(_iso_seconds, head, tuple(_digits(f) for f in fields))
    micros = text[20:26]
    if not micros.isdigit():  # ASCII already checked, so only 0-9 pass
        raise ValueError(f"not digits: {micros!r}")
    return seconds * _NS_PER_S + int(micros) * _NS_PER_US


def format_fix_ms(ts_ns: int) -> str:
    """Render ns since the epoch as a FIX 4.4 UTCTimestamp "20240102-03:04:05.123"."""
    seconds, rest = divmod(ts_ns, _NS_PER_S)
    return f"{_fix_prefix(seconds)}.{rest // _NS_PER_MS:03d}"


def parse_fix_ms(text: str) -> int:
    """Parse a FIX UTCTimestamp "YYYYMMDD-HH:MM:SS.sss" into ns since the epoch.

    Raises:
        ValueError: any other shape, or a field out of range.
    """
    value = _fix_times.get(text)
    if value is not None:
        return value
    if len(text) != 21 or text[17] != "." or not text.isascii():
        raise ValueError(f"not a FIX UTCTimestamp with ms: {text!r}")
    head = text[:17]
    seconds = _fix_seconds.get(head)
    if seconds is None:
        if text[8] != "-" or text[11] != ":" or text[14] != ":":
            raise ValueError(f"not a FIX UTCTimestamp with ms: {text!r}")
        fields = (text[0:4], text[4:6], text[6:8], text[9:11], text[12:14], text[15:17])
        seconds = _cached_seconds(_fix_seconds, head, tuple(_digits(f) for f in fields))
    value = seconds * _NS_PER_S + _digits(text[18:21]) * _NS_PER_MS
    if len(_fix_times) >= MAX_CACHED_STAMPS:
        _fix_times.clear()
    _fix_times[text] = value
    return value
