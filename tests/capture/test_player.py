"""The replay shell: pacing on a virtual clock, targets, loops, damage, a real server."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial

import trio
import trio.testing

from ticker.capture.errors import CorruptCapture
from ticker.capture.player import EmbeddedTarget, NullTarget, play
from ticker.capture.replay import ReplayOptions
from ticker.config import Config
from ticker.core.codec import encode_data
from ticker.core.hub import Hub
from ticker.model.event_codec import encode_event
from ticker.model.events import NormalizedEvent
from ticker.server.process import ServerHandle, serve

from .conftest import DEADLINE_S, Captured, opener


class CollectingTarget:
    description = "a list"

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[NormalizedEvent]]] = []

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        self.batches.append((trio.current_time(), list(events)))
        await trio.lowlevel.checkpoint()

    async def finish(self) -> None:
        await trio.lowlevel.checkpoint()

    @property
    def events(self) -> list[NormalizedEvent]:
        return [e for _, batch in self.batches for e in batch]


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def update(self, records: int, events: int, loop: int) -> None:
        self.calls.append((records, events, loop))


async def test_a_paced_replay_takes_the_recorded_time_and_publishes_the_live_events(
    capture: Captured, autojump_clock: trio.testing.MockClock
) -> None:
    records = capture.records()
    span_s = (records[-1].recv_ns - records[0].recv_ns) / 1e9
    target = CollectingTarget()
    progress = Progress()
    with trio.fail_after(DEADLINE_S):
        began = trio.current_time()
        result = await play(capture.opener(), ReplayOptions(speed=2.0), target, progress=progress)
    assert result.error is None
    assert [encode_event(e) for e in target.events] == [encode_event(e) for e in capture.live]
    # Virtual time: the replay took the recorded span at double speed, and on the
    # virtual clock nothing ever left late.
    assert abs((trio.current_time() - began) - span_s / 2) < 0.01
    assert result.lateness.total > 0 and result.lateness.max_s == 0
    # Batches left at their due times: spread over the span, not all at the start.
    assert target.batches[-1][0] - target.batches[0][0] > span_s / 4
    assert progress.calls[-1][0] == len(records)


async def test_max_sleep_compresses_quiet_periods(
    capture: Captured, autojump_clock: trio.testing.MockClock
) -> None:
    records = capture.records()
    gaps = [(b.recv_ns - a.recv_ns) / 1e9 for a, b in itertools.pairwise(records)]
    expected = sum(min(gap, 0.001) for gap in gaps)
    with trio.fail_after(DEADLINE_S):
        began = trio.current_time()
        await play(capture.opener(), ReplayOptions(speed=1.0, max_sleep_s=0.001), NullTarget())
    # The last step with events may come before the very last record; the replay waits
    # (virtual time) at least until that step is due, so one that ignores pacing fails.
    last_with_events = max(i for i, events in enumerate(capture.live_by_record) if events)
    at_least = sum(min(gap, 0.001) for gap in gaps[:last_with_events])
    assert at_least > 0.1
    assert at_least - 1e-6 <= trio.current_time() - began <= expected + 1e-6


async def test_batches_never_exceed_batch_events_even_for_a_big_warm_up_state_step(
    capture: Captured,
) -> None:
    records = capture.records()
    start = records[len(records) // 2].recv_ns
    target = CollectingTarget()
    with trio.fail_after(DEADLINE_S):
        result = await play(
            capture.opener(), ReplayOptions(speed=None, start_ns=start), target, batch_events=4
        )
    assert result.error is None
    assert result.counts.state_events > 4  # the warm-up restates more than one batch holds
    assert max(len(batch) for _, batch in target.batches) <= 4
    assert result.published_events == len(target.events) == result.counts.events
    assert result.batches == len(target.batches)


async def test_loops_replay_the_window_again_with_fresh_normalizers(
    capture: Captured, autojump_clock: trio.testing.MockClock
) -> None:
    target = CollectingTarget()
    with trio.fail_after(DEADLINE_S):
        result = await play(
            capture.opener(), ReplayOptions(speed=None, rebase=True), target, loops=3
        )
    assert result.loops == 3
    events = target.events
    n = len(capture.live)
    assert len(events) == 3 * n
    for loop in range(3):
        chunk = events[loop * n : (loop + 1) * n]
        shift = chunk[0].ts_ns - capture.live[0].ts_ns
        assert [e._replace(ts_ns=e.ts_ns - shift) for e in chunk] == capture.live


async def test_a_damaged_capture_stops_after_publishing_everything_before_the_damage(
    capture: Captured,
) -> None:
    blocks = list(capture.reader().blocks())
    damaged = bytearray(capture.data)
    damaged[blocks[2].frame_offset + 10] ^= 0xFF
    target = CollectingTarget()
    with trio.fail_after(DEADLINE_S):
        result = await play(opener(bytes(damaged)), ReplayOptions(speed=None), target)
    assert isinstance(result.error, CorruptCapture)
    whole = blocks[0].records + blocks[1].records
    expected = [e for per_record in capture.live_by_record[:whole] for e in per_record]
    assert target.events == expected


def hub_messages(hub: Hub) -> list[bytes]:
    """Every message the hub published, as bytes, with the publish time zeroed."""
    out = []
    for offset in range(1, hub.position.offset + 1):
        item = hub.replay.get(offset)
        assert item is not None
        out.append(encode_data(item.message._replace(ts_us=0)))
    return out


def reference_hub(events: list[NormalizedEvent]) -> Hub:
    hub = Hub(Config(), epoch=7)
    for event in events:
        hub.publish(event, 0)
    return hub


async def start_server(nursery: trio.Nursery, config: Config) -> ServerHandle:
    handle: ServerHandle = await nursery.start(partial(serve, config, run_venues=False, epoch=7))
    return handle


async def test_a_replay_into_an_embedded_server_publishes_what_live_ingest_did(
    capture: Captured,
) -> None:
    config = Config(port=0, heartbeat_s=3600, ingest_queue_batches=2)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, config)
            result = await play(
                capture.opener(), ReplayOptions(speed=None), EmbeddedTarget(handle.events),
                batch_events=64,
            )  # fmt: skip
            assert result.error is None
            assert handle.context.stats.ingest_events == len(capture.live)
            assert hub_messages(handle.hub) == hub_messages(reference_hub(capture.live))
            handle.stop()
