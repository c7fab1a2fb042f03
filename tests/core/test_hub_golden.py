"""Pins what the hub publishes for a recorded session, byte for byte.

The hot path (consolidate, sequence, encode, render JSON) is tuned for speed; these
digests were taken from the code before that tuning, so any change to a published byte
(msgpack payload, JSON text, SSE event, WebSocket frame) fails here. The frames are
recorded (tests/core/record_hub_session.py), so a simulator change does not move them.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import pytest

from ticker.config import Config
from ticker.core.codec import decode_server, parse_json
from ticker.core.hub import Hub
from ticker.venues import make_adapter

SESSION = Path(__file__).parent / "data" / "hub_session.bin.gz"

# venue: (messages published, sha256 of payloads, sha256 of JSON texts, sha256 of SSE events)
GOLDEN: dict[str, tuple[int, str, str, str]] = {
    "itx": (
        3436,
        "da2846f5eadcd098d304485d78704775a73c7642f02f3a955b9441cd9df519b9",
        "359050e8fe34e3b00e98710bb85eda13af183d3b911586adf6c14d54ec2a77a9",
        "c0071a2b58a5116c224da1d4d41ec09677323e803b4d78748cfb1be5c1819574",
    ),
    "cbx": (
        2816,
        "1d6a1d4578f9acce6bdcd27b419c2fb14c1617e59172e9320126220e3e73e32b",
        "e7c9e14b694e95e423c6f950601b30e6af454c28ed3011099e2571007960c9e0",
        "dd416de356ba155b8609415e1e20baded169d9df0a2ab95f98352e71d6891410",
    ),
    "fxa": (
        3316,
        "3da256ab54b3baca73c04367ee57376fc84cb6263533076ea9734def1207c326",
        "5e807512fbb542a04c788e5d7fb043e4cf87fc0c1621b14d69766c2d7a43d4cd",
        "b7248b3a5f65626458ce470a4edc060e1e100315caad7154988237ce5e2c9bf3",
    ),
}


def _sessions() -> dict[str, list[bytes]]:
    data = gzip.decompress(SESSION.read_bytes())
    out: dict[str, list[bytes]] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size].decode()
        at += 1 + size
        (count,) = struct.unpack_from(">I", data, at)
        at += 4
        frames = []
        for _ in range(count):
            (length,) = struct.unpack_from(">I", data, at)
            frames.append(data[at + 4 : at + 4 + length])
            at += 4 + length
        out[name] = frames
    return out


def digests(venue: str, frames: list[bytes]) -> tuple[int, str, str, str]:
    adapter = make_adapter(venue)
    hub = Hub(Config(), epoch=3)
    payloads, texts, events = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    count = 0
    for i, frame in enumerate(frames):
        for event in adapter.on_message(frame, i).events:
            for item in hub.publish(event, 1_800_000_000_000_000_000 + i * 1_001):
                count += 1
                payloads.update(item.payload)
                texts.update(item.json.encode())
                events.update(item.sse)
                if count % 97 == 0:  # the value round-trips through both forms
                    assert decode_server(item.payload) == item.message
                    parsed = parse_json(item.json, snapshot=item.message.snapshot)
                    assert parsed == item.message
    return count, payloads.hexdigest(), texts.hexdigest(), events.hexdigest()


@pytest.mark.parametrize("venue", ["itx", "cbx", "fxa"])
def test_published_bytes_are_pinned(venue: str) -> None:
    frames = _sessions()[venue]
    assert digests(venue, frames) == GOLDEN[venue]
