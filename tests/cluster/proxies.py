"""TCP proxies in front of a test's redis-server, for the failures a client must survive:
a connection lost mid-command, a partition that keeps connections open.

Only for tests: each listens on a free 127.0.0.1 port and pumps bytes both ways; a
subclass decides, chunk by chunk, what passes (`verdict`).
"""

from __future__ import annotations

import contextlib
import enum

import trio


class Verdict(enum.Enum):
    PASS = "pass"
    SWALLOW = "swallow"
    """Dropped, the connections kept open (a partition, as the client sees one)."""
    CLOSE = "close"
    """Both sides of this connection closed, the chunk never sent."""


class RedisProxy:
    """Passes everything; subclasses override `verdict`."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = 0

    def verdict(self, upstream: bool) -> Verdict:
        """What becomes of a chunk going to Redis (`upstream`) or coming back."""
        return Verdict.PASS

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        redis = await trio.open_tcp_stream("127.0.0.1", self.redis_port)
        async with client, redis, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, redis, client, False)
            await self._pump(client, redis, True)
            nursery.cancel_scope.cancel()

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, up: bool) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await source.receive_some(65536):
                verdict = self.verdict(up)
                if verdict is Verdict.CLOSE:
                    return
                if verdict is Verdict.PASS:
                    await sink.send_all(data)


class DropProxy(RedisProxy):
    """When armed, closes the next connection that sends a command without passing the
    command on: a connection lost mid-command."""

    def __init__(self, redis_port: int) -> None:
        super().__init__(redis_port)
        self.armed = False
        self.dropped = 0

    def verdict(self, upstream: bool) -> Verdict:
        if upstream and self.armed:
            self.armed = False
            self.dropped += 1
            return Verdict.CLOSE  # both sides close: the command never reached Redis
        return Verdict.PASS


class BlackholeProxy(RedisProxy):
    """While `blackhole` is set, swallows every byte both ways while keeping its
    connections open: a network partition, as the client sees one (no reset)."""

    def __init__(self, redis_port: int) -> None:
        super().__init__(redis_port)
        self.blackhole = False

    def verdict(self, upstream: bool) -> Verdict:
        return Verdict.SWALLOW if self.blackhole else Verdict.PASS
