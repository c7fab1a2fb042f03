"""The abuse limits at the front door and on live connections, over real sockets.

Streams per address, the connect rate, the origin allowlist, topic patterns and the
command rate per connection, the anonymous SSE rate, CORS and X-Forwarded-For from
trusted proxies. Each refusal comes before any stream byte (or as an `error` on a live
connection), is counted in `ticker_limited_total` and logged once per episode.
"""

from __future__ import annotations

import base64
import logging
import math
import os
from dataclasses import replace

import pytest
import trio

from tests.server.conftest import TEST_CONFIG, RawWebSocket, start_server, until
from ticker.core.messages import Error, Heartbeat, Hello
from ticker.model.events import Quote
from ticker.server.process import ServerHandle

# Tests connect from 127.0.0.1, which the per-address limits leave alone by default.
UNEXEMPT = replace(TEST_CONFIG, limit_exempt_networks=())


async def raw_request(port: int, head: str) -> tuple[int, dict[str, str], bytes, trio.SocketStream]:
    """Send a request head; the status, headers (lower-case names) and bytes after the
    response head, and the open stream."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(head.encode())
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            break
        buffer += data
    response, _, rest = buffer.partition(b"\r\n\r\n")
    lines = response.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if response else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest, stream


async def rest_of(stream: trio.SocketStream, rest: bytes) -> bytes:
    """Everything until the server closes."""
    while data := await stream.receive_some(65536):
        rest += data
    return rest


def ws_head(headers: str = "", host: str = "t") -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: ticker.v1\r\n{headers}\r\n"
    )


def sse_head(query: str = "topics=quote.*", headers: str = "", host: str = "t") -> str:
    return f"GET /v1/sse?{query} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n"


async def open_ws(port: int, headers: str = "", host: str = "t") -> RawWebSocket:
    status, _, rest, stream = await raw_request(port, ws_head(headers, host))
    assert status == 101
    client = RawWebSocket(stream)
    client.buffer += rest
    [hello] = await client.messages()
    assert isinstance(hello, Hello)
    return client


async def publish_quotes(server: ServerHandle) -> None:
    """Some quotes, so a `sub` gets snapshots and its closing heartbeat."""
    for i, symbol in enumerate(("BTC-USD", "ETH-USD")):
        await server.publish(Quote("cbx", symbol, i, 100 + i, 1, 10_000, 1))
    await until(lambda: server.context.stats.ingest_events >= 2)


def limit_lines(caplog: pytest.LogCaptureFixture, limit: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"limit {limit} " in r.getMessage()]


# -- streams per address --------------------------------------------------------------------


async def test_streams_past_the_per_address_maximum_get_429_before_any_stream_byte(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    server = await start_server(nursery, replace(UNEXEMPT, max_connections_per_ip=2))
    ws = await open_ws(server.port)
    status, _, _, sse = await raw_request(server.port, sse_head())
    assert status == 200
    # The third, over either transport: 429 and a reason, no 101, no event stream.
    for head in (ws_head(), sse_head()):
        status, headers, rest, stream = await raw_request(server.port, head)
        body = await rest_of(stream, rest)
        assert status == 429 and headers["content-type"].startswith("text/plain")
        assert body == b"too many open streams (2 at most); close one first\n"
        await stream.aclose()
    stats = server.context.stats
    assert stats.limited["connections_per_ip"] == 2
    assert len(limit_lines(caplog, "connections_per_ip")) == 1  # one episode, one line
    assert stats.connections_total["ws"] + stats.connections_total["sse"] == 2
    # Other paths are not streams: served.
    status, _, _, stream = await raw_request(
        server.port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert status == 200
    await stream.aclose()
    # A stream that ends frees its place.
    await ws.close()
    front = server.context.front_door
    assert front is not None
    await until(lambda: front.streams.held("127.0.0.1") == 1)
    again = await open_ws(server.port)
    await again.close()
    await sse.aclose()
    await until(lambda: len(front.streams) == 0)


async def test_this_host_is_exempt_by_default(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, max_connections_per_ip=1))
    clients = [await open_ws(server.port) for _ in range(3)]
    assert server.context.stats.limited["connections_per_ip"] == 0
    for client in clients:
        await client.close()


# -- new connections per second per address ------------------------------------------------


async def test_new_connections_over_the_rate_get_429_with_retry_after(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    config = replace(UNEXEMPT, connect_burst_per_ip=3, connect_rate_per_ip_per_s=0.5)
    server = await start_server(nursery, config)
    autojump_clock.autojump_threshold = math.inf  # time moves only when the test says
    health = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    for _ in range(3):
        status, _, _, stream = await raw_request(server.port, health)
        assert status == 200
        await stream.aclose()
    # An application path: its JSON error. A stream: plain text. Both with Retry-After.
    status, headers, rest, stream = await raw_request(server.port, health)
    body = await rest_of(stream, rest)
    assert status == 429 and headers["retry-after"] == "2"
    assert headers["content-type"] == "application/json" and b'"status": 429' in body
    assert b"too many new connections from this address" in body
    await stream.aclose()
    status, headers, rest, stream = await raw_request(server.port, sse_head())
    assert status == 429 and headers["retry-after"] == "2"
    assert headers["content-type"].startswith("text/plain")
    await stream.aclose()
    assert server.context.stats.limited["connect_rate_per_ip"] == 2
    assert len(limit_lines(caplog, "connect_rate_per_ip")) == 1
    autojump_clock.jump(2.0)  # one token back
    status, _, _, stream = await raw_request(server.port, sse_head())
    assert status == 200
    await stream.aclose()


# -- the origin allowlist -------------------------------------------------------------------


async def test_pages_of_other_sites_are_refused_403_before_the_upgrade(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    server = await start_server(nursery)
    port = server.port
    evil = "Origin: https://evil.example\r\n"
    for head in (ws_head(evil, host=f"127.0.0.1:{port}"), sse_head(headers=evil)):
        status, _, rest, stream = await raw_request(port, head)
        body = await rest_of(stream, rest)
        assert status == 403 and b"not open to pages of this origin" in body
        await stream.aclose()
    assert server.context.stats.limited["origin"] == 2
    [line] = limit_lines(caplog, "origin")
    assert "https://evil.example" in line
    # No Origin (not a browser) and a page on the same host (the dashboard, whatever its
    # port) are served.
    for headers in ("", "Origin: http://127.0.0.1:1234\r\n"):
        client = await open_ws(port, headers, host=f"127.0.0.1:{port}")
        await client.close()
        status, _, _, stream = await raw_request(
            port, sse_head(headers=headers, host=f"127.0.0.1:{port}")
        )
        assert status == 200
        await stream.aclose()
    assert server.context.stats.limited["origin"] == 2


async def test_configured_origins_are_served(nursery: trio.Nursery) -> None:
    config = replace(TEST_CONFIG, stream_origins=("https://app.example",))
    server = await start_server(nursery, config)
    client = await open_ws(server.port, "Origin: https://app.example\r\n")
    await client.close()
    status, _, _, stream = await raw_request(
        server.port, ws_head("Origin: https://other.example\r\n")
    )
    assert status == 403
    await stream.aclose()
    anyone = await start_server(nursery, replace(TEST_CONFIG, stream_origins=("*",)))
    client = await open_ws(anyone.port, "Origin: https://other.example\r\n")
    await client.close()


# -- topic patterns per connection ----------------------------------------------------------


async def test_too_many_patterns_is_an_error_naming_the_limit_and_the_connection_stays(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    server = await start_server(nursery, replace(TEST_CONFIG, max_subscriptions=2))
    await publish_quotes(server)
    client = await open_ws(server.port)
    for _ in range(2):
        await client.subscribe("quote.*", "trade.*", "book.*")
        [error] = await client.messages()
        assert isinstance(error, Error) and error.code == 4429
        assert error.message == "at most 2 topic patterns per connection"
    await client.subscribe("quote.*")
    *_, heartbeat = await client.messages()
    assert isinstance(heartbeat, Heartbeat)
    status, _, rest, stream = await raw_request(
        server.port, sse_head("topics=quote.*,trade.*,book.*")
    )
    assert status == 429 and b"at most 2 topic patterns" in await rest_of(stream, rest)
    await stream.aclose()
    assert server.context.stats.limited["subscriptions"] == 3
    # Once for the WebSocket connection; the SSE request's 429 is its one `bad request` line.
    assert len(limit_lines(caplog, "subscriptions")) == 1
    await client.close()


# -- commands per second per connection -----------------------------------------------------


async def test_commands_over_the_rate_get_errors_and_persistence_closes_4429(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    config = replace(TEST_CONFIG, command_rate_per_s=1.0, command_burst=2, max_refused_commands=3)
    server = await start_server(nursery, config)
    await publish_quotes(server)
    client = await open_ws(server.port)
    # From here time moves only when the test says: the socket round trips cost none.
    autojump_clock.autojump_threshold = math.inf
    for pattern in ("quote.BTC-USD", "quote.ETH-USD"):  # the burst: applied
        await client.subscribe(pattern)
        *_, heartbeat = await client.messages()
        assert isinstance(heartbeat, Heartbeat)
    for _ in range(3):  # over it: refused, not applied, the connection stays
        await client.subscribe("trade.*")
        [error] = await client.messages()
        assert isinstance(error, Error) and error.code == 4429
        assert "too many commands (at most 1 commands/s after a burst of 2)" in error.message
    subscriber = next(iter(server.context.fanout.subscribers()))
    assert sorted(subscriber.patterns) == ["quote.BTC-USD", "quote.ETH-USD"]
    # Slowing down is forgiven: strikes drain, tokens come back (both: applied; a `sub`
    # of topics not published yet is answered with nothing).
    autojump_clock.jump(5.0)
    await client.subscribe("trade.*")
    await client.subscribe("book.*")
    # Persistently over: more than 3 refusals outstanding closes with 4429.
    for _ in range(3):
        await client.subscribe("ticker.*")
        [error] = await client.messages()  # after the two: they were applied by now
        assert isinstance(error, Error) and error.code == 4429
    assert sorted(subscriber.patterns) == ["book.*", "quote.BTC-USD", "quote.ETH-USD", "trade.*"]
    await client.subscribe("ticker.*")
    with pytest.raises(ConnectionAbortedError) as closed:
        await client.messages()
    code, reason = closed.value.args
    assert code == 4429 and reason.startswith(b"too many commands")
    stats = server.context.stats
    assert (stats.limited["command_rate"], stats.limited["command_rate_close"]) == (6, 1)
    assert stats.bad_requests == 0  # refusals are not bad commands (no 4400 close)
    autojump_clock.autojump_threshold = 0
    await until(lambda: stats.ends["limit"] == 1)
    assert len(limit_lines(caplog, "command_rate")) == 1
    assert len(limit_lines(caplog, "command_rate_close")) == 1
    await client.close()


# -- the anonymous SSE rate -----------------------------------------------------------------


async def test_anonymous_sse_streams_get_the_rate_cap(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, replace(TEST_CONFIG, sse_anonymous_max_rate_per_s=5.0))
    streams = []
    for query in ("topics=quote.*", "topics=quote.*&max_rate=20", "topics=quote.*&max_rate=2"):
        status, _, _, stream = await raw_request(server.port, sse_head(query))
        assert status == 200
        streams.append(stream)
    fanout = server.context.fanout
    await until(lambda: len(fanout) == 3)
    assert all(s.rate_limited for s in fanout.subscribers())
    assert server.context.stats.limited["sse_anonymous_rate"] == 2  # 2/s was below the cap
    # Above the ceiling every stream may ask for: still a 400, as before.
    status, _, _, refused = await raw_request(server.port, sse_head("topics=quote.*&max_rate=51"))
    assert status == 400
    await refused.aclose()
    for stream in streams:
        await stream.aclose()


async def test_without_the_cap_a_stream_gets_every_update(server: ServerHandle) -> None:
    status, _, _, stream = await raw_request(server.port, sse_head())
    assert status == 200
    await until(lambda: len(server.context.fanout) == 1)
    assert not next(iter(server.context.fanout.subscribers())).rate_limited
    await stream.aclose()


# -- CORS -----------------------------------------------------------------------------------


async def test_cors_is_open_by_default(server: ServerHandle) -> None:
    for head in (
        sse_head(headers="Origin: http://t\r\n"),
        "GET /v1/snapshot?topics=quote.* HTTP/1.1\r\nHost: t\r\nOrigin: https://x.example\r\n\r\n",
    ):
        status, headers, _, stream = await raw_request(server.port, head)
        assert status == 200 and headers["access-control-allow-origin"] == "*"
        await stream.aclose()


async def test_cors_origins_are_echoed_only_when_listed(nursery: trio.Nursery) -> None:
    config = replace(TEST_CONFIG, cors_origins=("https://app.example",), stream_origins=("*",))
    server = await start_server(nursery, config)
    snapshot = "GET /v1/snapshot?topics=quote.* HTTP/1.1\r\nHost: t\r\n"
    for head in (sse_head(headers="{}"), snapshot + "{}\r\n"):
        status, headers, _, stream = await raw_request(
            server.port, head.format("Origin: https://app.example\r\n")
        )
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
        assert headers["vary"] == "Origin"
        await stream.aclose()
        status, headers, _, stream = await raw_request(
            server.port, head.format("Origin: https://other.example\r\n")
        )
        assert status == 200 and "access-control-allow-origin" not in headers
        await stream.aclose()
    assert server.context.stats.limited["cors_origin"] == 2
    # Preflights (a page sending Authorization or Last-Event-ID) on both.
    for path in ("/v1/sse?topics=quote.*", "/v1/snapshot?topics=quote.*"):
        status, headers, _, stream = await raw_request(
            server.port,
            f"OPTIONS {path} HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
            "Access-Control-Request-Method: GET\r\n"
            "Access-Control-Request-Headers: authorization\r\n\r\n",
        )
        assert status in (200, 204)
        assert headers["access-control-allow-origin"] == "https://app.example"
        assert headers["access-control-allow-methods"] == "GET"
        assert "Authorization" in headers["access-control-allow-headers"]
        await stream.aclose()


# -- behind a proxy -------------------------------------------------------------------------


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.server")
    config = replace(UNEXEMPT, trusted_proxies=("127.0.0.1/32",), max_connections_per_ip=1)
    server = await start_server(nursery, config)
    forwarded = "X-Forwarded-For: 6.6.6.6, 203.0.113.5\r\n"
    status, _, _, first = await raw_request(server.port, sse_head(headers=forwarded))
    assert status == 200
    status, _, _, stream = await raw_request(server.port, sse_head(headers=forwarded))
    assert status == 429
    await stream.aclose()
    [line] = limit_lines(caplog, "connections_per_ip")
    assert "refused 203.0.113.5:" in line
    # Another client behind the same proxy has its own count.
    status, _, _, other = await raw_request(
        server.port, sse_head(headers="X-Forwarded-For: 203.0.113.6\r\n")
    )
    assert status == 200
    front = server.context.front_door
    assert front is not None and front.streams.held("203.0.113.5") == 1
    await first.aclose()
    await until(lambda: front.streams.held("203.0.113.5") == 0)
    ends = [r.getMessage() for r in caplog.records if "connection end" in r.getMessage()]
    assert any("peer=203.0.113.5:" in e for e in ends)
    await other.aclose()


async def test_an_untrusted_peer_cannot_choose_its_address(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, replace(UNEXEMPT, max_connections_per_ip=1))
    status, _, _, first = await raw_request(
        server.port, sse_head(headers="X-Forwarded-For: 203.0.113.5\r\n")
    )
    assert status == 200
    status, _, _, second = await raw_request(
        server.port, sse_head(headers="X-Forwarded-For: 203.0.113.6\r\n")
    )
    assert status == 429  # both are 127.0.0.1
    front = server.context.front_door
    assert front is not None and front.streams.held("127.0.0.1") == 1
    await first.aclose()
    await second.aclose()
