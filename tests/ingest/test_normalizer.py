"""Per-symbol sequencing in the normalizer, driven directly with typed values."""

from __future__ import annotations

from ticker.ingest.config import IngestConfig
from ticker.ingest.contract import AdapterOutput, IngestCounters, RequestSnapshot
from ticker.ingest.normalizer import Normalizer, Phase
from ticker.model.events import BookUpdate, Quote


def make() -> tuple[Normalizer, AdapterOutput]:
    norm = Normalizer("v", ["A", "B"], IngestConfig(), IngestCounters())
    out = AdapterOutput()
    norm.snapshot(norm.tracks["A"], 5, [(10, 1)], [(12, 1)], 0, 0, out)
    return norm, AdapterOutput()


def test_sequence_book_and_info() -> None:
    norm, out = make()
    a = norm.tracks["A"]
    assert norm.sequence_book(a, 6, 0, out)
    assert not norm.sequence_book(a, 6, 0, out)  # duplicate
    assert not norm.sequence_book(a, 5, 0, out)  # covered by the snapshot
    assert norm.counters.duplicates == 1
    assert norm.counters.stale_dropped == 1
    assert norm.sequence_info(a, 8, 0, out)  # a gap: resync, but publish the trade
    assert a.phase is Phase.RESYNCING
    assert out.requests == [RequestSnapshot("v", "A")]
    assert not norm.sequence_info(a, 8, 0, out)  # seen before: a duplicate
    assert norm.sequence_info(a, 9, 0, out)
    assert not norm.sequence_book(a, 10, 0, out)  # new, but the book is resyncing
    assert norm.counters.gaps == 1
    assert norm.counters.duplicates == 2
    assert norm.counters.stale_dropped == 2


def test_stale_snapshot_while_live_is_dropped() -> None:
    norm, out = make()
    a = norm.tracks["A"]
    norm.level_update(a, 6, True, 11, 1, 0, 0, out)
    norm.snapshot(a, 6, [(1, 1)], [(2, 1)], 0, 0, out)
    norm.snapshot(a, 5, [(1, 1)], [(2, 1)], 0, 0, out)
    assert norm.books()["A"] == (((11, 1), (10, 1)), ((12, 1),))
    assert norm.counters.stale_dropped == 2
    norm.snapshot(a, 9, [(1, 1)], [(2, 1)], 0, 0, out)  # newer: heals a gap too
    assert norm.books()["A"] == (((1, 1),), ((2, 1),))


def test_negative_size_is_a_fault() -> None:
    norm, out = make()
    a = norm.tracks["A"]
    norm.level_update(a, 6, True, 11, -1, 0, 0, out)
    assert a.phase is Phase.RESYNCING
    assert norm.counters.malformed == 1
    norm2, out2 = make()
    norm2.snapshot(norm2.tracks["B"], 1, [(1, -1)], [], 0, 0, out2)
    assert norm2.tracks["B"].phase is Phase.RESYNCING


def test_staged_levels_publish_sorted_best_first() -> None:
    norm, out = make()
    a = norm.tracks["A"]
    assert norm.sequence_book(a, 6, 0, out)
    for is_bid, price, size in [(True, 8, 1), (True, 11, 2), (False, 15, 1), (False, 13, 1)]:
        assert norm.stage_level(a, is_bid, price, size, 0, out)
    norm.flush(a, 7, 0, out)
    assert out.events == [
        BookUpdate("v", "A", 7, ((11, 2), (8, 1)), ((13, 1), (15, 1)), False),
        Quote("v", "A", 7, 11, 2, 12, 1),
    ]
    norm.flush(a, 8, 0, out)  # nothing staged: nothing published
    assert len(out.events) == 2


def test_disconnect_only_withdraws_symbols_with_state() -> None:
    norm, out = make()
    norm.disconnect(3, out)
    assert out.events == [
        BookUpdate("v", "A", 3, (), (), True),
        Quote("v", "A", 3, None, None, None, None),
    ]
    assert norm.phases() == {"A": Phase.UNKNOWN, "B": Phase.UNKNOWN}
