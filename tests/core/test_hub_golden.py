"""Pins what the hub publishes for a recorded session, byte for byte.

The hot path (consolidate, sequence, encode, render JSON) is tuned for speed; these
digests were taken from the code before that tuning, so any change to a published byte
(msgpack payload, JSON text, SSE event, WebSocket frame) fails here. The frames are
recorded (tests/core/record_hub_session.py), so a simulator change does not move them.
They were taken again once, on purpose, when the protocol grew per-venue topics and book
checksums (each venue's quote and book are published too, and books carry `checksum`):
a change of the published bytes is a protocol change and must be one, deliberately.
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
        6308,
        "77a00615321a04f524b0684737b71325bb753396d3321c781b02bac3590911be",
        "9cc343a3802a9036629d6cfaa7fe8fa7083f9ec5af7cf5ee886f6726a46fc25b",
        "cd70385df17f20fb60439cb48e0619274b003b2196e1a6a9032fad98e3e3ba08",
    ),
    "cbx": (
        5186,
        "c20bbc5bc047d9bbb674fc2e675ae88188a707860e86c34a685a4c52a5bc4963",
        "ced4fae22592dbaf864fee47f61a091de938d1d6e65b0eeac374565caa97768a",
        "eb943af55bec0ed1ee3f1b225c0e5354855275d42c4e8abe5898be0a4716f556",
    ),
    "fxa": (
        6064,
        "6c712e93e439efd6cee8f6e6bdc09de388fb4526c7c62c9a3cb6559453b36fc5",
        "c9a591ba6a4eb14ef008739159ecf8db2a6ce0759d31cf59a6ad546faf795eef",
        "9f506f7a89ab55d6b35a8b43e49047f51d0cd402dae5910611900c3cb0105d01",
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
