"""Fuzz the cluster log decoders (`decode_entry`, `decode_checkpoint`): what an edge
reads from Redis, which anyone with access to that Redis can write."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from ticker.cluster.log_codec import (
    BadLogData,
    Checkpoint,
    decode_checkpoint,
    decode_entry,
    encode_checkpoint,
    encode_entry,
)
from ticker.core.codec import encode_data
from ticker.core.hub import Published
from ticker.core.messages import DataMessage
from ticker.core.position import Position

from ..strategies import data_messages
from .budget import FUZZ, values


def packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


positions = st.builds(Position, st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
entry_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(values.map(packed), max_size=4).map(b"".join),
    st.lists(data_messages().map(encode_data), min_size=1, max_size=4).map(b"".join),
)


@FUZZ
@given(positions, entry_bytes, st.integers(0, 300))
def test_an_entry_decodes_or_is_bad_log_data(position: Position, data: bytes, cut: int) -> None:
    for candidate in (data, data[:cut]):
        try:
            decoded = decode_entry(position, candidate)
        except BadLogData:
            continue
        assert 1 <= len(decoded) <= len(candidate)
        assert b"".join(payload for _, payload in decoded) == candidate
        assert decoded[-1][0].offset == position.offset


@FUZZ
@given(st.lists(data_messages(), min_size=1, max_size=5))
def test_entries_round_trip(messages: list[DataMessage]) -> None:
    batch = [Published(m, 9) for m in messages]
    position, data = encode_entry(batch)
    assert decode_entry(position, data) == [(item.message, item.payload) for item in batch]


checkpoint_shaped = st.one_of(
    values,
    st.fixed_dictionaries(
        {"v": st.sampled_from([1, 2, "1"]), "epoch": values, "offset": values,
         "snapshots": st.lists(st.binary(max_size=40) | data_messages().map(encode_data),
                               max_size=3) | values},
    ),
)  # fmt: skip


@FUZZ
@given(st.binary(max_size=300) | checkpoint_shaped.map(packed))
def test_a_checkpoint_decodes_or_is_bad_log_data(data: bytes) -> None:
    try:
        checkpoint = decode_checkpoint(data)
    except BadLogData:
        return
    assert len(checkpoint.snapshots) <= len(data)
    assert all(s.snapshot for s in checkpoint.snapshots)


@FUZZ
@given(positions, st.lists(data_messages(), max_size=5))
def test_checkpoints_round_trip(position: Position, messages: list[DataMessage]) -> None:
    snapshots = [m._replace(snapshot=True) for m in messages]
    checkpoint = Checkpoint(position, snapshots)
    assert decode_checkpoint(encode_checkpoint(checkpoint)) == checkpoint
