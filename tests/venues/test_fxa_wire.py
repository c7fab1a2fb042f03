"""The fxa FIX codec: round trips, framing and checksum, and the corruptor."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.fxa import FxaSimulator
from ticker.venues import fxa_messages, fxa_wire
from ticker.venues.errors import DecodeError

from .wire_strategies import fxa_native

HEADER = fxa_messages.FxaHeader(7, "FXA", "TICKER", 1_704_067_200_123_000_000)


@settings(max_examples=300)
@given(fxa_native)
def test_decode_inverts_encode(msg: fxa_messages.FxaMessage) -> None:
    assert fxa_wire.decode_message(fxa_wire.encode_message(msg)) == msg


def test_header_trailer_and_checksum_are_real_fix() -> None:
    data = fxa_wire.encode_message(fxa_messages.FxaHeartbeat(HEADER))
    assert data == (
        b"8=FIX.4.4\x019=52\x0135=0\x0149=FXA\x0156=TICKER\x0134=7\x01"
        b"52=20240101-00:00:00.123\x0110=" + b"%03d" % (sum(data[:-7]) % 256) + b"\x01"
    )
    body = data[data.index(b"35=") : -7]
    assert len(body) == 52


def test_incremental_layout() -> None:
    entry = fxa_messages.FxaEntry(
        fxa_messages.CHANGE, fxa_messages.BID, "BTC/USD", 9, 64_000 * 10**9, 10**8
    )
    data = fxa_wire.encode_message(fxa_messages.FxaIncremental(HEADER, (entry,)))
    assert b"\x01268=1\x01279=1\x01269=0\x0155=BTC/USD\x0183=9\x01270=64000\x01271=0.1\x01" in data


def test_snapshot_request_is_35_v_263_0() -> None:
    data = fxa_wire.encode_message(fxa_messages.FxaSnapshotRequest(HEADER, "R1", "ETH/USD"))
    assert b"\x0135=V\x01" in data and b"\x01263=0\x01" in data and b"\x0155=ETH/USD\x01" in data


@pytest.mark.parametrize("length", [1, 256, 257, 258, 600, 5000])
def test_checksum_matches_the_definition_at_any_length(length: int) -> None:
    data = bytes(Random(length).randrange(256) for _ in range(length))
    assert fxa_wire.checksum(data) == sum(data) % 256


def _damaged(mutate: int) -> bytes:
    data = bytearray(fxa_wire.encode_message(fxa_messages.FxaHeartbeat(HEADER)))
    data[mutate] ^= 0x04
    return bytes(data)


def test_every_single_byte_change_is_caught() -> None:
    size = len(fxa_wire.encode_message(fxa_messages.FxaHeartbeat(HEADER)))
    for i in range(size):
        with pytest.raises(DecodeError):
            fxa_wire.decode_message(_damaged(i))


@pytest.mark.parametrize(
    "body",
    [
        "35=0\x0149=FXA\x0156=T\x0152=20240101-00:00:00.000\x01",  # no 34
        "49=FXA\x0135=0\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01",  # 35 not first
        "35=Q\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01",  # unknown type
        "35=X\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01268=2\x01"
        "279=0\x01269=0\x0155=A\x0183=1\x01270=1\x01271=1\x01",  # count mismatch
        "35=X\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01268=1\x01"
        "279=0\x01269=0\x0155=A\x0183=1\x01999=1\x01",  # unknown tag in group
        "35=X\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01268=1\x01"
        "279=0\x01269=0\x0155=A\x01270=1\x01",  # no 83
        "35=W\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x0155=A\x0183=1\x01"
        "268=1\x01269=2\x01270=1\x01271=1\x01",  # trade in a full refresh
        "35=0\x0149=FXA\x0156=T\x0134=1\x0152=20240101-00:00:00.000\x01junk\x01",
    ],
)
def test_bad_bodies_raise_decode_error(body: str) -> None:
    raw = f"8=FIX.4.4\x019={len(body)}\x01{body}".encode()
    data = raw + b"10=%03d\x01" % (sum(raw) % 256)
    with pytest.raises(DecodeError):
        fxa_wire.decode_message(data)


@settings(max_examples=200)
@given(fxa_native, st.integers(0, 2**32), st.data())
def test_corruption_and_truncation_never_decode(
    msg: fxa_messages.FxaMessage, seed: int, data: st.DataObject
) -> None:
    raw = fxa_wire.encode_message(msg)
    sim = FxaSimulator(1, 10.0)
    with pytest.raises(DecodeError):
        fxa_wire.decode_message(sim.corrupt(raw, Random(seed)))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        fxa_wire.decode_message(raw[:cut])


def test_resend_marks_poss_dup_and_keeps_the_sequence() -> None:
    sim = FxaSimulator(1, 10.0)
    original = fxa_wire.encode_message(fxa_messages.FxaHeartbeat(HEADER))
    sim.advance(5_000_000_000)
    again = fxa_wire.decode_message(sim.resend(original))
    assert again.header.seq == HEADER.seq
    assert again.header.poss_dup
    assert again.header.orig_sending_time_ns == HEADER.sending_time_ns
    assert again.header.sending_time_ns > HEADER.sending_time_ns
