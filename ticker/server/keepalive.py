"""Reading a WebSocket peer that must prove it is alive: data, or a ping and its answer.

Shared by the subscriber (`/v1/ws`) and publisher (`/v1/publish`) sessions. After
`ping_interval_s` without input the peer is pinged; if nothing arrives within
`ping_timeout_s` after that, the connection ends with `PING_TIMEOUT`. Any input counts
as an answer. This module owns the timing only; how a ping is written is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import trio

from ticker.server.stats import EndReason
from ticker.wire.transport import Transport

RECV_BYTES = 65536


class KeepaliveReader:
    """Reads one connection, pinging it when it goes quiet."""

    __slots__ = ("_ping_sent_at", "interval_s", "sock", "timeout_s")

    def __init__(self, sock: Transport, interval_s: float, timeout_s: float) -> None:
        self.sock = sock
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._ping_sent_at: float | None = None

    async def receive(self, send_ping: Callable[[], Awaitable[None]]) -> bytes | EndReason:
        """The next bytes from the peer, or why the connection ended.

        `send_ping` writes a ping frame; it is awaited when the peer has been quiet for
        the ping interval.
        """
        while True:
            if self._ping_sent_at is None:
                timeout = self.interval_s
            else:
                timeout = self._ping_sent_at + self.timeout_s - time.monotonic()
            with trio.move_on_after(max(timeout, 0)) as quiet:
                await trio.lowlevel.wait_readable(self.sock)
            if quiet.cancelled_caught:
                if self._ping_sent_at is not None:
                    return EndReason.PING_TIMEOUT
                self._ping_sent_at = time.monotonic()
                await send_ping()
                continue
            try:
                data = self.sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return EndReason.PEER_RESET
            if not data:
                return EndReason.CLIENT_CLOSED
            self._ping_sent_at = None  # any input proves the peer is alive
            return data
