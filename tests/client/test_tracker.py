"""The client's pure core: state, positions, gaps, resets, and what is reported."""

from __future__ import annotations

from typing import Any

import pytest

from ticker.client.errors import FeedProtocolError
from ticker.client.tracker import Tracker
from ticker.client.updates import Loss, UpdateKind
from ticker.core.messages import DataMessage, Error, Heartbeat, Hello, Reset, ServerMessage
from ticker.core.position import Position

NOW_NS = 1_763_762_000_000_000_000
TS_US = NOW_NS // 1000 - 2_500  # published 2.5 ms before "now"


def hello(epoch: int = 7, offset: int = 0) -> Hello:
    return Hello(1, epoch, offset, 15.0, None)


def snap(topic: str, seq: int, offset: int, **data: Any) -> DataMessage:
    return DataMessage(True, topic, seq, offset, TS_US, data)


def delta(topic: str, seq: int, offset: int, **data: Any) -> DataMessage:
    return DataMessage(False, topic, seq, offset, TS_US, data)


def book(seq: int, offset: int, bids: list[list[int]], *, snapshot: bool) -> DataMessage:
    return DataMessage(snapshot, "book.BTC-USD", seq, offset, TS_US, {"bids": bids, "asks": []})


def run(tracker: Tracker, *units: list[ServerMessage]) -> list[Any]:
    updates = []
    for unit in units:
        step = tracker.receive(unit, NOW_NS)
        assert not step.resync and step.refusal is None
        updates += step.updates
    return updates


def following() -> Tracker:
    """A tracker that subscribed and holds quote.BTC-USD at seq 3 and a book at seq 5."""
    tracker = Tracker()
    tracker.connected()
    run(
        tracker,
        [hello(7, 10)],
        [snap("quote.BTC-USD", 3, 10, bid=100, ask=101), book(5, 10, [[99, 2]], snapshot=True)],
    )
    return tracker


def test_snapshots_then_deltas_give_state_position_and_latency() -> None:
    tracker = following()
    assert tracker.position == Position(7, 10)
    updates = run(
        tracker,
        [delta("quote.BTC-USD", 4, 11, bid=102)],
        [book(6, 12, [[99, 0], [98, 1]], snapshot=False)],
    )
    assert [u.kind for u in updates] == [UpdateKind.DELTA, UpdateKind.DELTA]
    quote, depth = updates
    assert quote.data == {"bid": 102}
    assert quote.state == {"bid": 102, "ask": 101}
    assert (quote.seq, quote.position) == (4, Position(7, 11))
    assert quote.latency_s == pytest.approx(0.0025, abs=1e-6)
    assert depth.state == {"bids": [[98, 1]], "asks": []}
    assert tracker.position == Position(7, 12)
    assert tracker.stats.latency.total == 4


def test_a_replay_overlapping_what_is_held_is_skipped_not_applied_twice() -> None:
    tracker = following()
    run(tracker, [delta("quote.BTC-USD", 4, 11, bid=102)])
    assert run(tracker, [delta("quote.BTC-USD", 4, 11, bid=102)]) == []
    assert tracker.stats.duplicates == 1
    assert tracker.state("quote.BTC-USD") == {"bid": 102, "ask": 101}


def test_a_gap_rewinds_to_the_topic_last_offset_and_asks_for_a_resync() -> None:
    tracker = following()
    run(tracker, [delta("quote.BTC-USD", 4, 11, bid=102)], [book(6, 12, [[97, 1]], snapshot=False)])
    # quote seq 5 (offset 13) never arrived; the book's next delta applies, quote's does not.
    step = tracker.receive(
        [book(7, 14, [[96, 1]], snapshot=False), delta("quote.BTC-USD", 6, 15, ask=105)], NOW_NS
    )
    assert step.resync
    assert [u.topic for u in step.updates] == ["book.BTC-USD"]
    assert tracker.stats.gaps == 1
    # Resume from the quote's last good offset: the server replays 12..15; what the book
    # already holds comes back as duplicates and is skipped.
    assert tracker.resume_position() == Position(7, 11)
    tracker.connected()
    updates = run(
        tracker,
        [hello(7, 15)],
        [book(6, 12, [[97, 1]], snapshot=False)],
        [delta("quote.BTC-USD", 5, 13, bid=103)],
        [book(7, 14, [[96, 1]], snapshot=False)],
        [delta("quote.BTC-USD", 6, 15, ask=105)],
    )
    assert [(u.topic, u.seq) for u in updates] == [("quote.BTC-USD", 5), ("quote.BTC-USD", 6)]
    assert tracker.state("quote.BTC-USD") == {"bid": 103, "ask": 105}
    assert tracker.stats.duplicates == 2
    assert tracker.position == Position(7, 15)


def test_a_delta_for_a_topic_never_held_starts_a_resnapshot() -> None:
    tracker = following()
    step = tracker.receive([delta("quote.ETH-USD", 9, 11, bid=5)], NOW_NS)
    assert step.resync
    assert tracker.resume_position() is None  # subscribe afresh: snapshots of everything
    assert tracker.topics() == []
    tracker.connected()
    updates = run(
        tracker,
        [hello(7, 20)],
        [snap("quote.BTC-USD", 8, 20, bid=1), snap("quote.ETH-USD", 9, 20, bid=5)],
    )
    # book.BTC-USD was held but the server sent no snapshot for it: it is dropped.
    by_topic = {u.topic: u for u in updates}
    assert all(u.kind is UpdateKind.RESET for u in updates)
    assert by_topic["quote.ETH-USD"].loss is not None
    assert by_topic["quote.ETH-USD"].loss.after == Position(7, 10)
    assert by_topic["quote.ETH-USD"].loss.until == Position(7, 20)
    assert by_topic["quote.ETH-USD"].loss.reason == "gap"
    assert by_topic["book.BTC-USD"].seq == 0
    assert by_topic["book.BTC-USD"].state == {"bids": [], "asks": []}
    assert sorted(tracker.topics()) == ["quote.BTC-USD", "quote.ETH-USD"]
    assert tracker.position == Position(7, 20)


def test_a_server_reset_rebuilds_every_topic_and_reports_the_loss() -> None:
    tracker = following()
    tracker.connected()
    # The server restarted (epoch 8): reset, then a burst of snapshots at its position.
    assert tracker.receive([hello(8, 40)], NOW_NS).updates == []
    assert tracker.receive([Reset(8, 40, "other_epoch")], NOW_NS).updates == []
    assert tracker.topics() == []  # nothing stale is ever shown
    assert tracker.resume_position() == Position(7, 10)  # until the burst has arrived
    updates = run(tracker, [snap("quote.BTC-USD", 2, 40, bid=7), book(3, 40, [], snapshot=True)])
    assert [u.kind for u in updates] == [UpdateKind.RESET, UpdateKind.RESET]
    loss = updates[0].loss
    assert loss is not None
    assert (loss.after, loss.until, loss.reason) == (
        Position(7, 10),
        Position(8, 40),
        "other_epoch",
    )
    assert tracker.position == Position(8, 40)
    assert tracker.stats.resets == 1
    # Afterwards deltas apply as usual.
    assert run(tracker, [delta("quote.BTC-USD", 3, 41, ask=9)])[0].kind is UpdateKind.DELTA


def test_a_reset_without_snapshots_drops_the_topics_at_the_next_message() -> None:
    tracker = following()
    tracker.connected()
    run(tracker, [hello(8, 0)], [Reset(8, 0, "other_epoch")])
    # The restarted server's first message of the topic: a snapshot at seq 1.
    updates = run(tracker, [snap("quote.BTC-USD", 1, 1, bid=1)])
    dropped = [u for u in updates if u.seq == 0]
    assert {u.topic for u in dropped} == {"quote.BTC-USD", "book.BTC-USD"}
    assert all(u.kind is UpdateKind.RESET for u in dropped)
    assert updates[-1].kind is UpdateKind.SNAPSHOT and updates[-1].state == {"bid": 1}
    assert tracker.position == Position(8, 1)


def test_a_reset_and_its_snapshots_in_one_unit_rebuild_and_make_a_resume_point() -> None:
    # The server sends a reset and its snapshots as one WebSocket frame (on SSE: one
    # group of events, the last snapshot carrying the id): all of it or none.
    tracker = following()
    tracker.connected()
    run(tracker, [hello(7, 40)])
    updates = run(
        tracker,
        [
            Reset(7, 40, "too_old"),
            snap("quote.BTC-USD", 9, 40, bid=7),
            book(12, 40, [[98, 1]], snapshot=True),
        ],
    )
    assert [(u.kind, u.topic, u.seq) for u in updates] == [
        (UpdateKind.RESET, "quote.BTC-USD", 9),
        (UpdateKind.RESET, "book.BTC-USD", 12),
    ]
    assert {u.loss for u in updates} == {Loss(Position(7, 10), Position(7, 40), "too_old")}
    assert tracker.position == Position(7, 40) == tracker.resume_position()
    assert tracker.state("book.BTC-USD") == {"bids": [[98, 1]], "asks": []}
    assert tracker.stats.resets == 1
    # A unit of a reset alone (nothing matches any more): what was held is dropped at
    # the next unit (here a heartbeat); topics that appear later start from a snapshot.
    tracker.connected()
    run(tracker, [hello(7, 50)], [Reset(7, 50, "too_old")])
    assert tracker.resume_position() == Position(7, 40)  # the reset is not finished
    later = run(tracker, [Heartbeat(7, 51, TS_US)], [snap("trade.BTC-USD", 1, 52, price=3)])
    assert {u.topic for u in later if u.seq == 0} == {"quote.BTC-USD", "book.BTC-USD"}
    assert later[-1].kind is UpdateKind.SNAPSHOT and later[-1].loss is None
    assert tracker.position == Position(7, 52)


def test_a_reset_interrupted_by_a_reconnect_keeps_where_the_loss_began() -> None:
    tracker = following()
    tracker.connected()
    run(tracker, [hello(8, 40)], [Reset(8, 40, "other_epoch")])
    tracker.connected()  # dropped before the snapshots came
    run(tracker, [hello(8, 45)], [Reset(8, 45, "other_epoch")])
    updates = run(tracker, [snap("quote.BTC-USD", 2, 45, bid=7)])
    assert updates[0].loss is not None
    assert updates[0].loss.after == Position(7, 10)
    assert updates[0].loss.until == Position(8, 45)
    assert tracker.stats.resets == 1


def test_conflated_snapshots_are_exact_but_a_jump_in_trades_is_a_loss() -> None:
    tracker = following()
    run(tracker, [snap("trade.BTC-USD", 4, 10, price=1)])
    updates = run(
        tracker,
        [snap("quote.BTC-USD", 7, 11, bid=110)],  # seq 4..6 coalesced by the server
        [snap("trade.BTC-USD", 6, 12, price=3)],  # trade seq 5 is gone
    )
    assert updates[0].kind is UpdateKind.SNAPSHOT and updates[0].skipped == 3
    assert updates[1].kind is UpdateKind.RESET
    assert updates[1].loss is not None and updates[1].loss.reason == "skipped"
    assert tracker.stats.conflated == 1


def test_a_first_subscription_has_no_resume_point_until_its_first_data() -> None:
    # The hello comes before the snapshot burst: resuming from it would skip the
    # snapshots of topics that do not change, so a cut here means fresh snapshots.
    tracker = Tracker()
    tracker.connected()
    run(tracker, [hello(7, 42)])
    assert tracker.resume_position() is None
    run(tracker, [Heartbeat(7, 42, TS_US)])  # may precede the subscription's snapshots
    assert tracker.resume_position() is None
    tracker.connected()
    run(tracker, [hello(7, 50)], [snap("quote.BTC-USD", 3, 50, bid=1)])
    assert tracker.resume_position() == Position(7, 50)
    run(tracker, [Heartbeat(7, 55, TS_US)])  # now a heartbeat is a resume point
    assert tracker.resume_position() == Position(7, 55)


def test_a_fresh_resubscription_reports_what_may_be_missing_since_the_first_hello() -> None:
    # Cut after the hello, before any data; the stream moved on before the reconnect:
    # the events in between are not replayed, so the snapshots come as RESETs.
    tracker = Tracker()
    tracker.connected()
    run(tracker, [hello(7, 42)])
    tracker.connected()
    assert tracker.resume_position() is None
    updates = run(
        tracker,
        [hello(7, 60)],
        [snap("trade.BTC-USD", 18, 60, price=5), snap("quote.BTC-USD", 3, 60, bid=1)],
    )
    assert [u.kind for u in updates] == [UpdateKind.RESET, UpdateKind.RESET]
    assert {u.loss for u in updates} == {Loss(Position(7, 42), Position(7, 60), "resubscribed")}
    assert tracker.stats.resets == 1 and tracker.resume_position() == Position(7, 60)
    later = run(tracker, [delta("trade.BTC-USD", 19, 61, price=6)])
    assert [u.kind for u in later] == [UpdateKind.DELTA]


def test_a_fresh_resubscription_of_a_stream_that_did_not_move_loses_nothing() -> None:
    tracker = Tracker()
    tracker.connected()
    run(tracker, [hello(7, 42)])
    tracker.connected()
    updates = run(tracker, [hello(7, 42)], [snap("quote.BTC-USD", 3, 42, bid=1)])
    assert [u.kind for u in updates] == [UpdateKind.SNAPSHOT]
    assert tracker.stats.resets == 0


def test_a_first_message_of_a_new_topic_is_a_snapshot_and_a_resume_point() -> None:
    # Nothing had state at subscribe time (no burst): the topic's first message, a
    # snapshot at seq 1, makes it live; a lone delta would be a missed snapshot.
    tracker = Tracker()
    tracker.connected()
    updates = run(tracker, [hello(7, 42)], [snap("trade.BTC-USD", 1, 43, price=5)])
    assert [(u.kind, u.seq, u.loss) for u in updates] == [(UpdateKind.SNAPSHOT, 1, None)]
    assert tracker.resume_position() == Position(7, 43)
    assert run(tracker, [delta("trade.BTC-USD", 2, 44, price=6)])[0].kind is UpdateKind.DELTA
    step = tracker.receive([delta("trade.ETH-USD", 1, 45, price=1)], NOW_NS)
    assert step.resync and tracker.resume_position() is None  # a fresh subscription


def test_a_live_first_snapshot_replaces_the_empty_state_of_an_exact_topic() -> None:
    # An exact topic subscribed before it had state comes as a seq-0 empty snapshot;
    # its first message (seq 1, a snapshot) replaces it: no conflation, no loss.
    tracker = Tracker()
    tracker.connected()
    run(tracker, [hello(7, 42)], [snap("trade.BTC-USD", 0, 42)])
    assert tracker.state("trade.BTC-USD") == {}
    (update,) = run(tracker, [snap("trade.BTC-USD", 1, 43, price=5)])
    assert (update.kind, update.skipped, update.loss) == (UpdateKind.SNAPSHOT, 0, None)
    assert tracker.state("trade.BTC-USD") == {"price": 5}


def test_a_topic_born_after_a_fresh_resubscription_is_no_loss() -> None:
    # Cut after the hello; the stream moved on; the resubscription finds a topic whose
    # first message came after the first hello: seq 1 is its whole history.
    tracker = Tracker()
    tracker.connected()
    run(tracker, [hello(7, 42)])
    tracker.connected()
    updates = run(tracker, [hello(7, 60)], [snap("trade.BTC-USD", 1, 60, price=5)])
    assert [(u.kind, u.loss) for u in updates] == [(UpdateKind.SNAPSHOT, None)]
    assert tracker.stats.resets == 0


def test_heartbeats_move_the_position_and_errors_are_refusals() -> None:
    tracker = following()
    run(tracker, [Heartbeat(7, 30, TS_US)])
    assert tracker.position == Position(7, 30)
    step = tracker.receive([Error(4400, "unknown symbol 'NOPE-USD'")], NOW_NS)
    assert step.refusal == Error(4400, "unknown symbol 'NOPE-USD'")


def test_protocol_violations_raise() -> None:
    tracker = Tracker()
    with pytest.raises(FeedProtocolError, match="before the hello"):
        tracker.receive([snap("quote.BTC-USD", 1, 1, bid=1)], NOW_NS)
    with pytest.raises(FeedProtocolError, match="version 2"):
        tracker.receive([Hello(2, 7, 0, 15.0, None)], NOW_NS)


# -- bursts whose snapshots carry their own topic's offset, ended by a heartbeat ---------


def test_a_burst_resumes_from_its_heartbeat_and_its_snapshots_are_no_latency_sample() -> None:
    tracker = Tracker()
    tracker.connected()
    updates = run(
        tracker,
        [hello(7, 50)],
        # quote.BTC-USD last changed at offset 5, the book at 40; the burst reflects 50.
        [
            snap("quote.BTC-USD", 3, 5, bid=1),
            book(9, 40, [[99, 2]], snapshot=True),
            Heartbeat(7, 50, TS_US),
        ],
    )
    assert [(u.kind, u.position) for u in updates] == [
        (UpdateKind.SNAPSHOT, Position(7, 5)),
        (UpdateKind.SNAPSHOT, Position(7, 40)),
    ]
    assert tracker.position == Position(7, 50) == tracker.resume_position()
    # Their ts is when their topic last changed: not a latency sample.
    assert tracker.stats.latency.total == 0
    # The stream goes on from 50; an older message of a topic is a duplicate.
    later = run(tracker, [delta("quote.BTC-USD", 4, 51, bid=2)])
    assert [u.kind for u in later] == [UpdateKind.DELTA]
    assert tracker.stats.latency.total == 1


def test_a_reset_unit_rebuilds_from_snapshots_at_their_own_offsets() -> None:
    tracker = following()
    samples = tracker.stats.latency.total
    tracker.connected()
    run(tracker, [hello(7, 100)])
    updates = run(
        tracker,
        [
            Reset(7, 100, "too_old"),
            snap("quote.BTC-USD", 9, 20, bid=7),
            snap("quote.ETH-USD", 4, 90, bid=3),
            Heartbeat(7, 100, TS_US),
        ],
    )
    # Both rebuilt (book.BTC-USD, held but absent from the unit, is dropped).
    assert [(u.kind, u.topic, u.seq) for u in updates] == [
        (UpdateKind.RESET, "quote.BTC-USD", 9),
        (UpdateKind.RESET, "quote.ETH-USD", 4),
        (UpdateKind.RESET, "book.BTC-USD", 0),
    ]
    assert {u.loss for u in updates} == {Loss(Position(7, 10), Position(7, 100), "too_old")}
    assert tracker.position == Position(7, 100)
    assert sorted(tracker.topics()) == ["quote.BTC-USD", "quote.ETH-USD"]
    assert tracker.stats.resets == 1 and tracker.stats.latency.total == samples


def test_a_resnapshot_after_a_gap_is_consistent_with_the_bursts_position() -> None:
    tracker = following()
    step = tracker.receive([delta("quote.ETH-USD", 9, 11, bid=5)], NOW_NS)
    assert step.resync and tracker.resume_position() is None
    tracker.connected()
    updates = run(
        tracker,
        [hello(7, 30)],
        [
            snap("quote.BTC-USD", 8, 12, bid=1),
            snap("quote.ETH-USD", 9, 25, bid=5),
            Heartbeat(7, 30, TS_US),
        ],
    )
    losses = {u.loss for u in updates}
    assert losses == {Loss(Position(7, 10), Position(7, 30), "gap")}
    assert tracker.position == Position(7, 30)


def checked_book(seq: int, offset: int, bids: list[list[int]], checksum: int) -> DataMessage:
    data = {"bids": bids, "asks": [], "checksum": checksum}
    return DataMessage(False, "book.BTC-USD", seq, offset, TS_US, data)


def test_a_book_that_fails_its_checksum_is_re_snapshotted_and_reported_as_a_reset() -> None:
    from ticker.core.checksum import book_checksum

    tracker = following()  # book.BTC-USD at seq 5: bids {99: 2}
    # A checksum that holds passes.
    run(tracker, [checked_book(6, 11, [[98, 1]], book_checksum({99: 2, 98: 1}, {}))])
    assert tracker.stats.checksum_mismatches == 0
    # The held book diverges (on purpose here): the next checksum fails.
    held = tracker.mirror.held["book.BTC-USD"]
    held.bids = held.bids.with_levels([(97, 5)])  # a side is replaced, never changed
    good = book_checksum({99: 2, 98: 1, 96: 1}, {})
    step = tracker.receive([checked_book(7, 12, [[96, 1]], good)], NOW_NS)
    assert step.resync and step.updates == []
    assert tracker.stats.checksum_mismatches == 1 and tracker.stats.gaps == 0
    assert tracker.resnapshotting() == "checksum"
    assert tracker.resume_position() is None  # a replay would build on the wrong book
    assert tracker.topics() == []
    tracker.connected()
    snapshot = DataMessage(
        True, "book.BTC-USD", 7, 12, TS_US, {"bids": [[99, 2], [98, 1], [96, 1]], "asks": []}
    )
    updates = run(
        tracker,
        [hello(7, 13)],
        [snapshot, snap("quote.BTC-USD", 3, 10, bid=100, ask=101), Heartbeat(7, 13, TS_US)],
    )
    assert [u.kind for u in updates] == [UpdateKind.RESET, UpdateKind.RESET]
    assert updates[0].loss == Loss(Position(7, 11), Position(7, 13), "checksum")
    assert tracker.state("book.BTC-USD") == {"bids": [[99, 2], [98, 1], [96, 1]], "asks": []}
    assert tracker.resnapshotting() is None and tracker.position == Position(7, 13)
