"""Recording a running server's stream, and replaying it into another server."""

from __future__ import annotations

import io
from functools import partial

import trio

from ticker.capture.format import CaptureReader, CaptureWriter, RecordKind
from ticker.capture.player import EmbeddedTarget, play
from ticker.capture.replay import ReplayOptions
from ticker.capture.stream_source import (
    STREAM_CHANNELS,
    STREAM_VENUE,
    StreamNormalizer,
    record_stream,
    stream_header,
)
from ticker.config import Config
from ticker.core.hub import Hub
from ticker.server.process import ServerHandle, serve

from .conftest import DEADLINE_S, Captured, opener

CONFIG = Config(port=0, heartbeat_s=3600, ping_interval_s=3600)


async def start(nursery: trio.Nursery) -> ServerHandle:
    handle: ServerHandle = await nursery.start(partial(serve, CONFIG, run_venues=False, epoch=1))
    return handle


async def until(predicate: object, timeout_s: float = 30) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.01)


def topic_states(hub: Hub, channel: str) -> dict[str, object]:
    return {t: hub.snapshot(t).data for t in hub.topics() if t.startswith(channel + ".")}


def recorded_offset(hub: Hub) -> int:
    """The offset of the last message of a channel the stream recorder follows."""
    return max(
        (hub.snapshot(t).offset for t in hub.topics() if t.partition(".")[0] in STREAM_CHANNELS),
        default=0,
    )


def trades(hub: Hub) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for offset in range(1, hub.position.offset + 1):
        item = hub.replay.get(offset)
        assert item is not None
        if item.topic.startswith("trade."):
            out.append((item.topic, item.message.data))
    return out


async def test_a_recorded_stream_replays_into_the_same_books_quotes_and_trades(
    capture: Captured,
) -> None:
    file = io.BytesIO()
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            source = await start(nursery)
            writer = CaptureWriter(file, stream_header("ws://source", None, 0))
            normalizer = StreamNormalizer(writer.header.venues)
            url = f"ws://127.0.0.1:{source.port}"
            nursery.start_soon(partial(record_stream, writer, url, 3600.0, normalizer=normalizer))
            await until(lambda: len(source.context.fanout) == 1)  # subscribed
            for record_events in capture.live_by_record:
                if record_events:
                    await source.publish(*record_events)
            await until(lambda: source.context.stats.ingest_events == len(capture.live))
            # The recorder follows the consolidated channels: venue topics' messages
            # (`book@cbx.*`) may come last in the stream and never reach it.
            await until(lambda: normalizer.last_offset == recorded_offset(source.hub))
            writer.close()
            nursery.cancel_scope.cancel()
    reader = CaptureReader(io.BytesIO(file.getvalue()))
    records = list(reader.records())
    assert records and all(r.kind is RecordKind.EVENT for r in records)
    assert {r.venue for r in records} == {STREAM_VENUE, "cbx", "fxa", "itx"}
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            copy = await start(nursery)
            result = await play(
                opener(file.getvalue()), ReplayOptions(speed=None), EmbeddedTarget(copy.events)
            )
            assert result.error is None and result.counts.malformed_events == 0
            for channel in ("book", "quote"):
                assert topic_states(copy.hub, channel) == topic_states(source.hub, channel)
            assert trades(copy.hub) == trades(source.hub)
            copy.stop()
            source.stop()


async def test_a_quiet_stream_is_still_flushed_on_time() -> None:
    flushes: list[int] = []
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)  # no venues: nothing ever arrives
            file = io.BytesIO()
            writer = CaptureWriter(file, stream_header(f"ws://127.0.0.1:{handle.port}", None, 0))
            record = partial(
                record_stream, writer, f"ws://127.0.0.1:{handle.port}", 3600.0,
                progress=lambda w: flushes.append(w.bytes_written), flush_interval_s=0.02,
            )  # fmt: skip
            nursery.start_soon(record)
            await until(lambda: len(flushes) >= 3)
            nursery.cancel_scope.cancel()
