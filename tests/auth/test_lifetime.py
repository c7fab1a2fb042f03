"""A token's life on an open stream: expiry ends it, a refresh in flight keeps it (and
narrows it), a revocation ends it within a poll of the deny list or on SIGHUP."""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from ticker.core.messages import DataMessage, Error
from ticker.errors import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from ticker.server.process import ServerHandle

from .keyring import KeyPair, claims, ec_pair, hs_token, rsa_pair, signed, write_jwks
from .servers import (
    AUTH_CONFIG,
    SseStream,
    WsClient,
    bearer,
    gate_of,
    publish,
    quote,
    request,
    start_auth_server,
    until,
)


def token_for(server: ServerHandle, lifetime_s: float, **overrides: object) -> str:
    """A token that expires `lifetime_s` from now by the server's wall clock."""
    return hs_token(claims(exp=gate_of(server).clock() + lifetime_s, **overrides))


async def close_of(ws: WsClient) -> tuple[int, str]:
    """Read to the close frame: its code and reason."""
    with pytest.raises(ConnectionAbortedError) as closed:
        while True:
            await ws.messages()
    code, reason = closed.value.args
    return code, reason


async def sse_end(sse: SseStream) -> dict[str, str]:
    while True:
        event = await sse.event()
        if event.get("event") == "end":
            return dict(json.loads(event["data"]))


async def test_at_expiry_ws_closes_4401_and_sse_ends_token_expired(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1))
    token = token_for(server, 0.5)
    ws = await WsClient.connect(server.port, bearer(token))
    await ws.messages()
    await ws.subscribe("quote.*")
    sse = await SseStream.connect(server.port, "topics=quote.*", bearer(token))
    code, reason = await close_of(ws)
    assert code == CLOSE_UNAUTHORIZED and reason.startswith("token expired; last=7-")
    assert (await sse_end(sse))["reason"] == "token_expired"
    await until(lambda: server.context.stats.ends["token_expired"] == 2)
    assert not gate_of(server).live
    await ws.close()
    await sse.close()


async def test_a_refresh_in_flight_keeps_the_stream(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1))
    ws = await WsClient.connect(server.port, bearer(token_for(server, 2.0)))
    await ws.messages()
    await ws.subscribe("quote.*")
    await ws.messages()  # the snapshot
    await ws.refresh(token_for(server, 3600))
    await trio.sleep(2.5)  # past the first token's expiry
    await publish(server, quote(2))
    (update,) = [m for m in await ws.messages() if isinstance(m, DataMessage)]
    assert update.topic == "quote.BTC-USD"
    assert server.context.stats.ends["token_expired"] == 0
    await ws.close()


async def test_an_anonymous_stream_that_logs_in_then_expires(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery, replace(AUTH_CONFIG, auth="optional"))
    ws = await WsClient.connect(server.port, {})
    await ws.messages()
    await ws.refresh(token_for(server, 0.3))
    code, _ = await close_of(ws)
    assert code == CLOSE_UNAUTHORIZED
    await ws.close()


async def test_a_narrower_refresh_unsubscribes_what_is_no_longer_allowed(
    nursery: trio.Nursery,
) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1), quote(2, "ETH-USD"))
    ws = await WsClient.connect(server.port, bearer(token_for(server, 3600)))
    await ws.messages()
    await ws.subscribe("quote.*")
    await ws.messages()
    await ws.refresh(token_for(server, 3600, topics=["quote.ETH-USD"]))
    assert await ws.messages() == [Error(CLOSE_FORBIDDEN, "no longer entitled to: quote.*")]
    # What it still allows comes back as a snapshot, then only that topic is live.
    (snapshot,) = [m for m in await ws.messages() if isinstance(m, DataMessage)]
    assert snapshot.topic == "quote.ETH-USD" and snapshot.snapshot
    await publish(server, quote(3), quote(4, "ETH-USD"))
    (update,) = [m for m in await ws.messages() if isinstance(m, DataMessage)]
    assert update.topic == "quote.ETH-USD"
    await ws.close()


async def test_a_bad_refresh_is_an_error_and_the_stream_goes_on(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery)
    await publish(server, quote(1))
    ws = await WsClient.connect(server.port, bearer(token_for(server, 3600)))
    await ws.messages()
    await ws.subscribe("quote.*")
    await ws.messages()
    await ws.refresh("not.a.token")
    assert await ws.messages() == [Error(CLOSE_UNAUTHORIZED, "the token is not a JWT")]
    await ws.refresh(token_for(server, 3600, sub="mallory"))
    assert await ws.messages() == [
        Error(CLOSE_UNAUTHORIZED, "a refreshed token must be for the same subject")
    ]
    await publish(server, quote(2))
    assert [m.topic for m in await ws.messages() if isinstance(m, DataMessage)] == ["quote.BTC-USD"]
    await ws.close()


async def test_refresh_with_auth_off_is_an_error(nursery: trio.Nursery) -> None:
    server = await start_auth_server(nursery, replace(AUTH_CONFIG, auth="off"))
    ws = await WsClient.connect(server.port, {})
    await ws.messages()
    await ws.refresh("x")
    assert await ws.messages() == [
        Error(CLOSE_UNAUTHORIZED, "authentication is off on this server")
    ]
    await ws.close()


async def test_revocation_ends_live_streams_and_refuses_new_ones(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    deny = tmp_path / "deny"
    deny.write_text("jti:old\n")
    config = replace(AUTH_CONFIG, auth_deny_file=str(deny), auth_deny_poll_s=0.05)
    server = await start_auth_server(nursery, config)
    await publish(server, quote(1))
    token = token_for(server, 3600)
    other = token_for(server, 3600, sub="bob", jti="t-9")
    ws = await WsClient.connect(server.port, bearer(token))
    await ws.messages()
    await ws.subscribe("quote.*")
    sse = await SseStream.connect(server.port, "topics=quote.*", bearer(token))
    bob = await WsClient.connect(server.port, bearer(other))
    await bob.messages()
    deny.write_text("jti:old\njti:t-1\n")
    code, reason = await close_of(ws)
    assert code == CLOSE_FORBIDDEN and reason.startswith("token revoked")
    assert (await sse_end(sse))["reason"] == "revoked"
    assert gate_of(server).revoked == 2
    response, stream = await request(server.port, "/v1/ws", bearer(token), read_body=True)
    await stream.aclose()
    assert response.status == 401 and b"revoked" in response.body
    # The other subject is untouched; a revoked subject ends whatever its jti.
    await publish(server, quote(2))
    await bob.subscribe("quote.*")
    assert [m.topic for m in await bob.messages() if isinstance(m, DataMessage)]
    deny.write_text("sub:bob\n")
    assert (await close_of(bob))[0] == CLOSE_FORBIDDEN
    for client in (ws, sse, bob):
        await client.close()


async def test_sighup_reloads_an_unchanged_looking_deny_list(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    deny = tmp_path / "deny"
    deny.write_text("jti:t-2\n")
    before = os.stat(deny)
    config = replace(AUTH_CONFIG, auth_deny_file=str(deny), auth_deny_poll_s=0.05)
    server = await start_auth_server(nursery, config)
    ws = await WsClient.connect(server.port, bearer(token_for(server, 3600)))
    await ws.messages()
    # Same size, same inode, same mtime: only SIGHUP makes the server read it again.
    with deny.open("r+") as handle:
        handle.write("jti:t-1\n")
    os.utime(deny, ns=(before.st_atime_ns, before.st_mtime_ns))
    await trio.sleep(0.2)  # several polls: none sees a change
    assert gate_of(server).live
    os.kill(os.getpid(), signal.SIGHUP)
    assert (await close_of(ws))[0] == CLOSE_FORBIDDEN
    await ws.close()


async def test_a_broken_deny_list_keeps_the_previous_one(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deny = tmp_path / "deny"
    deny.write_text("sub:mallory\n")
    config = replace(AUTH_CONFIG, auth_deny_file=str(deny), auth_deny_poll_s=0.05)
    server = await start_auth_server(nursery, config)
    deny.write_text("sub:mallory\nthis is not an entry\n")
    await until(lambda: "deny list not reloaded" in caplog.text)
    assert gate_of(server).deny.subjects == {"mallory"}
    assert "this is not an entry" not in caplog.text


async def test_a_new_key_in_the_jwks_file_is_taken_without_a_restart(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rotation: a token of a key added to the file is accepted within a poll; a file
    that does not load keeps the keys in force."""
    caplog.set_level(logging.INFO, "ticker.server")
    old, new = rsa_pair("2026-11"), ec_pair("2026-12")
    jwks = tmp_path / "keys.jwks"
    config = replace(
        AUTH_CONFIG, auth_secret="", auth_jwks_file=write_jwks(jwks, old), auth_deny_poll_s=0.05
    )
    server = await start_auth_server(nursery, config)
    await publish(server, quote(1))

    async def status(pair: KeyPair) -> int:
        token = signed(pair, claims(exp=gate_of(server).clock() + 3600))
        response, stream = await request(
            server.port, "/v1/snapshot?topics=quote.*", bearer(token), read_body=True
        )
        await stream.aclose()
        return response.status

    assert await status(old) == 200
    assert await status(new) == 401
    write_jwks(jwks, old, new)
    await until(lambda: "verification keys reloaded" in caplog.text)
    assert await status(new) == 200
    jwks.write_text("{not json")
    await until(lambda: "verification keys not reloaded" in caplog.text)
    assert await status(new) == 200 and await status(old) == 200
