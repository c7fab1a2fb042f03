"""TlsSocket against a real TLS client over a socket pair: records that arrive with the
handshake's end are read, and a write the caller gives up does not eat a byte of the
next one."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import pytest
import trio
import trustme

from ticker.wire.tls import TlsSocket, server_context


@pytest.fixture(scope="module")
def contexts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    folder = tmp_path_factory.mktemp("tls-unit")
    chain, key = folder / "chain.pem", folder / "key.pem"
    cert.private_key_pem.write_to_path(str(key))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    yield server_context(str(chain), str(key)), client


class Client:
    """A blocking TLS client over one end of a socket pair, driven from a thread."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def handshake(self, *, then_send: bytes = b"") -> None:
        """Handshake; `then_send` goes out in the same write as the client's Finished."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self.outgoing.pending:
                    self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        if then_send:
            self.tls.write(then_send)
        self.sock.sendall(self.outgoing.read())

    def read_available(self) -> bytes:
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                break
            self.incoming.write(data)
        out = bytearray()
        while True:
            try:
                out += self.tls.read(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return bytes(out)


async def connected(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], then_send: bytes = b"", buffer: int = 0
) -> tuple[TlsSocket, Client, socket.socket, socket.socket]:
    mine, theirs = socket.socketpair()
    if buffer:
        for end in (mine, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    mine.setblocking(False)
    server = TlsSocket(mine, contexts[0])
    client = Client(theirs, contexts[1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, lambda: client.handshake(then_send=then_send))
        with trio.fail_after(10):
            await server.handshake()
    return server, client, mine, theirs


async def test_a_request_sent_with_the_clients_finished_is_read(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    server, _client, mine, theirs = await connected(contexts, then_send=request)
    with trio.fail_after(5):
        while True:
            try:
                assert server.recv(4096) == request
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(mine)
    mine.close()
    theirs.close()


async def test_a_write_given_up_does_not_eat_a_byte_of_the_next(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server, client, mine, theirs = await connected(contexts, buffer=4096)
    big = b"A" * 200_000
    taken = server.send(big)
    # The kernel could not take it all: ciphertext waits, one byte is reported unsent.
    assert taken == len(big) - 1
    received = bytearray()
    # The caller gives that write up (say, cancelled) and sends a close frame
    # instead, retrying that one as callers do; the peer reads everything.
    close = memoryview(b"\x88\x02\x0f\xa1")
    for _ in range(1000):
        received += client.read_available()
        with contextlib.suppress(BlockingIOError):
            close = close[server.send(close) :]
        if not close:
            break
        await trio.sleep(0.001)
    received += client.read_available()
    assert bytes(received) == big + b"\x88\x02\x0f\xa1"
    mine.close()
    theirs.close()
