"""Pins every normalized event the three venue adapters produce for recorded frames.

The adapters' parse/normalize path is tuned for speed; these digests were taken from
the code before that tuning, so any change to a normalized event (its type, a field's
value or type), to the snapshot requests or to the counters fails here. The frames are
the hub golden test's recording (tests/core/data), plus damaged copies of some of them,
so the validation paths are pinned as well as the happy path.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.core.test_hub_golden import _sessions
from ticker.venues import make_adapter

# (venue, damaged frames fed too): (events, sha256 of every output, counters and books)
GOLDEN: dict[tuple[str, bool], tuple[int, str]] = {
    ("itx", False): (3436, "19638e6f79abab120854096f4529e2c85e6e95979768c71f6c518359f24a7f10"),
    ("itx", True): (1768, "710802c301f7db2585e9c5828e6f94b72b63f94e6c661b20ad811285ff2b2a5e"),
    ("cbx", False): (2665, "e7a8ce5fa1648586be0c523a2912c7c24cf677645cbe82910d5592e3ed38621b"),
    ("cbx", True): (2298, "2fe6326684ff3fadd580bd54c5a61f9c0e454d773dfbc297407a11b0f9180bc2"),
    ("fxa", False): (3125, "44f0317a06da192ed07a91d8398d50cb03d548585c8969c8dbe9c24202ab2153"),
    ("fxa", True): (2722, "882c039767e0c219058baac762fd61f3fe18ae23a359c33749f905a1468fe00c"),
}


def _damaged(frame: bytes, i: int) -> bytes:
    """A deterministic corruption of `frame`: truncated, a byte changed, or doubled."""
    kind = i % 3
    if kind == 0:
        return frame[: len(frame) // 2]
    if kind == 1:
        at = (i * 7919) % len(frame)
        return frame[:at] + bytes([(frame[at] + 1 + i % 250) % 256]) + frame[at + 1 :]
    return frame + frame


def digest(venue: str, frames: list[bytes], damage: bool) -> tuple[int, str]:
    adapter = make_adapter(venue)
    sha = hashlib.sha256()
    count = 0
    for i, frame in enumerate(frames):
        # Every 50th frame is also fed damaged first, and near the end the connection
        # drops: the adapter must reject, count and recover exactly as before.
        if damage and i % 50 == 49:
            out = adapter.on_message(_damaged(frame, i // 50), i)
            sha.update(repr((out.events, out.requests)).encode())
        if damage and i == len(frames) - 300:
            out = adapter.on_disconnect(i)
            sha.update(repr((out.events, out.requests)).encode())
        out = adapter.on_message(frame, i)
        count += len(out.events)
        for event in out.events:
            # repr alone would not tell an int from a bool or a subclass.
            sha.update(repr((type(event).__name__, event, [type(f) for f in event])).encode())
        sha.update(repr(out.requests).encode())
    sha.update(repr(adapter.counters).encode())
    sha.update(repr(sorted(adapter.books().items())).encode())
    return count, sha.hexdigest()


@pytest.mark.parametrize("damage", [False, True])
@pytest.mark.parametrize("venue", ["itx", "cbx", "fxa"])
def test_normalized_events_unchanged(venue: str, damage: bool) -> None:
    assert digest(venue, _sessions()[venue], damage) == GOLDEN[venue, damage]


if __name__ == "__main__":
    sessions = _sessions()
    for name in ("itx", "cbx", "fxa"):
        for damaged in (False, True):
            print(f"    ({name!r}, {damaged}): {digest(name, sessions[name], damaged)},")
