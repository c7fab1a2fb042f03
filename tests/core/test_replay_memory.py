"""The replay buffer's byte bound covers what its messages really hold: their value and
bytes and every form built for a client (WebSocket, zstd, JSON, SSE), not the msgpack
payload alone. (Counting only the payload let a full buffer hold ~19x its bound.)"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from feeds.simulator import make_simulator
from ticker.config import Config
from ticker.core.compression import FrameCompressor, load_dictionary
from ticker.core.hub import Hub, Published
from ticker.core.replay import ReplayBuffer
from ticker.model.events import NormalizedEvent
from ticker.venues import make_adapter


def venue_events(venue: str, frames: int) -> list[NormalizedEvent]:
    simulator = make_simulator(venue, seed=3, rate_per_s=10_000)
    adapter = make_adapter(venue)
    data = [frame.data for frame in simulator.connect()]
    data += [simulator.next_frame().data for _ in range(frames)]
    return [event for i, d in enumerate(data) for event in adapter.on_message(d, i).events]


def render_every_form(items: list[Published], compressor: FrameCompressor) -> None:
    """What a server with WebSocket, zstd and SSE clients builds for each message."""
    for item in items:
        assert item.ws and item.sse and item.ws_zstd(compressor)


def held_items(hub: Hub) -> list[Published]:
    replay = hub.replay
    items = [replay.get(offset) for offset in range(replay.first_offset, replay.last_offset + 1)]
    return [item for item in items if item is not None]


def forms_bytes(item: Published) -> int:
    forms = (item._json, item._sse, item._ws, item._ws_zstd)
    return sum(sys.getsizeof(form) for form in forms if form is not None)


@pytest.fixture(scope="module")
def events() -> list[NormalizedEvent]:
    return venue_events("cbx", 6000)


def test_forms_built_for_clients_count_against_the_byte_bound(
    events: list[NormalizedEvent],
) -> None:
    config = Config(replay_max_messages=1_000_000, replay_max_bytes=300_000)
    hub = Hub(config, epoch=1)
    compressor = FrameCompressor(load_dictionary())
    for i, event in enumerate(events[:-1]):
        render_every_form(hub.publish(event, i), compressor)
    hub.publish(events[-1], len(events))  # the append that brings the bytes back in bound
    held = held_items(hub)
    assert len(held) < len(events) / 2  # the byte bound acted
    forms = sum(forms_bytes(item) for item in held)
    payloads = sum(item.size for item in held)
    assert forms > payloads  # what the old accounting left out is most of it
    assert forms + payloads <= hub.replay.bytes <= config.replay_max_bytes


def test_a_full_buffer_holds_about_its_byte_bound_in_memory(
    events: list[NormalizedEvent],
) -> None:
    """Measured, not estimated: tracemalloc of a hub whose buffer turned over with every
    form built stays within its bound plus the hub's per-topic state."""
    max_bytes = 2_000_000
    compressor = FrameCompressor(load_dictionary())
    gc.collect()
    tracemalloc.start()
    try:
        hub = Hub(Config(replay_max_messages=1_000_000, replay_max_bytes=max_bytes), epoch=1)
        rings = tracemalloc.get_traced_memory()[0]  # 16 bytes a slot, allocated up front
        for i, event in enumerate(events):
            render_every_form(hub.publish(event, i), compressor)
        gc.collect()
        held_memory = tracemalloc.get_traced_memory()[0] - rings
    finally:
        tracemalloc.stop()
    assert len(hub.replay) < len(events) / 2  # turned over
    assert held_memory <= 1.25 * max_bytes


def test_grown_bytes_count_until_the_entry_is_evicted() -> None:
    buffer: ReplayBuffer[str] = ReplayBuffer(1, 100, 100)
    for offset in (1, 2, 3):
        buffer.append(offset, str(offset), 10)
    buffer.grew(2, 50)
    assert buffer.bytes == 80
    buffer.grew(9, 50)  # not held: nothing to count
    assert buffer.bytes == 80
    buffer.append(4, "4", 40)  # 120 > 100: the oldest goes, and the one that grew
    assert (buffer.first_offset, buffer.bytes) == (3, 50)
    buffer.grew(2, 5)  # evicted: ignored
    assert buffer.bytes == 50
