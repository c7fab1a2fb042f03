"""Log entries carry the hub's bytes unchanged; checkpoints round-trip."""

from __future__ import annotations

import pytest

from ticker.cluster.log_codec import (
    BadLogData,
    Checkpoint,
    decode_checkpoint,
    decode_entry,
    encode_checkpoint,
    encode_entries,
    encode_entry,
)
from ticker.config import Config
from ticker.core.codec import encode_server
from ticker.core.hub import Hub
from ticker.core.messages import Hello
from ticker.core.position import Position
from ticker.model.events import BookUpdate, Quote


def test_an_entry_is_the_batch_bytes_and_its_id_the_last_position() -> None:
    hub = Hub(Config(), 42)
    batch = hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    batch += hub.publish(BookUpdate("a", "X-Y", 0, ((10, 1),), ((11, 2),), True), 0)
    position, data = encode_entry(batch)
    assert position == Position(42, batch[-1].offset)
    decoded = decode_entry(position, data)
    assert [payload for _, payload in decoded] == [p.payload for p in batch]
    assert [message for message, _ in decoded] == [p.message for p in batch]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x93\x01\x02", b"\xc1", b"\x96\xa1s"],
)
def test_bad_entries_are_refused(data: bytes) -> None:
    with pytest.raises(BadLogData):
        decode_entry(Position(1, 1), data)


def test_an_entry_holding_another_message_type_or_a_cut_message_is_refused() -> None:
    hub = Hub(Config(), 1)
    batch = hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    position, data = encode_entry(batch)
    hello = encode_server(Hello(1, 1, 1, 15.0, None))
    for bad in (hello, data + hello, data + data[:-1], data[:-1], data + b"\xc1"):
        with pytest.raises(BadLogData):
            decode_entry(position, bad)
    assert decode_entry(position, data) == [(p.message, p.payload) for p in batch]
    (alone,) = hub.publish(Quote("a", "X-Y", 1, 101, 1, 200, 1), 0)[:1]
    position, data = encode_entry([alone])
    assert decode_entry(position, data) == [(alone.message, data)]


def test_an_entry_whose_id_does_not_match_is_refused() -> None:
    hub = Hub(Config(), 1)
    batch = hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    _, data = encode_entry(batch)
    with pytest.raises(BadLogData):
        decode_entry(Position(1, 99), data)


def test_checkpoints_round_trip() -> None:
    hub = Hub(Config(), 8)
    hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    hub.publish(BookUpdate("a", "X-Y", 0, ((10, 1),), ((11, 2),), True), 0)
    checkpoint = Checkpoint(hub.position, hub.checkpoint())
    assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint
    with pytest.raises(BadLogData):
        decode_checkpoint(b"\x81\xa1v\x02")


def test_a_batch_is_split_into_entries_of_bounded_bytes_in_order() -> None:
    hub = Hub(Config(max_venues=0), 42)  # one message per event: batch[40] is the book
    batch = []
    for i in range(40):
        batch += hub.publish(Quote("a", "X-Y", i, 100 + i, 1, 200 + i, 1), 0)
    bids = tuple((100_000 - i, 1000 + i) for i in range(1, 200))
    big = BookUpdate("a", "X-Y", 0, bids, ((100_001, 2),), True)
    batch += hub.publish(big, 0)  # one message larger than the bound below
    batch += hub.publish(Quote("a", "X-Y", 99, 101, 1, 201, 1), 0)
    bound = max(len(p.payload) for p in batch[:40]) * 5
    assert len(batch[40].payload) > bound
    entries = encode_entries(batch, bound)
    assert len(entries) > 2
    decoded = []
    for position, data in entries:
        messages = decode_entry(position, data)
        assert len(data) <= bound or len(messages) == 1
        decoded += messages
    assert [payload for _, payload in decoded] == [p.payload for p in batch]
    assert [position for position, _ in entries] == sorted({p for p, _ in entries})
    assert encode_entries(batch, 1 << 20) == [encode_entry(batch)]
