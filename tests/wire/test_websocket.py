from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.events import Ping as WsPing
from wsproto.events import Pong as WsPong

from ticker.wire.http import BadRequest
from ticker.wire.websocket import (
    Close,
    FrameReader,
    Message,
    Opcode,
    Ping,
    Pong,
    WebSocketProtocolError,
    accept_key,
    encode_close,
    encode_frame,
)


def client() -> Connection:
    """wsproto's client side, after the handshake: an independent implementation."""
    return Connection(ConnectionType.CLIENT)


def test_accept_key_matches_rfc6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@given(st.binary(max_size=70_000))
def test_server_frames_are_read_by_a_reference_client(payload: bytes) -> None:
    peer = client()
    peer.receive_data(encode_frame(Opcode.BINARY, payload))
    events = list(peer.events())
    assert len(events) == 1 and isinstance(events[0], BytesMessage)
    assert bytes(events[0].data) == payload


@given(st.lists(st.binary(max_size=300), max_size=5), st.integers(1, 50))
def test_reader_gets_reference_client_messages_in_any_chunking(
    payloads: list[bytes], chunk: int
) -> None:
    peer = client()
    wire = b"".join(peer.send(BytesMessage(data=p)) for p in payloads)
    reader = FrameReader(max_message_bytes=1024)
    events = []
    for i in range(0, len(wire), chunk):
        events += reader.feed(wire[i : i + chunk])
    assert events == [Message(True, p) for p in payloads]


def test_fragments_are_reassembled_and_control_frames_pass_between_them() -> None:
    peer = client()
    wire = peer.send(TextMessage(data="ab", message_finished=False))
    wire += peer.send(WsPing(payload=b"x"))
    wire += peer.send(TextMessage(data="cd", message_finished=True))
    events = FrameReader(1024).feed(wire)
    assert events == [Ping(b"x"), Message(False, b"abcd")]


def test_close_frames_carry_code_and_reason() -> None:
    peer = client()
    wire = peer.send(CloseConnection(code=1000, reason="bye"))
    assert FrameReader(1024).feed(wire) == [Close(1000, "bye")]
    server_close = encode_close(4008, "slow consumer; last=1-5")
    peer2 = client()
    peer2.receive_data(server_close)
    event = next(iter(peer2.events()))
    assert isinstance(event, CloseConnection) and event.code == 4008
    assert event.reason == "slow consumer; last=1-5"


def test_oversized_messages_are_refused_before_their_payload_arrives() -> None:
    header = struct.pack("!BBH", 0x82, 0x80 | 126, 5000) + b"\0\0\0\0"
    with pytest.raises(WebSocketProtocolError) as info:
        FrameReader(max_message_bytes=4096).feed(header)
    assert info.value.close_code == 1009


@pytest.mark.parametrize(
    "frame",
    [
        b"\x82\x05hello",  # unmasked
        b"\xc2\x80\0\0\0\0",  # RSV1 without an extension
        b"\x09\x80\0\0\0\0",  # non-final ping
        b"\x80\x80\0\0\0\0",  # continuation without a message
        b"\x83\x80\0\0\0\0",  # unknown opcode
        b"\x88\x81\0\0\0\0\x01",  # close with a 1-byte body
        b"\x89\xfe\x00\x7e" + b"\0" * 130,  # control frame over 125 bytes
    ],
)
def test_protocol_violations_raise_with_a_close_code(frame: bytes) -> None:
    with pytest.raises(WebSocketProtocolError) as info:
        FrameReader(1024).feed(frame)
    assert info.value.close_code == 1002


def test_pong_is_reported() -> None:
    peer = client()
    assert FrameReader(64).feed(peer.send(WsPong(payload=b"7"))) == [Pong(b"7")]


def masked_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A client frame with an all-zero mask (the payload goes as is)."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def test_endless_empty_continuation_frames_close_with_1009() -> None:
    reader = FrameReader(1024, max_fragments=64)
    assert reader.feed(masked_frame(Opcode.BINARY, b"", fin=False)) == []
    empty = masked_frame(Opcode.CONTINUATION, b"", fin=False)
    # 63 more frames make 64, the bound: still a message in progress, nothing held.
    assert reader.feed(empty * 63) == []
    assert reader.buffered_bytes == 0
    with pytest.raises(WebSocketProtocolError) as info:
        reader.feed(empty * 1000)
    assert info.value.close_code == 1009
    assert "64 fragments" in str(info.value)


def test_a_message_in_exactly_max_fragments_is_accepted() -> None:
    reader = FrameReader(1024, max_fragments=4)
    wire = masked_frame(Opcode.TEXT, b"a", fin=False)
    wire += masked_frame(Opcode.CONTINUATION, b"b", fin=False)
    wire += masked_frame(Opcode.PING, b"p", fin=True)  # control frames do not count
    wire += masked_frame(Opcode.CONTINUATION, b"c", fin=False)
    wire += masked_frame(Opcode.CONTINUATION, b"d", fin=True)
    assert reader.feed(wire) == [Ping(b"p"), Message(False, b"abcd")]
    # The count starts again with the next message.
    again = masked_frame(Opcode.BINARY, b"x", fin=False)
    again += masked_frame(Opcode.CONTINUATION, b"", fin=False) * 2
    again += masked_frame(Opcode.CONTINUATION, b"y", fin=True)
    assert reader.feed(again) == [Message(True, b"xy")]
    over = masked_frame(Opcode.BINARY, b"x", fin=False)
    over += masked_frame(Opcode.CONTINUATION, b"", fin=False) * 3
    over += masked_frame(Opcode.CONTINUATION, b"y", fin=True)
    with pytest.raises(WebSocketProtocolError) as info:
        reader.feed(over)
    assert info.value.close_code == 1009


def test_the_fragment_count_is_refused_from_the_header_before_the_payload() -> None:
    reader = FrameReader(4096, max_fragments=2)
    reader.feed(masked_frame(Opcode.BINARY, b"a", fin=False))
    reader.feed(masked_frame(Opcode.CONTINUATION, b"b", fin=False))
    header = struct.pack("!BBH", 0x00, 0x80 | 126, 2000) + b"\0\0\0\0"
    with pytest.raises(WebSocketProtocolError) as info:
        reader.feed(header)
    assert info.value.close_code == 1009


def test_memory_held_by_the_reader_is_bounded_by_the_message_limit() -> None:
    limit = 1000
    reader = FrameReader(limit, max_fragments=10_000)
    reader.feed(masked_frame(Opcode.BINARY, b"x", fin=False))
    one_byte = masked_frame(Opcode.CONTINUATION, b"x", fin=False)
    for _ in range(limit - 1):
        reader.feed(one_byte)
    # One byte per fragment is held as one byte: no per-fragment object survives.
    assert reader.buffered_bytes == limit
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        fresh = FrameReader(limit, max_fragments=10_000)
        fresh.feed(masked_frame(Opcode.BINARY, b"x", fin=False))
        for _ in range(limit - 1):
            fresh.feed(one_byte)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A list of 1,000 one-byte bytes objects held ~42 KB; the bytearray holds ~1 KB.
    assert held - before < 4 * limit
    with pytest.raises(WebSocketProtocolError) as info:
        reader.feed(one_byte)
    assert info.value.close_code == 1009
    assert reader.buffered_bytes <= limit + len(one_byte)


def test_a_finished_fragmented_message_releases_its_bytes() -> None:
    reader = FrameReader(1024)
    wire = masked_frame(Opcode.BINARY, b"a" * 100, fin=False)
    wire += masked_frame(Opcode.CONTINUATION, b"b" * 100, fin=True)
    assert reader.feed(wire) == [Message(True, b"a" * 100 + b"b" * 100)]
    assert reader.buffered_bytes == 0


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_close_codes_that_must_not_be_on_the_wire_are_a_protocol_error(code: int) -> None:
    with pytest.raises(WebSocketProtocolError) as info:
        FrameReader(1024).feed(masked_frame(0x8, code.to_bytes(2, "big"), fin=True))
    assert info.value.close_code == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1012, 3000, 4999])
def test_close_codes_a_peer_may_send_are_passed_on(code: int) -> None:
    frame = masked_frame(0x8, code.to_bytes(2, "big"), fin=True)
    assert FrameReader(1024).feed(frame) == [Close(code, "")]


@pytest.mark.parametrize("key", ["\xe9" * 24, "", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ==x"])
def test_a_key_that_is_not_the_base64_of_16_bytes_is_a_bad_request(key: str) -> None:
    with pytest.raises(BadRequest) as info:
        accept_key(key)
    assert info.value.http_status == 400
