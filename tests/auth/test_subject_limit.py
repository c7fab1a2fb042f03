"""Streams per subject: one token's `sub` holds at most `max_connections_per_subject`
streams from any address (loopback, exempt from the per-address limit, included)."""

from __future__ import annotations

from dataclasses import replace

import trio

from .keyring import claims, hs_token
from .servers import (
    AUTH_CONFIG,
    SseStream,
    WsClient,
    bearer,
    publish,
    quote,
    request,
    start_auth_server,
    until,
    upgrade_headers,
)


async def test_a_subject_over_its_streams_gets_429_before_the_upgrade(
    nursery: trio.Nursery,
) -> None:
    server = await start_auth_server(nursery, replace(AUTH_CONFIG, max_connections_per_subject=2))
    await publish(server, quote(1))
    alice = bearer(hs_token(claims()))
    first = await WsClient.connect(server.port, alice)
    second = await SseStream.connect(server.port, "topics=quote.*", alice)
    response, stream = await request(
        server.port, "/v1/ws", upgrade_headers() | alice, read_body=True
    )
    await stream.aclose()
    assert response.status == 429
    assert b"too many open streams (2 at most)" in response.body
    assert b"\x82" not in response.body  # no WebSocket frame: nothing was upgraded
    stats = server.context.stats
    assert stats.limited["connections_per_subject"] == 1
    # Another subject is not affected; a stream alice closes frees a place for her.
    bob = await WsClient.connect(server.port, bearer(hs_token(claims(sub="bob", jti="t-2"))))
    await first.close()
    front = server.context.front_door
    assert front is not None
    await until(lambda: front.subjects.held("alice") == 1)
    third = await WsClient.connect(server.port, alice)
    for client in (second, bob, third):
        await client.close()
    await until(lambda: len(front.subjects) == 0)


async def test_a_bad_token_is_refused_by_its_door_not_counted_as_a_subject(
    nursery: trio.Nursery,
) -> None:
    server = await start_auth_server(nursery, replace(AUTH_CONFIG, max_connections_per_subject=1))
    expired = bearer(hs_token(claims(exp=1)))
    for _ in range(3):
        response, stream = await request(
            server.port, "/v1/ws", upgrade_headers() | expired, read_body=True
        )
        await stream.aclose()
        assert response.status == 401
    front = server.context.front_door
    assert front is not None
    assert len(front.subjects) == 0
    assert server.context.stats.limited["connections_per_subject"] == 0
