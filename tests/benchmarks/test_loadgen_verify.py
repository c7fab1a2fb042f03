"""The fanout load generator's stream verifier (benchmarks/loadgen/loadgen.c, `--replay`).

Each test builds a client's byte stream (WebSocket frames of msgpack messages, an SSE
chunked body, or the bench-peers' frames), feeds it through the load generator's own
parser and verifier, and checks what it counted: a broken stream (a hole, a repeat, an
offset going backwards) must never pass as deliveries.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import pytest

SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "loadgen" / "loadgen.c"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("loadgen") / "loadgen"
    command = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(SOURCE)]
    subprocess.run(command, check=True, timeout=120)
    return binary


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """An unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def pack(*messages: list[Any]) -> bytes:
    """Several messages in one frame (the protocol's concatenated msgpack)."""
    return ws_frame(b"".join(msgpack.packb(m) for m in messages))


def snap(topic: str, seq: int, offset: int) -> list[Any]:
    return ["s", topic, seq, offset, 1_700_000_000_000_000, {"bid": "1"}]


def delta(topic: str, seq: int, offset: int) -> list[Any]:
    return ["d", topic, seq, offset, 1_700_000_000_000_000, {"bid": "2"}]


def hb(offset: int) -> list[Any]:
    return ["hb", 1, offset, 1_700_000_000_000_000]


HELLO = pack(["h", 1, 1, 0, 15.0, None, 32769])
Q, B, T = "quote.BTC-USD", "book.ETH-USD", "trade.BTC-USD"
BURST = pack(snap(Q, 5, 10), snap(B, 3, 8), snap(T, 2, 9), hb(12))
"""A subscribe answer: snapshots with their topics' (older) offsets, then the position."""


def replay(loadgen: Path, tmp_path: Path, data: bytes, *args: str) -> dict[str, Any]:
    stream = tmp_path / "stream.bin"
    stream.write_bytes(data)
    out = subprocess.run(
        [str(loadgen), "--replay", str(stream), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_a_whole_stream_verifies(loadgen: Path, tmp_path: Path) -> None:
    stream = (
        HELLO
        + BURST
        + pack(delta(Q, 6, 13))
        + pack(delta(B, 4, 14), delta(Q, 7, 15), delta(T, 3, 16))
        + pack(snap(Q, 8, 17))  # a keyframe: the next seq, whole
        + pack(hb(17))
        + pack(delta(Q, 9, 18))
    )
    result = replay(loadgen, tmp_path, stream)
    assert result["unexplained"] == 0
    assert result["deliveries"] == result["verified"] == result["checked"] == 9
    assert result["conflations"] == 0


@pytest.mark.parametrize(
    ("tail", "counter", "good"),
    [
        (pack(delta(Q, 7, 13)), "gaps", 0),  # seq 6 missing
        (pack(delta(Q, 6, 13), delta(Q, 6, 14)), "repeats", 1),
        (pack(delta(Q, 5, 13)), "repeats", 0),  # the snapshot's own seq again
        (pack(delta(Q, 6, 13), delta(B, 4, 13)), "offset_backwards", 1),
        (pack(delta(Q, 6, 11)), "offset_backwards", 0),  # behind the burst's heartbeat
        (pack(delta("quote.SOL-USD", 1, 13)), "no_snapshot", 0),
        (pack(snap(T, 4, 13)), "gaps", 0),  # an event topic never conflates: trade 3 lost
        (pack(delta(Q, 6, 13), hb(12)), "offset_backwards", 1),
        (ws_frame(b"\x00\x01", opcode=0x1), "malformed", 0),
        (ws_frame(struct.pack(">H", 1011) + b"oops", opcode=0x8), "closed_other", 0),
        (pack(["r", 1, 13, "too_old"]), "resets", 0),
    ],
)
def test_a_broken_stream_is_counted_not_delivered(
    loadgen: Path, tmp_path: Path, tail: bytes, counter: str, good: int
) -> None:
    clean = replay(loadgen, tmp_path, HELLO + BURST)
    assert (clean["deliveries"], clean["unexplained"]) == (3, 0)
    result = replay(loadgen, tmp_path, HELLO + BURST + tail)
    assert result[counter] == 1
    assert result["unexplained"] == 1
    # The faulty message is not a delivery; the good ones around it are.
    assert result["deliveries"] == clean["deliveries"] + good


def test_a_hole_is_one_fault_and_the_stream_resynchronises(loadgen: Path, tmp_path: Path) -> None:
    stream = HELLO + BURST + pack(delta(Q, 8, 13)) + pack(delta(Q, 9, 14), delta(Q, 10, 15))
    result = replay(loadgen, tmp_path, stream)
    assert (result["gaps"], result["unexplained"]) == (1, 1)
    assert result["deliveries"] == 3 + 2


def test_conflation_and_eviction_are_explained(loadgen: Path, tmp_path: Path) -> None:
    stream = (
        HELLO
        + BURST
        + pack(delta(Q, 6, 13))
        # a slow consumer's catch-up: latest-value and book topics jump, as one burst
        + pack(snap(Q, 40, 60), snap(B, 20, 58), hb(61))
        + pack(delta(Q, 41, 62))
        + ws_frame(struct.pack(">H", 4008) + b"slow consumer (slow_outbox); last=1-62", 0x8)
    )
    result = replay(loadgen, tmp_path, stream)
    assert (result["conflations"], result["evictions"]) == (2, 1)
    assert result["unexplained"] == 0
    assert result["deliveries"] == 3 + 1 + 2 + 1
    assert result["open"] == 0


def test_a_stale_snapshot_is_ignored_not_delivered(loadgen: Path, tmp_path: Path) -> None:
    result = replay(loadgen, tmp_path, HELLO + BURST + pack(snap(Q, 4, 7)))
    assert (result["stale"], result["unexplained"], result["deliveries"]) == (1, 0, 3)


def sse_event(name: str, data: dict[str, Any], event_id: str | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def sse_data(kind: str, topic: str, seq: int, offset: int) -> str:
    body = {"topic": topic, "seq": seq, "offset": offset, "ts": 1_700_000_000_000_000}
    return sse_event(kind, body | {"data": {"bid": "1", "venue_ts": 5}})


def chunked(text: str, size: int = 37) -> bytes:
    raw = text.encode()
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)


SSE_HEAD = (
    "retry: 1000\n\n"
    + sse_event("hello", {"version": 1, "epoch": 1, "offset": 0, "heartbeat_s": 15})
    + sse_data("snapshot", Q, 5, 10)
    + sse_data("snapshot", T, 2, 9)
    + sse_event("heartbeat", {"epoch": 1, "offset": 12, "ts": 1}, "1-12")
)


def test_sse_streams_are_verified(loadgen: Path, tmp_path: Path) -> None:
    good = SSE_HEAD + sse_data("delta", Q, 6, 13) + sse_data("delta", T, 3, 14)
    result = replay(loadgen, tmp_path, chunked(good), "--mode", "sse")
    assert (result["deliveries"], result["unexplained"]) == (4, 0)
    holed = SSE_HEAD + sse_data("delta", Q, 6, 13) + sse_data("delta", T, 4, 14)
    result = replay(loadgen, tmp_path, chunked(holed), "--mode", "sse")
    assert (result["gaps"], result["deliveries"]) == (1, 3)
    backwards = SSE_HEAD + sse_data("delta", Q, 6, 11)
    result = replay(loadgen, tmp_path, chunked(backwards), "--mode", "sse")
    assert (result["offset_backwards"], result["deliveries"]) == (1, 2)


def test_sse_end_is_an_eviction_and_a_bare_close_is_not(loadgen: Path, tmp_path: Path) -> None:
    end = sse_event("end", {"reason": "slow_consumer", "last": "1-12"})
    result = replay(loadgen, tmp_path, chunked(SSE_HEAD + end) + b"0\r\n\r\n", "--mode", "sse")
    assert (result["evictions"], result["unexplained"]) == (1, 0)
    result = replay(loadgen, tmp_path, chunked(SSE_HEAD) + b"0\r\n\r\n", "--mode", "sse")
    assert (result["closed_other"], result["unexplained"]) == (1, 1)


def peer_frame(seq: int) -> bytes:
    return ws_frame(struct.pack("<QQ", 123_456_789, seq) + bytes(40))


@pytest.mark.parametrize(
    ("seqs", "counter", "delivered"),
    [
        ((0, 1, 2, 3), None, 4),
        ((7, 8, 9), None, 3),  # a client that connected late starts anywhere
        ((0, 1, 3, 4), "gaps", 3),
        ((0, 1, 1, 2), "repeats", 3),
        ((0, 2, 1), "gaps", 1),  # the late 1 is then a repeat
    ],
)
def test_peer_frames_are_verified(
    loadgen: Path, tmp_path: Path, seqs: tuple[int, ...], counter: str | None, delivered: int
) -> None:
    stream = b"".join(peer_frame(s) for s in seqs)
    result = replay(loadgen, tmp_path, stream, "--payload", "peer")
    assert result["deliveries"] == delivered
    if counter is None:
        assert result["unexplained"] == 0
    else:
        assert result[counter] >= 1
        assert result["unexplained"] >= 1
