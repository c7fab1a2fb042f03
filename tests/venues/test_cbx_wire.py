"""The cbx JSON codec: round trips, strictness, and what the corruptor produces."""

from __future__ import annotations

import json
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.cbx import CbxSimulator
from ticker.venues import cbx_wire
from ticker.venues.errors import DecodeError

from .wire_strategies import cbx_messages


@settings(max_examples=300)
@given(cbx_messages)
def test_decode_inverts_encode(msg: cbx_wire.CbxMessage) -> None:
    data = cbx_wire.encode_message(msg)
    assert cbx_wire.decode_message(data) == msg
    assert json.loads(data)["type"] in {"snapshot", "l2update", "match", "ticker", "heartbeat"}


def test_layout_is_coinbase_like() -> None:
    msg = cbx_wire.CbxL2Update(
        "BTC-USD", 42, 1_704_067_200_123_456_000, (("buy", 64_000_500_000_000, 0),)
    )
    assert json.loads(cbx_wire.encode_message(msg)) == {
        "type": "l2update",
        "product_id": "BTC-USD",
        "sequence": 42,
        "time": "2024-01-01T00:00:00.123456Z",
        "changes": [["buy", "64000.5", "0"]],
    }


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"type":"heartbeat"}',
        b'{"type":"bogus","product_id":"A-B","sequence":1,"time":"2024-01-01T00:00:00.000000Z"}',
        b'{"type":"heartbeat","product_id":"A-B","sequence":"1",'
        b'"time":"2024-01-01T00:00:00.000000Z","last_trade_id":1}',
        b'{"type":"heartbeat","product_id":"A-B","sequence":1,'
        b'"time":"2024-01-01 00:00:00","last_trade_id":1}',
        b'{"type":"l2update","product_id":"A-B","sequence":1,'
        b'"time":"2024-01-01T00:00:00.000000Z","changes":[["up","1","1"]]}',
        b'{"type":"l2update","product_id":"A-B","sequence":1,'
        b'"time":"2024-01-01T00:00:00.000000Z","changes":[["buy",1,"1"]]}',
        b'{"type":"match","product_id":"A-B","sequence":1,"time":"2024-01-01T00:00:00.000000Z",'
        b'"trade_id":1,"side":"buy","price":"1.0000000001","size":"1"}',
        b'{"type":"heartbeat","product_id":"A-B","sequence":1,'
        b'"time":"2024-01-01T00:00:00.000000Z","last_trade_id":1} {}',
        b"\xff\xfe",
    ],
)
def test_bad_messages_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        cbx_wire.decode_message(data)


@settings(max_examples=200)
@given(cbx_messages, st.integers(0, 2**32), st.data())
def test_corruption_and_truncation_never_decode(
    msg: cbx_wire.CbxMessage, seed: int, data: st.DataObject
) -> None:
    raw = cbx_wire.encode_message(msg)
    sim = CbxSimulator(1, 10.0)
    with pytest.raises(DecodeError):
        cbx_wire.decode_message(sim.corrupt(raw, Random(seed)))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        cbx_wire.decode_message(raw[:cut])


def test_encode_rejects_strings_that_would_need_escaping() -> None:
    with pytest.raises(ValueError):
        cbx_wire.encode_message(cbx_wire.CbxHeartbeat('A"B', 1, 0, 0))
