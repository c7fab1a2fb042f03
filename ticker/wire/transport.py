"""`Transport`: what the streaming path needs of a connection (a socket, or TLS over one).

Both `socket.socket` and `ticker.wire.tls.TlsSocket` satisfy it. Non-blocking:
`send`/`recv` raise `BlockingIOError` when they would block, and callers wait with
`trio.lowlevel.wait_readable/wait_writable(transport)`.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """A non-blocking byte connection the streaming code reads and writes directly."""

    def fileno(self) -> int: ...

    def send(self, data: bytes | memoryview, /) -> int: ...

    def recv(self, max_bytes: int, /) -> bytes: ...

    def close(self) -> None: ...


def send_small(transport: Transport, data: bytes) -> None:
    """Write a small message (a handshake response) into a fresh connection's buffer.

    Raises:
        OSError: the connection did not take all of it at once (it is unusable).
    """
    if transport.send(data) != len(data):
        raise ConnectionError("a fresh connection did not take a small write at once")
