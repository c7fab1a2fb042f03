"""The hub task of a running server: no single event, from any source, ends it."""

from __future__ import annotations

import logging

import pytest

from tests.server.conftest import RawWebSocket, until
from ticker.core.hub import Hub, Published
from ticker.core.messages import DataMessage, ServerMessage
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import NormalizedEvent, TakerSide, Trade
from ticker.server.process import ServerHandle


def trade(i: int, trade_id: str | None = None) -> Trade:
    return Trade("cbx", "BTC-USD", i, 100 + i, 1, TakerSide.BUY, trade_id or f"t{i}")


async def follow(ws: RawWebSocket, mirror: Mirror, until_offset: int) -> list[DataMessage]:
    """Apply data messages to `mirror` until the one at `until_offset`."""
    seen: list[DataMessage] = []
    while not seen or seen[-1].offset < until_offset:
        messages: list[ServerMessage] = await ws.messages()
        for message in messages:
            if isinstance(message, DataMessage):
                assert mirror.apply(message) == Applied(message.seq)
                seen.append(message)
    return seen


async def test_an_event_the_hub_cannot_publish_is_counted_logged_and_skipped(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    ws = await RawWebSocket.connect(server.port)
    await ws.messages()  # hello
    await ws.subscribe("trade.BTC-USD", "ticker.BTC-USD")
    mirror = Mirror()
    await follow(ws, mirror, 0)  # the two (empty) snapshots
    # A lone surrogate is a str but not UTF-8: the trade's encoding fails in the hub,
    # after the sequencer spent its offset. Today that would end the hub task.
    await server.publish(trade(1, "\ud800"), trade(2, "\ud800"), trade(3))
    await until(lambda: server.context.stats.ingest_events == 3)
    seen = await follow(ws, mirror, 6)
    stats = server.context.stats
    assert stats.hub_rejected_events == 2
    assert [m.offset for m in seen] == list(range(1, 7))
    assert seen[-2].data["id"] == "t3"
    for topic in ("trade.BTC-USD", "ticker.BTC-USD"):
        assert mirror.data(topic) == server.hub.snapshot(topic).data
    # Logged once with its traceback; the same reason again is a rate-limited line.
    rejections = [r for r in caplog.records if "rejected an event" in r.getMessage()]
    assert [r.levelno for r in rejections] == [logging.ERROR, logging.WARNING]
    assert rejections[0].exc_info is not None
    assert "UnicodeEncodeError" in rejections[0].getMessage()
    await ws.close()


async def test_the_hub_task_outlives_a_failure_of_the_repair_itself(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Hub.publish

    def publish(hub: Hub, event: NormalizedEvent, now_ns: int) -> list[Published]:
        if isinstance(event, Trade) and event.trade_id == "boom":
            raise RuntimeError("a bug nothing foresaw")
        return real(hub, event, now_ns)

    monkeypatch.setattr(Hub, "publish", publish)
    await server.publish(trade(1, "boom"), trade(2))
    await server.publish(trade(3))
    await until(lambda: server.context.stats.ingest_events == 3)
    assert server.context.stats.hub_rejected_events == 1
    assert server.hub.snapshot("trade.BTC-USD").data["id"] == "t3"
