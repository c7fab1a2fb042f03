from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.checksum import book_checksum
from ticker.core.codec import decode_server, encode_data
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.sequencer import Sequencer
from ticker.errors import ConfigError


def test_latest_value_topics_send_only_changed_fields() -> None:
    seq = Sequencer(epoch=5, keyframe_interval=100)
    first = seq.set_fields("quote.BTC-USD", {"bid": 10, "ask": 12}, now_us=1)
    assert first == DataMessage(True, "quote.BTC-USD", 1, 1, 1, {"bid": 10, "ask": 12})
    second = seq.set_fields("quote.BTC-USD", {"bid": 10, "ask": 13}, now_us=2)
    assert second == DataMessage(False, "quote.BTC-USD", 2, 2, 2, {"ask": 13})
    assert seq.set_fields("quote.BTC-USD", {"bid": 10, "ask": 13}, now_us=3) is None
    assert seq.position.offset == 2


def test_offsets_are_shared_and_sequences_are_per_topic() -> None:
    seq = Sequencer(epoch=1)
    a = seq.set_fields("quote.A-B", {"bid": 1}, 0)
    b = seq.add_event("trade.A-B", {"price": 1}, 0)
    c = seq.set_fields("quote.A-B", {"bid": 2}, 0)
    assert [(m.offset, m.seq) for m in (a, b, c) if m] == [(1, 1), (2, 1), (3, 2)]


def test_the_first_message_of_every_kind_of_topic_is_a_snapshot_of_its_whole_state() -> None:
    # A client that subscribed before the topic existed starts from this message: it
    # must be a snapshot (a strict mirror refuses a delta of a topic it does not hold).
    seq = Sequencer(epoch=1)
    quote = seq.set_fields("quote.A-B", {"bid": 10, "ask": None}, 0)
    # The book's first message is the whole book, best first, not the increments given.
    book = seq.add_to_levels("book.A-B", [(99, 3), (100, 5), (99, 1)], [(101, 2)], 0)
    trade = seq.add_event("trade.A-B", {"price": 7, "size": 1}, 0)
    assert quote is not None and book is not None
    assert [(m.snapshot, m.seq) for m in (quote, book, trade)] == [(True, 1)] * 3
    # A book snapshot carries the checksum of the book beside its state.
    assert book.data == {
        "bids": [[100, 5], [99, 4]],
        "asks": [[101, 2]],
        "checksum": book_checksum({100: 5, 99: 4}, {101: 2}),
    }
    for message in (quote, book, trade):
        assert message.data == seq.snapshot_message(message.topic).data
        state = {k: v for k, v in message.data.items() if k != "checksum"}
        assert state == seq.snapshot(message.topic).data
        assert Mirror().apply(message) == Applied(1)
    later = [
        seq.set_fields("quote.A-B", {"bid": 11, "ask": None}, 0),
        seq.add_to_levels("book.A-B", [(100, -5)], [], 0),
        seq.add_event("trade.A-B", {"price": 8, "size": 1}, 0),
    ]
    assert [(m.snapshot, m.seq) for m in later if m] == [(False, 2)] * 3


def test_book_increments_publish_absolute_sizes_of_changed_levels() -> None:
    seq = Sequencer(epoch=1)
    first = seq.add_to_levels("book.A-B", [(100, 5), (99, 3)], [(101, 2)], 0)
    assert first is not None
    assert first.data == {
        "bids": [[100, 5], [99, 3]],
        "asks": [[101, 2]],
        "checksum": book_checksum({100: 5, 99: 3}, {101: 2}),
    }
    second = seq.add_to_levels("book.A-B", [(100, 0), (99, -3)], [(101, 4)], 0)
    assert second is not None and second.data == {"bids": [[99, 0]], "asks": [[101, 6]]}
    assert seq.add_to_levels("book.A-B", [(100, 0)], [], 0) is None
    assert seq.snapshot("book.A-B").data == {"bids": [[100, 5]], "asks": [[101, 6]]}


def test_keyframe_every_n_updates_carries_the_whole_state() -> None:
    seq = Sequencer(epoch=1, keyframe_interval=3)
    kinds = []
    for i in range(7):
        message = seq.set_fields("ticker.A-B", {"last": i, "open": 1}, 0)
        assert message is not None
        kinds.append(message.snapshot)
    # The first message is a snapshot; the count to the next keyframe starts there.
    assert kinds == [True, False, False, True, False, False, True]
    forced = seq.keyframe("ticker.A-B", 0)
    assert forced.snapshot and forced.data == {"last": 6, "open": 1} and forced.seq == 8


def test_a_snapshot_carries_its_topics_last_offset_and_time() -> None:
    # Consistent with the current position, but its seq, offset and ts are those of the
    # topic's last message, so a client can tell when the topic last changed.
    seq = Sequencer(epoch=1)
    seq.set_fields("quote.A-B", {"bid": 1}, 10)
    seq.add_event("trade.A-B", {"price": 1}, 20)
    snap = seq.snapshot("quote.A-B")
    assert (snap.snapshot, snap.seq, snap.offset, snap.ts_us, snap.data) == (
        True,
        1,
        1,
        10,
        {"bid": 1},
    )
    seq.set_fields("quote.A-B", {"bid": 2}, 30)
    seq.add_event("trade.A-B", {"price": 2}, 40)
    seq.add_to_levels("book.A-B", [(1, 1)], [], 50)
    assert seq.snapshot("quote.A-B")[2:5] == (2, 3, 30)
    assert seq.snapshot("trade.A-B")[2:5] == (2, 4, 40)
    keyframe = seq.keyframe("quote.A-B", 60)
    assert seq.snapshot("quote.A-B")[2:5] == (3, keyframe.offset, 60)
    emptied = seq.empty_topic("book.A-B", 70)
    assert seq.snapshot("book.A-B")[2:5] == (emptied.seq, emptied.offset, 70)
    assert seq.position.offset == emptied.offset
    empty = seq.snapshot("book.C-D")
    assert (empty.seq, empty.offset, empty.ts_us, empty.data) == (0, 0, 0, {"bids": [], "asks": []})


def test_a_follower_and_a_restored_sequencer_carry_the_same_snapshot_offsets() -> None:
    writer = Sequencer(epoch=1)
    messages = [
        writer.set_fields("quote.A-B", {"bid": 1}, 10),
        writer.add_event("trade.A-B", {"price": 1}, 20),
        writer.set_fields("quote.A-B", {"bid": 2}, 30),
    ]
    follower = Sequencer(epoch=1)
    for message in messages:
        assert message is not None
        follower.apply(message)
    restored = Sequencer(epoch=1)
    checkpoint = [writer.snapshot(topic) for topic in writer.topics()]
    restored.restore(writer.position.offset, checkpoint)
    for topic in writer.topics():
        assert follower.snapshot(topic) == writer.snapshot(topic)
        assert restored.snapshot(topic) == writer.snapshot(topic)
    assert writer.snapshot("trade.A-B")[2:5] == (1, 2, 20)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError):
        Sequencer(epoch=1, keyframe_interval=0)
    seq = Sequencer(epoch=1)
    with pytest.raises(ValueError, match="not a book topic"):
        seq.add_to_levels("quote.A-B", [], [], 0)


# An operation on the sequencer: (topic index, values).
operations = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.dictionaries(st.sampled_from(["bid", "ask", "last"]), st.none() | st.integers(1, 5)),
        st.lists(st.tuples(st.integers(90, 110), st.integers(0, 3)), max_size=4),
    ),
    max_size=60,
)
TOPICS = ["quote.A-B", "book.A-B", "trade.A-B", "ticker.C-D"]


def _apply(seq: Sequencer, index: int, fields: dict[str, Any], levels: Any) -> DataMessage | None:
    topic = TOPICS[index]
    if topic.startswith("book"):
        # Absolute target sizes, turned into increments against the current state.
        current = seq.snapshot(topic).data
        held = {p: s for p, s in current["bids"] + current["asks"]}
        targets = dict(levels)
        moves = [(p, s - held.get(p, 0)) for p, s in targets.items()]
        bids = [(p, d) for p, d in moves if p < 100]
        asks = [(p, d) for p, d in moves if p >= 100]
        return seq.add_to_levels(topic, bids, asks, 0)
    if topic.startswith("trade"):
        return seq.add_event(topic, dict(fields), 0)
    return seq.set_fields(topic, dict(fields), 0)


@given(operations, st.integers(0, 60), st.integers(1, 7))
def test_a_mirror_from_snapshot_plus_deltas_equals_the_sequencer_at_every_position(
    ops: list[tuple[int, dict[str, Any], Any]], join_at: int, keyframe_interval: int
) -> None:
    seq = Sequencer(epoch=1, keyframe_interval=keyframe_interval)
    mirror = Mirror()
    for step, (index, fields, levels) in enumerate(ops):
        if step == join_at:
            for topic in TOPICS:
                mirror.apply(seq.snapshot(topic))
        message = _apply(seq, index, fields, levels)
        if message is None or step < join_at:
            continue
        decoded = decode_server(encode_data(message))
        assert isinstance(decoded, DataMessage)
        assert mirror.apply(decoded) == Applied(message.seq)
        for topic in TOPICS:
            assert mirror.data(topic) == seq.snapshot(topic).data
            assert mirror.seq(topic) == seq.snapshot(topic).seq
