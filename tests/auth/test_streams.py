"""Authentication and entitlements on the live endpoints (real sockets, 127.0.0.1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest
import trio

from ticker.core.messages import DataMessage, Error, Hello
from ticker.errors import CLOSE_FORBIDDEN
from ticker.model.events import BookUpdate

from .keyring import NOW, claims, hs_token
from .servers import (
    AUTH_CONFIG,
    SseStream,
    WsClient,
    bearer,
    book,
    publish,
    quote,
    request,
    start_auth_server,
    trade,
    upgrade_headers,
)

GOOD = hs_token(claims(topics=["quote.BTC-USD", "book.*"]))


def data(messages: Sequence[object]) -> list[DataMessage]:
    return [m for m in messages if isinstance(m, DataMessage)]


async def test_required_refuses_before_any_upgrade_or_stream_byte(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_auth_server(nursery)
    await publish(server, quote(1))
    bad = hs_token(claims(exp=NOW - 1))
    cases = [
        ("/v1/ws", upgrade_headers()),
        ("/v1/ws", upgrade_headers() | bearer(bad)),
        ("/v1/ws?token=" + bad, upgrade_headers()),
        ("/v1/sse?topics=quote.*", {}),
        ("/v1/sse?topics=quote.*", bearer(bad)),
        ("/v1/sse?topics=quote.*&token=" + bad, {}),
        ("/v1/sse?topics=quote.*", {"Cookie": f"ticker_token={bad}"}),
        ("/v1/snapshot?topics=quote.*", {}),
        ("/v1/snapshot?topics=quote.*&token=" + bad, {}),
    ]
    for target, headers in cases:
        response, stream = await request(server.port, target, headers, read_body=True)
        await stream.aclose()
        assert response.status == 401, (target, response.head)
        assert b'www-authenticate: bearer realm="ticker"' in response.head.lower()
        assert b"event:" not in response.body and b"snapshots" not in response.body
        assert b"expired" in response.body or b"required" in response.body
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert bad not in text and bad[-20:] not in text
    assert server.context.auth is not None and server.context.auth.refused == len(cases)


async def test_tokens_from_header_query_and_cookie_open_streams(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1))
    ws = await WsClient.connect(server.port, bearer(GOOD))
    (hello,) = await ws.messages()
    assert isinstance(hello, Hello)
    await ws.close()
    for query, headers in [
        (f"topics=quote.*&token={GOOD}", {}),
        ("topics=quote.*", {"Cookie": f"a=b; ticker_token={GOOD}"}),
        ("topics=quote.*", bearer(GOOD)),
    ]:
        sse = await SseStream.connect(server.port, query, headers)
        assert (await sse.event())["retry"]
        assert (await sse.event())["event"] == "hello"
        assert json.loads((await sse.event())["data"])["topic"] == "quote.BTC-USD"
        await sse.close()


async def test_query_token_can_be_turned_off(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery, replace(AUTH_CONFIG, auth_query_token=False))
    response, stream = await request(
        server.port, f"/v1/sse?topics=quote.*&token={GOOD}", {}, read_body=True
    )
    await stream.aclose()
    assert response.status == 401


async def test_ws_sub_outside_entitlements_names_each_forbidden_pattern(
    nursery: trio.Nursery,
) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1), quote(2, "ETH-USD"), trade(3), book(4, "ETH-USD"))
    ws = await WsClient.connect(server.port, bearer(GOOD))
    await ws.messages()  # hello
    await ws.subscribe("quote.*", "trade.BTC-USD", "book.ETH-USD", "trade.*")
    replies = await ws.messages() + await ws.messages()
    errors = [m for m in replies if isinstance(m, Error)]
    assert errors == [Error(CLOSE_FORBIDDEN, "not entitled to: trade.BTC-USD, trade.*")]
    assert {m.topic for m in data(replies)} == {"quote.BTC-USD", "book.ETH-USD"}
    # Live: a wildcard never carries a topic outside the grants.
    await publish(server, quote(5, "ETH-USD"), trade(6), quote(7), book(8, "ETH-USD"))
    seen: set[str] = set()
    while "book.ETH-USD" not in seen:
        seen |= {m.topic for m in data(await ws.messages())}
    assert seen == {"quote.BTC-USD", "book.ETH-USD"}
    # All forbidden: an error, nothing else changes.
    await ws.subscribe("trade.ETH-USD")
    assert await ws.messages() == [Error(CLOSE_FORBIDDEN, "not entitled to: trade.ETH-USD")]
    # Unsubscribing the wildcard removes what it was narrowed to.
    await ws.send(b"\x92\xa5unsub\x91\xa7quote.*")
    await publish(server, quote(9), book(10, "ETH-USD"))
    assert {m.topic for m in data(await ws.messages())} == {"book.ETH-USD"}
    await ws.close()


async def test_sse_and_snapshot_answer_only_allowed_topics(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1), quote(2, "ETH-USD"), trade(3))
    sse = await SseStream.connect(server.port, "topics=quote.*,trade.*", bearer(GOOD))
    events = [await sse.event() for _ in range(4)]
    assert [e.get("event") for e in events[1:]] == ["hello", "error", "snapshot"]
    assert json.loads(events[2]["data"]) == {"code": 4403, "message": "not entitled to: trade.*"}
    assert json.loads(events[3]["data"])["topic"] == "quote.BTC-USD"
    await publish(server, quote(4, "ETH-USD"), trade(5), quote(6))
    topics: list[str] = []
    while len(topics) < 1:
        event = await sse.event()
        if event.get("event") in ("delta", "snapshot"):
            topics.append(json.loads(event["data"])["topic"])
    assert topics == ["quote.BTC-USD"]
    await sse.close()
    # All forbidden: 403 before the stream.
    response, stream = await request(
        server.port, "/v1/sse?topics=trade.*", bearer(GOOD), read_body=True
    )
    await stream.aclose()
    assert response.status == 403 and b"not entitled to: trade.*" in response.body
    assert b"event:" not in response.body
    # The snapshot document.
    response, stream = await request(
        server.port, "/v1/snapshot?topics=quote.*,trade.*", bearer(GOOD), read_body=True
    )
    await stream.aclose()
    document = json.loads(response.body)
    assert [s["topic"] for s in document["snapshots"]] == ["quote.BTC-USD"]
    assert document["forbidden"] == ["trade.*"]
    response, stream = await request(
        server.port, "/v1/snapshot?topics=trade.*", bearer(GOOD), read_body=True
    )
    await stream.aclose()
    assert response.status == 403
    assert json.loads(response.body) == {"error": "not entitled to: trade.*", "status": 403}


async def test_optional_mode_serves_anonymous_its_topics(nursery: trio.Nursery) -> None:
    config = replace(AUTH_CONFIG, auth="optional", auth_anonymous_topics=("ticker.*",))
    server = await start_auth_server(nursery, config)
    await publish(server, quote(1))
    response, stream = await request(server.port, "/v1/snapshot?topics=quote.*", {}, read_body=True)
    await stream.aclose()
    assert response.status == 403
    ws = await WsClient.connect(server.port, {})
    await ws.messages()
    await ws.subscribe("quote.BTC-USD")
    assert await ws.messages() == [Error(CLOSE_FORBIDDEN, "not entitled to: quote.BTC-USD")]
    await ws.close()
    # A bad token is refused, never taken as anonymous.
    response, stream = await request(
        server.port, "/v1/ws", upgrade_headers() | bearer("x.y.z"), read_body=True
    )
    await stream.aclose()
    assert response.status == 401
    # With a token, its own entitlements.
    ws = await WsClient.connect(server.port, bearer(GOOD))
    await ws.messages()
    await ws.subscribe("quote.BTC-USD")
    assert data(await ws.messages())[0].topic == "quote.BTC-USD"
    await ws.close()


async def collect_until(ws: WsClient, offset: int) -> tuple[list[DataMessage], list[object]]:
    """Data messages (and everything else) until a heartbeat or message at `offset`."""
    got: list[DataMessage] = []
    other: list[object] = []
    while True:
        for message in await ws.messages():
            if isinstance(message, DataMessage):
                got.append(message)
                if message.offset >= offset:
                    return got, other
            else:
                other.append(message)
                if getattr(message, "offset", -1) >= offset and not isinstance(message, Hello):
                    return got, other


async def test_resume_replay_and_reset_obey_the_entitlements(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    token = hs_token(claims(topics=["quote.BTC-USD", "trade.*"]))
    await publish(server, quote(1), quote(2, "ETH-USD"))
    start = str(server.hub.position)
    events = [quote(10 + i, ("BTC-USD", "ETH-USD")[i % 2]) for i in range(10)]
    await publish(server, *events, trade(30, "ETH-USD"), book(31))
    # A replay from inside the buffer: only the allowed topics (read up to a live
    # message published after it).
    ws = await WsClient.connect(server.port, bearer(token))
    await ws.messages()
    await ws.subscribe("quote.*", "book.*", position=start)
    await publish(server, quote(40), book(41))
    end = server.hub.snapshot("quote.BTC-USD").offset  # the quote's (venue topics follow it)
    got, other = await collect_until(ws, end)
    assert {m.topic for m in got} == {"quote.BTC-USD"}
    assert other[0] == Error(CLOSE_FORBIDDEN, "not entitled to: book.*")
    assert server.context.stats.resumes == 1
    await ws.close()
    # A reset (another epoch): its snapshots only of allowed topics.
    ws = await WsClient.connect(server.port, bearer(token))
    await ws.messages()
    await ws.subscribe("quote.*", "trade.*", position="99-1")
    frame = await ws.messages()
    assert type(frame[0]).__name__ == "Reset"
    assert {m.topic for m in data(frame)} == {"quote.BTC-USD", "trade.ETH-USD"}
    await ws.close()
    # SSE resume with Last-Event-ID: the same rule.
    sse = await SseStream.connect(
        server.port, "topics=quote.*,book.*", bearer(token) | {"Last-Event-ID": start}
    )
    await publish(server, quote(50), book(51))
    end = server.hub.snapshot("quote.BTC-USD").offset
    topics: set[str] = set()
    while True:
        event = await sse.event()
        if event.get("event") in ("delta", "snapshot"):
            message = json.loads(event["data"])
            topics.add(message["topic"])
            if message["offset"] >= end:
                break
    assert topics == {"quote.BTC-USD"}
    await sse.close()


async def test_metrics_count_refusals_without_naming_anyone(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    bad = hs_token(claims(exp=NOW - 1))
    response, stream = await request(server.port, "/v1/ws", bearer(bad), read_body=True)
    await stream.aclose()
    ws = await WsClient.connect(server.port, bearer(GOOD))
    await ws.messages()
    response, stream = await request(server.port, "/metrics", {}, read_body=True)
    await stream.aclose()
    text = response.body.decode()
    assert "ticker_auth_refused_total 1.0" in text
    assert "ticker_auth_streams 1.0" in text
    assert "alice" not in text and "t-1" not in text and GOOD not in text
    await ws.close()


async def test_entitlements_name_venue_topics_on_a_live_stream(nursery: trio.Nursery) -> None:
    """A token allowed one venue's books and every venue's BTC-USD quotes: `book@*.*`
    is narrowed to that venue, consolidated patterns are forbidden, and live messages of
    other venues never arrive."""
    server = await start_auth_server(nursery)
    cbx_book = BookUpdate("cbx", "BTC-USD", 1, ((99, 1),), (), True)
    await publish(server, cbx_book, book(2), quote(3), quote(4, "ETH-USD"))
    token = hs_token(claims(topics=["book@cbx.*", "quote@*.BTC-USD"]))
    ws = await WsClient.connect(server.port, bearer(token))
    await ws.messages()  # hello
    await ws.subscribe("book@*.*", "quote@*.*", "book.*")
    replies = await ws.messages() + await ws.messages()
    errors = [m for m in replies if isinstance(m, Error)]
    assert errors == [Error(CLOSE_FORBIDDEN, "not entitled to: book.*")]
    assert {m.topic for m in data(replies)} == {"book@cbx.BTC-USD", "quote@cbx.BTC-USD"}
    # Live: itx's book and ETH-USD's quotes are outside the grants.
    await publish(
        server, book(5), quote(6, "ETH-USD"), BookUpdate("cbx", "BTC-USD", 7, ((98, 2),), (), False)
    )
    seen: set[str] = set()
    while "book@cbx.BTC-USD" not in seen:
        seen |= {m.topic for m in data(await ws.messages())}
    assert seen == {"book@cbx.BTC-USD"}
    await ws.close()
