from __future__ import annotations

from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror, RefusalReason, Refused


def msg(seq: int, data: dict[str, object], *, snapshot: bool = False) -> DataMessage:
    return DataMessage(snapshot, "quote.A-B", seq, seq, 0, data)


def test_a_delta_of_a_topic_not_held_is_refused_even_at_seq_1() -> None:
    # A topic's first message is a snapshot: a delta alone, whatever its seq, means the
    # snapshot was missed.
    assert Mirror().apply(msg(2, {"bid": 1})) == Refused(RefusalReason.NO_SNAPSHOT, 0)
    mirror = Mirror()
    assert mirror.apply(msg(1, {"bid": 1})) == Refused(RefusalReason.NO_SNAPSHOT, 0)
    assert "quote.A-B" not in mirror
    assert mirror.apply(msg(1, {"bid": 1}, snapshot=True)) == Applied(1)
    assert mirror.apply(msg(2, {"ask": 2})) == Applied(2)
    assert mirror.data("quote.A-B") == {"bid": 1, "ask": 2}


def test_a_topic_held_empty_at_seq_0_takes_its_first_snapshot() -> None:
    # Subscribing to an exact topic with no state yet gives a seq-0 empty snapshot; the
    # topic's first message (a snapshot, seq 1) then replaces it.
    mirror = Mirror()
    assert mirror.apply(msg(0, {}, snapshot=True)) == Applied(0)
    assert mirror.apply(msg(1, {"bid": 5}, snapshot=True)) == Applied(1)
    assert mirror.data("quote.A-B") == {"bid": 5}


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
