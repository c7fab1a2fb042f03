"""The itx binary codec: round trips, whole-packet validation, and the corruptor."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.itx import ItxSimulator
from ticker.venues import itx_wire
from ticker.venues.errors import DecodeError

from .wire_strategies import itx_packets


@settings(max_examples=300)
@given(itx_packets)
def test_decode_inverts_encode(packet: itx_wire.ItxPacket) -> None:
    assert itx_wire.decode_packet(itx_wire.encode_packet(packet)) == packet


def test_layout_is_moldudp64_with_fixed_big_endian_records() -> None:
    update = itx_wire.ItxLevelUpdate(7, 3, 99, "B", 6_400_000_000_000, 1_500_000)
    data = itx_wire.encode_packet(itx_wire.ItxPacket("SESSION01", 1000, (update,)))
    assert data[:10] == b"SESSION01 "
    assert int.from_bytes(data[10:18], "big") == 1000
    assert int.from_bytes(data[18:20], "big") == 1
    assert int.from_bytes(data[20:22], "big") == itx_wire.LEVEL_UPDATE.size == len(data) - 22
    assert data[22:23] == b"U"
    assert itx_wire.LEVEL_UPDATE.unpack_from(data, 22) == (
        b"U",
        7,
        3,
        99,
        b"B",
        6_400_000_000_000,
        1_500_000,
    )


def test_heartbeat_is_a_packet_without_messages() -> None:
    data = itx_wire.encode_packet(itx_wire.ItxPacket("S", 55, ()))
    assert len(data) == itx_wire.PACKET_HEADER.size
    assert itx_wire.unpack_packet(data) == (b"S         ", 55, 0, [])


@settings(max_examples=200)
@given(itx_packets, st.data())
def test_every_truncation_is_rejected(packet: itx_wire.ItxPacket, data: st.DataObject) -> None:
    raw = itx_wire.encode_packet(packet)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        itx_wire.unpack_packet(raw[:cut])
    with pytest.raises(DecodeError):
        itx_wire.unpack_packet(raw + b"\x00")


@settings(max_examples=200)
@given(itx_packets, st.integers(0, 2**32))
def test_corruption_never_decodes(packet: itx_wire.ItxPacket, seed: int) -> None:
    raw = itx_wire.encode_packet(packet)
    with pytest.raises(DecodeError):
        itx_wire.unpack_packet(ItxSimulator(1, 10.0).corrupt(raw, Random(seed)))


def test_record_length_must_match_its_type() -> None:
    record = itx_wire.pack_level_update(1, 1, 1, b"B", 1, 1) + b"\x00"
    with pytest.raises(DecodeError):
        itx_wire.unpack_packet(itx_wire.pack_packet(b"S         ", 1, [record]))


def test_bad_side_only_fails_the_dataclass_decode() -> None:
    record = itx_wire.pack_level_update(1, 1, 1, b"X", 1, 1)
    raw = itx_wire.pack_packet(b"S         ", 1, [record])
    assert itx_wire.unpack_packet(raw)[3][0][4] == b"X"
    with pytest.raises(DecodeError):
        itx_wire.decode_packet(raw)


def test_session_names_are_checked() -> None:
    with pytest.raises(ValueError):
        itx_wire.session_bytes("ELEVENCHARS")
    with pytest.raises(ValueError):
        itx_wire.session_bytes("tab\there")
