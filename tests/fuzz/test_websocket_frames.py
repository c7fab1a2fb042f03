"""Fuzz the WebSocket frame reader every client's bytes go through (`FrameReader`)."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from ticker.wire.websocket import (
    Close,
    FrameEvent,
    FrameReader,
    Message,
    Opcode,
    Ping,
    Pong,
    WebSocketProtocolError,
)

from .budget import FUZZ

MAX_MESSAGE = 1024
MAX_FRAGMENTS = 8
LONGEST_HEADER = 14  # 2 + 8 (length) + 4 (mask)


def client_frame(opcode: int, payload: bytes, mask: bytes, *, fin: bool = True) -> bytes:
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", length)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(reader: FrameReader, chunks: list[bytes]) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    for chunk in chunks:
        events += reader.feed(chunk)
        # What it holds is bounded by its limits, not by what was sent.
        assert reader.buffered_bytes <= MAX_MESSAGE + LONGEST_HEADER + MAX_MESSAGE + len(chunk)
    return events


@FUZZ
@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=8))
def test_any_bytes_give_events_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    reader = FrameReader(MAX_MESSAGE, MAX_FRAGMENTS)
    try:
        events = feed_all(reader, split(data, cuts))
    except WebSocketProtocolError as exc:
        assert exc.close_code in (1002, 1009)
        return
    for event in events:
        if isinstance(event, Message):
            assert len(event.payload) <= MAX_MESSAGE
        elif isinstance(event, Ping | Pong):
            assert len(event.payload) <= 125


# A plausible frame, mostly well formed: finds what random bytes rarely reach.
frame_parts = st.tuples(
    st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB]),
    st.binary(max_size=300),
    st.binary(min_size=4, max_size=4),
    st.booleans(),
)


@FUZZ
@given(st.lists(frame_parts, max_size=12), st.lists(st.integers(0, 8192), max_size=6))
def test_plausible_frames_give_events_or_a_protocol_error(
    frames: list[tuple[int, bytes, bytes, bool]], cuts: list[int]
) -> None:
    data = b"".join(client_frame(op, payload, mask, fin=fin) for op, payload, mask, fin in frames)
    reader = FrameReader(MAX_MESSAGE, MAX_FRAGMENTS)
    try:
        feed_all(reader, split(data, cuts))
    except WebSocketProtocolError as exc:
        assert exc.close_code in (1002, 1009)


messages = st.tuples(st.booleans(), st.binary(max_size=MAX_MESSAGE))


@st.composite
def fragmented(draw: st.DrawFn, binary: bool, payload: bytes) -> bytes:
    """One message in 1..MAX_FRAGMENTS frames, with pings between its fragments."""
    pieces = draw(st.integers(1, MAX_FRAGMENTS))
    points = sorted(draw(st.lists(st.integers(0, len(payload)), min_size=pieces - 1,
                                  max_size=pieces - 1)))  # fmt: skip
    bounds = [0, *points, len(payload)]
    out = b""
    for index, (a, b) in enumerate(itertools.pairwise(bounds)):
        opcode = (Opcode.BINARY if binary else Opcode.TEXT) if index == 0 else Opcode.CONTINUATION
        mask = draw(st.binary(min_size=4, max_size=4))
        out += client_frame(opcode, payload[a:b], mask, fin=index == len(bounds) - 2)
        if draw(st.booleans()):
            out += client_frame(Opcode.PING, b"p", mask)
    return out


@FUZZ
@given(st.data(), st.lists(messages, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_messages_round_trip_however_fragmented_and_split(
    data: st.DataObject, sent: list[tuple[bool, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(data.draw(fragmented(binary, payload)) for binary, payload in sent)
    wire += client_frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"bye", b"\x01\x02\x03\x04")
    events = feed_all(FrameReader(MAX_MESSAGE, MAX_FRAGMENTS), split(wire, cuts))
    got = [(e.binary, e.payload) for e in events if isinstance(e, Message)]
    assert got == sent
    assert events[-1] == Close(1000, "bye")
