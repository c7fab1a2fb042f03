"""What a careless or hostile peer gets at the front door: exact HTTP and WebSocket
refusals (never an internal error), bounded echoes of its input, and a handshake whose
first frame shares the request's packet."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from types import SimpleNamespace
from typing import Any, cast

import msgpack
import pytest
import trio
import trio.testing

from tests.server.conftest import RawWebSocket, until
from tests.server.test_gateway import start as start_with_app
from ticker.core.codec import encode_client
from ticker.core.messages import DataMessage, Error, Heartbeat, Hello, Subscribe
from ticker.errors import MAX_ERROR_CHARS
from ticker.model.events import Quote
from ticker.server import listener
from ticker.server.context import ServerContext
from ticker.server.process import ServerHandle
from ticker.server.stats import ServerStats

UPGRADE = (
    "GET /v1/ws HTTP/{version}\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: ticker.v1\r\n\r\n"
)
GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request`; everything the server answers until it closes."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(request)
        response = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                response += chunk
    return response


def masked(opcode: int, payload: bytes) -> bytes:
    """One final client frame with an all-zero mask (the payload goes as is)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


@pytest.mark.parametrize(
    "key",
    [
        "\xe9" * 24,  # not ASCII: used to raise inside the handshake
        "bm90IDE2IGJ5dGVz",  # base64, but not of 16 bytes
        "!!!!!!!!!!!!!!!!!!!!!!==",  # not base64
    ],
)
async def test_a_bad_sec_websocket_key_is_a_400_not_an_internal_error(
    server: ServerHandle, key: str
) -> None:
    request = UPGRADE.format(version="1.1", key=key).encode("latin-1")
    response = await exchange(server.port, request)
    assert response.startswith(b"HTTP/1.1 400"), response
    assert b"Sec-WebSocket-Key" in response
    stats = server.context.stats
    assert stats.internal_errors == 0 and stats.bad_requests == 1


async def test_a_websocket_upgrade_over_http_1_0_is_refused(server: ServerHandle) -> None:
    response = await exchange(server.port, UPGRADE.format(version="1.0", key=GOOD_KEY).encode())
    assert response.startswith(b"HTTP/1.1 400"), response
    assert b"HTTP/1.1" in response.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/v1/sse?topics=quote.*", "/v1/ws", "/metrics"])
async def test_an_http_2_0_request_line_gets_505(server: ServerHandle, path: str) -> None:
    response = await exchange(server.port, f"GET {path} HTTP/2.0\r\nHost: t\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.1 505 HTTP Version Not Supported"), response


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_close_codes_rfc6455_forbids_on_the_wire_close_with_1002(
    server: ServerHandle, code: int
) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()  # hello
    await client.stream.send_all(masked(0x8, code.to_bytes(2, "big")))
    opcode, payload = await client.frame()
    assert opcode == 0x8
    assert int.from_bytes(payload[:2], "big") == 1002
    await client.close()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999])
async def test_allowed_close_codes_are_answered_with_1000(server: ServerHandle, code: int) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.stream.send_all(masked(0x8, code.to_bytes(2, "big") + b"bye"))
    opcode, payload = await client.frame()
    assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1000)
    await client.close()


async def test_a_first_frame_in_the_same_packet_as_the_handshake_is_read(
    server: ServerHandle,
) -> None:
    await server.publish(Quote("cbx", "BTC-USD", 0, 100, 1, 10_000, 1))
    await until(lambda: server.context.stats.ingest_events >= 1)
    command = encode_client(Subscribe(("quote.BTC-USD",)))
    request = UPGRADE.format(version="1.1", key=GOOD_KEY).encode() + masked(0x2, command)
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", server.port))
    stream = trio.SocketStream(sock)
    await stream.send_all(request)  # one write: the frame follows the head at once
    client = RawWebSocket(stream)
    head = await client._read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    (hello,) = await client.messages()
    assert isinstance(hello, Hello)
    snapshot, *rest = await client.messages()  # the burst ends with its heartbeat
    assert isinstance(snapshot, DataMessage) and snapshot.topic == "quote.BTC-USD"
    assert all(isinstance(m, Heartbeat) for m in rest)
    assert server.context.stats.bad_requests == 0
    await client.close()


async def test_sse_over_http_1_0_is_served_without_chunks_until_the_connection_closes(
    server: ServerHandle,
) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(b"GET /v1/sse?topics=quote.BTC-USD HTTP/1.0\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while b"event: snapshot" not in received:
                received += await stream.receive_some()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"Connection: close" in head
    # The body is the events themselves: no chunk-size lines.
    assert body.startswith(b"retry: 1000\n\nevent: hello\n"), body


async def test_sse_over_http_1_1_is_still_chunked(server: ServerHandle) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(b"GET /v1/sse?topics=quote.BTC-USD HTTP/1.1\r\nHost: t\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while b"event: hello" not in received:
                received += await stream.receive_some()
    head = received.partition(b"\r\n\r\n")[0]
    assert b"Transfer-Encoding: chunked" in head


async def test_an_oversized_query_on_an_app_path_gets_the_apps_json_error(
    nursery: trio.Nursery,
) -> None:
    server = await start_with_app(nursery)
    query = "topics=" + ",".join(["quote.BTC-USD"] * 400)  # > 4 KiB
    response = await exchange(
        server.port, f"GET /v1/snapshot?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"Content-Type: application/json" in head
    document = json.loads(body)
    assert document["status"] == 400 and "query string" in document["error"]
    # A streaming path keeps its documented plain-text errors.
    response = await exchange(
        server.port, f"GET /v1/sse?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    )
    assert response.startswith(b"HTTP/1.1 400") and b"text/plain" in response


async def test_errors_quote_at_most_a_bounded_part_of_the_input(server: ServerHandle) -> None:
    client = await RawWebSocket.connect(server.port)
    await client.messages()
    await client.send_binary(msgpack.packb(["x" * 60_000, []]))
    (error,) = await client.messages()
    assert isinstance(error, Error) and "unknown command" in error.message
    assert len(error.message) <= MAX_ERROR_CHARS
    await client.close()
    response = await exchange(
        server.port,
        f"GET /v1/sse?topics=quote.*&max_rate={'9' * 4000} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
    )
    assert response.startswith(b"HTTP/1.1 400")
    assert len(response.partition(b"\r\n\r\n")[2]) <= MAX_ERROR_CHARS + 1


class ExhaustedListener:
    """A listening socket at the fd limit: always readable, every accept fails."""

    def __init__(self, readable: socket.socket) -> None:
        self._readable = readable
        self.accepts = 0

    def fileno(self) -> int:
        return self._readable.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        self.accepts += 1
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


async def test_accept_failures_at_the_fd_limit_are_counted_and_logged_at_most_once_per_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = socket.socketpair()
    theirs.send(b"x")  # `ours` stays readable, as a listener with a backlog does
    fake = ExhaustedListener(ours)
    stats = ServerStats()
    context = cast(ServerContext, SimpleNamespace(config=None, stats=stats))
    caplog.set_level(logging.WARNING, logger="ticker.server")
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(60):
            await listener._accept_forever(cast(socket.socket, fake), context, None, nursery)
    ours.close()
    theirs.close()
    lines = [r for r in caplog.records if "accept failed" in r.getMessage()]
    # One attempt per pause (0.1 s) for 60 s, every one counted; one line per 10 s.
    assert stats.accept_errors == fake.accepts >= 500
    assert len(lines) <= 60 / listener.ACCEPT_LOG_INTERVAL_S + 1
    assert "failure(s) since the last such line" in lines[-1].getMessage()


async def test_a_malformed_request_line_still_gets_plain_text(server: ServerHandle) -> None:
    response = await exchange(server.port, b"NOT HTTP\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400") and b"text/plain" in response
