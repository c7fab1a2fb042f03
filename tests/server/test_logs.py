"""Every streaming connection's end is exactly one log line with its transport, reason,
duration, messages and lag, in `key=value` form; evictions log at WARNING."""

from __future__ import annotations

import logging
import re

import pytest

from tests.server.conftest import RawWebSocket, SseClient, until
from ticker.model.events import Quote
from ticker.server.process import ServerHandle

LINE = re.compile(
    r"connection end transport=(?P<transport>\w+) peer=127\.0\.0\.1:\d+ "
    r"reason=(?P<reason>\w+) duration_s=\d+\.\d messages=(?P<messages>\d+) "
    r"bytes=\d+ last=(?P<last>\d+) lag=(?P<lag>\d+)"
)


async def test_one_line_per_connection_end(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    for i in range(3):
        await server.publish(Quote("cbx", "BTC-USD", i, 100 + i, 1, 200, 1))
    ws = await RawWebSocket.connect(server.port)
    await ws.messages()  # hello
    await ws.subscribe("quote.BTC-USD")
    await ws.messages()  # the snapshot
    sse = await SseClient.connect(server.port, "topics=quote.*")
    while (await sse.event()).get("event") != "snapshot":
        pass
    await ws.close()
    await sse.stream.aclose()
    await until(lambda: sum(server.context.stats.connections_open.values()) == 0)

    lines = [r for r in caplog.records if r.getMessage().startswith("connection end")]
    assert len(lines) == 2
    found = {}
    for record in lines:
        match = LINE.fullmatch(record.getMessage())
        assert match, record.getMessage()
        assert record.levelno == logging.INFO
        found[match["transport"]] = match.groupdict()
    assert found["ws"]["reason"] == "client_closed"
    assert found["sse"]["reason"] in {"client_closed", "peer_reset"}
    for fields in found.values():
        assert int(fields["messages"]) == 1  # one snapshot each
        assert (int(fields["last"]), int(fields["lag"])) == (3, 0)
