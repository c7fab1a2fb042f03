"""The snapshot-request scheduler: once per resync, bounded, backoff capped."""

from __future__ import annotations

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import RequestSnapshot
from ticker.ingest.resync import ResyncScheduler

CONFIG = IngestConfig(max_inflight_resyncs=2, resync_timeout_ns=100, resync_max_backoff_ns=350)


def req(symbol: str) -> RequestSnapshot:
    return RequestSnapshot("v", symbol)


def test_asks_once_then_repeats_with_doubling_capped_backoff() -> None:
    s = ResyncScheduler("v", CONFIG)
    assert s.begin("A", 0) == req("A")
    assert s.begin("A", 5) is None
    assert "A" in s and len(s) == 1
    times = [t for t in range(0, 2000) if s.due(t)]
    assert times == [100, 300, 650, 1000, 1350, 1700]
    assert [s.delay_ns(n) for n in range(4)] == [100, 200, 350, 350]


def test_finishing_frees_a_slot_for_a_waiting_symbol() -> None:
    s = ResyncScheduler("v", CONFIG)
    assert [s.begin(x, 0) for x in "ABC"] == [req("A"), req("B"), None]
    assert s.due(50) == []
    assert s.finish("A", 60) == [req("C")]
    assert s.finish("Z", 60) == []
    assert s.due(100) == [req("B")]
    assert s.due(160) == [req("C")]


def test_clear_forgets_everything() -> None:
    s = ResyncScheduler("v", CONFIG)
    for x in "ABC":
        s.begin(x, 0)
    s.clear()
    assert len(s) == 0 and s.due(10**9) == []


def test_config_is_validated() -> None:
    import pytest

    with pytest.raises(ValueError):
        IngestConfig(max_levels_per_side=0)
    with pytest.raises(ValueError):
        IngestConfig(resync_timeout_ns=10, resync_max_backoff_ns=5)
    with pytest.raises(ValueError):
        IngestConfig(log_lines_per_s=-1)
