from __future__ import annotations

from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror, RefusalReason, Refused


def msg(seq: int, data: dict[str, object], *, snapshot: bool = False) -> DataMessage:
    return DataMessage(snapshot, "quote.A-B", seq, seq, 0, data)


def test_a_delta_without_a_snapshot_is_refused_unless_it_starts_the_topic() -> None:
    assert Mirror().apply(msg(2, {"bid": 1})) == Refused(RefusalReason.NO_SNAPSHOT, 0)
    mirror = Mirror()
    assert mirror.apply(msg(1, {"bid": 1})) == Applied(1)
    assert mirror.data("quote.A-B") == {"bid": 1}


def test_a_delta_that_skips_a_sequence_is_refused_and_state_is_untouched() -> None:
    mirror = Mirror()
    assert mirror.apply(msg(4, {"bid": 1, "ask": 2}, snapshot=True)) == Applied(4)
    assert mirror.apply(msg(6, {"bid": 9})) == Refused(RefusalReason.GAP, 4)
    assert mirror.data("quote.A-B") == {"bid": 1, "ask": 2}
    assert mirror.apply(msg(5, {"bid": 3})) == Applied(5)
    assert mirror.data("quote.A-B") == {"bid": 3, "ask": 2}


def test_repeats_and_old_snapshots_are_refused_as_stale() -> None:
    mirror = Mirror()
    mirror.apply(msg(4, {"bid": 1}, snapshot=True))
    mirror.apply(msg(5, {"bid": 2}))
    assert mirror.apply(msg(5, {"bid": 2})) == Refused(RefusalReason.STALE, 5)
    assert mirror.apply(msg(3, {"bid": 0}, snapshot=True)) == Refused(RefusalReason.STALE, 5)


def test_a_newer_snapshot_replaces_the_state() -> None:
    mirror = Mirror()
    mirror.apply(msg(4, {"bid": 1, "ask": 2}, snapshot=True))
    assert mirror.apply(msg(9, {"bid": 7}, snapshot=True)) == Applied(9)
    assert mirror.data("quote.A-B") == {"bid": 7}
    mirror.forget("quote.A-B")
    assert "quote.A-B" not in mirror
    assert mirror.seq("quote.A-B") == 0
