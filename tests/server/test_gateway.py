"""The front hands non-streaming requests to hypercorn on the same port, plain and TLS.

A small real quart-trio application stands in for `ticker.app` so these tests pin the
hand-off itself: bytes already read are replayed, bodies arrive whole, every response
closes its connection, and TLS (certificates from trustme) carries https, SSE and wss
on one port, with a trio-websocket client verifying the chain.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio
import trustme
from quart import request
from quart_trio import QuartTrio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.server.conftest import TEST_CONFIG
from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import DataMessage, Hello, Subscribe
from ticker.errors import ConfigError
from ticker.model.events import Quote
from ticker.server.context import ServerContext
from ticker.server.process import ServerHandle, serve


def small_app(context: ServerContext) -> QuartTrio:
    app = QuartTrio("gateway-test")

    @app.route("/hello")
    async def hello() -> dict[str, object]:
        return {"epoch": context.hub.epoch, "ready": context.ready}

    @app.route("/big")
    async def big() -> bytes:
        return b"x" * 4_000_000

    @app.route("/echo", methods=["POST"])
    async def echo() -> bytes:
        data = await request.get_data(as_text=False)
        assert isinstance(data, bytes)
        return data

    return app


async def start(nursery: trio.Nursery, config: Config = TEST_CONFIG) -> ServerHandle:
    handle: ServerHandle = await nursery.start(
        partial(serve, replace(config, port=0), run_venues=False, epoch=7, app=small_app)
    )
    return handle


async def binary(ws: WebSocketConnection) -> bytes:
    message = await ws.get_message()
    assert isinstance(message, bytes)
    return message


async def http_request(
    port: int, raw: bytes, *, ssl_context: ssl.SSLContext | None = None
) -> bytes:
    """Send `raw`, read until the server closes (every gateway response closes)."""
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_hostname="localhost")
    async with stream:
        await stream.send_all(raw)
        response = bytearray()
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                response += chunk
    return bytes(response)


async def test_app_paths_are_served_by_hypercorn_on_the_stream_port(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery)
    response = await http_request(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"epoch": 7, "ready": False}


async def test_a_body_sent_with_the_head_reaches_the_app_whole(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    body = bytes(range(256)) * 300  # 76.8 KB: part with the head, the rest later
    raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    response = await http_request(server.port, raw)
    assert response.startswith(b"HTTP/1.1 200")
    assert response.partition(b"\r\n\r\n")[2] == body


async def test_an_unknown_path_gets_the_apps_404(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    response = await http_request(server.port, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 404")


async def test_a_stream_request_with_a_body_is_refused(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    raw = b"GET /v1/sse?topics=quote.* HTTP/1.1\r\nHost: t\r\n\r\nextra"
    response = await http_request(server.port, raw)
    assert response.startswith(b"HTTP/1.1 400")
    assert server.context.stats.bad_requests == 1


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(CA file, server chain file, key file) for "localhost" and 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    ca_file, chain_file, key_file = folder / "ca.pem", folder / "chain.pem", folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain_file), append=True)
    yield ca_file, chain_file, key_file


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def test_tls_serves_https_sse_and_wss_on_one_port(
    nursery: trio.Nursery, certificates: tuple[Path, Path, Path]
) -> None:
    ca_file, chain_file, key_file = certificates
    config = replace(TEST_CONFIG, certfile=str(chain_file), keyfile=str(key_file))
    server = await start(nursery, config)
    verify = client_context(ca_file)

    response = await http_request(
        server.port, b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", ssl_context=verify
    )
    assert response.startswith(b"HTTP/1.1 200")

    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 200, 1))
    url = f"wss://localhost:{server.port}/v1/ws"
    async with open_websocket_url(url, ssl_context=verify, subprotocols=["ticker.v1"]) as ws:
        hello = decode_frame(await binary(ws))
        assert isinstance(hello[0], Hello)
        await ws.send_message(encode_client(Subscribe(("quote.BTC-USD",), None)))
        snapshot = decode_frame(await binary(ws))
        assert isinstance(snapshot[0], DataMessage) and snapshot[0].snapshot
        # Enough deltas that a write is larger than one TLS record.
        for i in range(1, 400):
            await server.publish(Quote("cbx", "BTC-USD", i, 100 + i, 1, 200 + i, 1))
        seen = 0
        with trio.fail_after(20):
            while seen < 399:
                seen += sum(isinstance(m, DataMessage) for m in decode_frame(await binary(ws)))
        assert seen == 399

    stream = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", server.port), verify, server_hostname="localhost"
    )
    async with stream:
        await stream.send_all(b"GET /v1/sse?topics=quote.* HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = bytearray()
        with trio.fail_after(10):
            while b"event: snapshot" not in received:
                received += await stream.receive_some(65536)
        assert received.startswith(b"HTTP/1.1 200")


async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    nursery: trio.Nursery, certificates: tuple[Path, Path, Path]
) -> None:
    _, chain_file, key_file = certificates
    config = replace(TEST_CONFIG, certfile=str(chain_file), keyfile=str(key_file))
    server = await start(nursery, config)
    untrusting = ssl.create_default_context()  # the system CAs, not ours
    stream = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", server.port),
        untrusting,
        server_hostname="localhost",
    )
    with pytest.raises(trio.BrokenResourceError):
        await stream.do_handshake()
    await stream.aclose()
    with trio.fail_after(10):
        while server.context.stats.tls_failures == 0:  # noqa: ASYNC110 (a counter)
            await trio.sleep(0.01)
    # The server stays healthy for the next (plain-text-speaking) client too.
    response = await http_request(server.port, b"GET /hello HTTP/1.1\r\n\r\n")
    assert response == b""  # TLS-only port: a plain request is dropped, not answered


async def test_a_bad_certificate_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = replace(TEST_CONFIG, certfile=str(tmp_path / "none.pem"))
    with pytest.raises(ConfigError, match="certfile"):
        await serve(missing, run_venues=False, app=small_app)


async def test_application_connections_are_bounded(nursery: trio.Nursery) -> None:
    server = await start(nursery, replace(TEST_CONFIG, max_http_connections=1))
    held = await trio.open_tcp_stream("127.0.0.1", server.port)
    # A request whose body never comes keeps its connection in the application.
    await held.send_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
    with trio.fail_after(10):
        while server.context.stats.connections_open["http"] == 0:  # noqa: ASYNC110
            await trio.sleep(0.01)
    response = await http_request(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 503")
    await held.send_all(b"0123456789")
    assert (await held.receive_some(65536)).startswith(b"HTTP/1.1 200")
    await held.aclose()
    with trio.fail_after(10):
        while server.context.stats.connections_open["http"]:  # noqa: ASYNC110
            await trio.sleep(0.01)
    response = await http_request(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200")


async def test_a_bug_serving_one_connection_costs_that_connection_only(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error is logged with its traceback and counted; the server stays."""
    from ticker.server import listener

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(listener.STREAMS, "/v1/sse", broken)
    server = await start(nursery)
    response = await http_request(
        server.port, b"GET /v1/sse?topics=quote.* HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert response == b""
    assert server.context.stats.internal_errors == 1
    response = await http_request(server.port, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200")


async def test_an_app_client_that_never_reads_is_cut_at_the_write_timeout(
    nursery: trio.Nursery,
) -> None:
    """hypercorn writes in a shielded scope; our stream's own deadline frees the slot."""
    config = replace(TEST_CONFIG, write_timeout_s=0.5, send_buffer_bytes=4096)
    server = await start(nursery, config)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", server.port))
    await sock.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    stats = server.context.stats
    with trio.fail_after(20):
        while stats.connections_total["http"] == 0 or stats.connections_open["http"]:  # noqa: ASYNC110
            await trio.sleep(0.05)
    sock.close()


async def test_protocol_upgrades_other_than_websocket_are_refused(nursery: trio.Nursery) -> None:
    server = await start(nursery)
    request = (
        b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    response = await http_request(server.port, request)
    assert response.startswith(b"HTTP/1.1 400")
    assert b"upgrades are served only" in response
    assert server.context.stats.connections_total["http"] == 0
