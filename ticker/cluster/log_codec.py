"""The bytes of the cluster log: one entry per hub batch, and the checkpoint.

An entry holds a batch's messages exactly as the hub encoded them (their msgpack bytes
concatenated), so an edge serves the writer's bytes and never encodes a message again;
its stream ID is the position of the batch's last message. A checkpoint is every topic's
snapshot at one position, so a follower starts there instead of at the start of the log.
Pure: no Redis, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from ticker.core.codec import decode_frame, decode_server, encode_data
from ticker.core.hub import Published
from ticker.core.messages import DataMessage
from ticker.core.position import Position

CHECKPOINT_VERSION: Final = 1
MAX_ENTRY_BYTES: Final = 16 * 1024 * 1024
"""An entry larger than this is refused when read (writers split at
`cluster_log_max_entry_bytes`, at most 512 KiB, or write one message alone)."""


class BadLogData(Exception):
    """An entry or checkpoint that does not decode: the log is not one we wrote."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every topic's whole state at `position` (snapshots carry their own seq)."""

    position: Position
    snapshots: list[DataMessage]


def encode_entry(batch: Sequence[Published]) -> tuple[Position, bytes]:
    """A batch as one log entry: its ID (the last message's position) and its bytes."""
    last = batch[-1]
    return Position(last.epoch, last.offset), b"".join(item.payload for item in batch)


def encode_entries(batch: Sequence[Published], max_bytes: int) -> list[tuple[Position, bytes]]:
    """A batch as log entries of at most `max_bytes` each, in order (consecutive messages
    per entry; a message larger than `max_bytes` is an entry of its own, never split).

    Each entry's ID is its own last message's position, so the entries of one batch are
    ordinary consecutive entries to every reader.
    """
    entries: list[tuple[Position, bytes]] = []
    start, size = 0, 0
    for index, item in enumerate(batch):
        if index > start and size + len(item.payload) > max_bytes:
            entries.append(encode_entry(batch[start:index]))
            start, size = index, 0
        size += len(item.payload)
    if start < len(batch):
        entries.append(encode_entry(batch[start:]))
    return entries


def decode_entry(position: Position, data: bytes) -> list[tuple[DataMessage, bytes]]:
    """The messages of one entry with the exact bytes each was encoded to, in order.

    Raises:
        BadLogData: not concatenated data messages, or the last is not at `position`.
    """
    if len(data) > MAX_ENTRY_BYTES:
        raise BadLogData(f"entry {position} is {len(data)} bytes")
    # The Unpacker only finds where each message ends (`skip` builds no objects); each
    # message is then decoded once, by the client's decoder. (Iterating built every
    # message and `decode_frame` built it again, with an Unpacker of its own.)
    size = len(data)
    unpacker = msgpack.Unpacker(max_buffer_size=size + 1)
    unpacker.feed(data)
    out: list[tuple[DataMessage, bytes]] = []
    start = 0
    try:
        while start < size:
            unpacker.skip()
            end = unpacker.tell()
            payload = data if end == size and not start else data[start:end]
            message = decode_server(payload)
            if not isinstance(message, DataMessage):
                raise BadLogData(f"entry {position} holds a {type(message).__name__}")
            out.append((message, payload))
            start = end
    except BadLogData:
        raise
    except Exception as exc:
        raise BadLogData(f"entry {position} does not decode: {exc}") from None
    if start != len(data) or not out:
        raise BadLogData(f"entry {position} is empty or ends mid-message")
    if out[-1][0].offset != position.offset:
        raise BadLogData(f"entry {position} ends at offset {out[-1][0].offset}")
    return out


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """A checkpoint as bytes: version, position, and each snapshot's msgpack bytes."""
    body: dict[str, Any] = {
        "v": CHECKPOINT_VERSION,
        "epoch": checkpoint.position.epoch,
        "offset": checkpoint.position.offset,
        "snapshots": [encode_data(snapshot) for snapshot in checkpoint.snapshots],
    }
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Bytes from `encode_checkpoint`.

    Raises:
        BadLogData: anything else.
    """
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if not isinstance(body, dict) or body.get("v") != CHECKPOINT_VERSION:
            raise BadLogData("not a version 1 checkpoint")
        position = Position(int(body["epoch"]), int(body["offset"]))
        snapshots = []
        for payload in body["snapshots"]:
            (message,) = decode_frame(payload)
            if not isinstance(message, DataMessage) or not message.snapshot:
                raise BadLogData("a checkpoint holds snapshots only")
            snapshots.append(message)
    except BadLogData:
        raise
    except Exception as exc:
        raise BadLogData(f"checkpoint does not decode: {exc}") from None
    return Checkpoint(position, snapshots)
