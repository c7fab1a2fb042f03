"""The publish protocol on `GET /v1/publish`: batches of normalized events, acknowledged.

A publisher sends binary WebSocket messages `["pub", batch_id, [event, ...]]` (events
in the `ticker.model.event_codec` arrays); the server answers each batch, in order, with
`["ack", batch_id, accepted]` once the hub's queue took it, or `["e", code, reason,
batch_id]` when it refused the whole batch. Pure encode/decode shared by the server
session and the replayer's client; docs/PROTOCOL.md has the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from ticker.errors import BadMessage
from ticker.model.event_codec import BadEvent, event_from_array, event_to_array
from ticker.model.events import NormalizedEvent

PUBLISH_PATH: Final = "/v1/publish"
SUBPROTOCOL: Final = "ticker.publish.v1"
MAX_MESSAGE_BYTES: Final = 1 << 20
"""Largest batch message a server accepts (the publisher stays below it)."""
MAX_BATCH_EVENTS: Final = 4096
PUB: Final = "pub"
ACK: Final = "ack"
ERROR: Final = "e"

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


@dataclass(frozen=True, slots=True)
class Batch:
    """A publisher's batch: its id (the publisher counts from 1) and its events."""

    batch_id: int
    events: tuple[NormalizedEvent, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's hub queue took every event of batch `batch_id`."""

    batch_id: int
    accepted: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The server refused batch `batch_id` (None: the message had no readable id)."""

    code: int
    reason: str
    batch_id: int | None


def encode_batch(batch_id: int, events: Sequence[NormalizedEvent]) -> bytes:
    """The message carrying one batch."""
    return _packb([PUB, batch_id, [event_to_array(event) for event in events]])


def decode_batch(data: bytes) -> Batch:
    """The batch in one publisher message.

    Raises:
        BadMessage: not msgpack, not a `pub` message, or too many events.
        BadEvent: an ill-formed event; the message names its index in the batch.
    """
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadMessage(f"invalid msgpack: {exc}") from None
    if not (isinstance(obj, list) and len(obj) == 3 and obj[0] == PUB):
        raise BadMessage('a publish message is ["pub", batch_id, [event, ...]]')
    batch_id, items = obj[1], obj[2]
    if type(batch_id) is not int or not isinstance(items, list):
        raise BadMessage("batch_id must be an integer and events a list")
    if not 0 < len(items) <= MAX_BATCH_EVENTS:
        raise BadMessage(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, not {len(items)}")
    events = []
    for index, item in enumerate(items):
        try:
            events.append(event_from_array(item))
        except BadEvent as exc:
            raise BadEvent(f"event {index}: {exc}") from None
    return Batch(batch_id, tuple(events))


def batch_id_of(data: bytes) -> int | None:
    """The batch id of a message that failed to decode, if it can be read at all."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # the message is unreadable; there is no id to answer with
        return None
    if isinstance(obj, list) and len(obj) >= 2 and type(obj[1]) is int:
        return int(obj[1])
    return None


def encode_ack(ack: Ack) -> bytes:
    return _packb([ACK, ack.batch_id, ack.accepted])


def encode_refused(refused: Refused) -> bytes:
    return _packb([ERROR, refused.code, refused.reason, refused.batch_id])


def decode_reply(data: bytes) -> Ack | Refused:
    """A server reply.

    Raises:
        BadMessage: not a well-formed `ack` or `e` message.
    """
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadMessage(f"invalid msgpack: {exc}") from None
    if not isinstance(obj, list):
        raise BadMessage(f"not a publish reply: {obj!r:.80}")
    if len(obj) == 3 and obj[0] == ACK and type(obj[1]) is int and type(obj[2]) is int:
        return Ack(obj[1], obj[2])
    if len(obj) == 4 and obj[0] == ERROR and type(obj[1]) is int and isinstance(obj[2], str):
        batch_id = obj[3]
        if batch_id is None or type(batch_id) is int:
            return Refused(obj[1], obj[2], batch_id)
    raise BadMessage(f"not a publish reply: {obj!r:.80}")
