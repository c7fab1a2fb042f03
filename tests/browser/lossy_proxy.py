"""A proxy in front of the SSE endpoint that loses one event, as a faulty middlebox would.

The server never skips a message, so to see the dashboard catch a gap something between
the two must lose one. The proxy passes every connection through, re-framing the chunked
body event by event; on its first connection it drops the `drop_nth` delta event. Bounded:
request heads up to 16 KiB, chunks as the server sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import trio

MAX_HEAD_BYTES = 16 * 1024
RECEIVE_BYTES = 65536


@dataclass
class DropPlan:
    """Drop the `drop_nth` delta on the first connection; `dropped` records what went."""

    drop_nth: int
    connections: int = 0
    deltas_seen: int = 0
    dropped: list[str] = field(default_factory=list)


class _Reader:
    """Buffered reads from one stream, bounded by what the caller asks for."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self) -> None:
        data = await self.stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise EOFError
        self.buffer += data

    async def until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise ValueError("line or head too long")
            await self._fill()
        end = self.buffer.index(marker) + len(marker)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


async def serve_lossy_proxy(
    upstream_port: int,
    plan: DropPlan,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on a free port of 127.0.0.1 and proxy every connection to `upstream_port`."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port: int = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(trio.serve_listeners, partial(_proxy, upstream_port, plan), listeners)
        )
        task_status.started(port)


async def _proxy(upstream_port: int, plan: DropPlan, client: trio.SocketStream) -> None:
    plan.connections += 1
    lossy = plan.connections == 1
    async with client:
        try:
            head = await _Reader(client).until(b"\r\n\r\n", MAX_HEAD_BYTES)
            upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        except (EOFError, ValueError, OSError):
            return
        async with upstream, trio.open_nursery() as nursery:
            # The browser closing its side ends the proxying of this connection.
            nursery.start_soon(_cancel_on_eof, client, nursery.cancel_scope)
            try:
                await upstream.send_all(head)
                await _forward(_Reader(upstream), client, plan if lossy else None)
            except (EOFError, ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()


async def _cancel_on_eof(client: trio.SocketStream, scope: trio.CancelScope) -> None:
    try:
        while await client.receive_some(RECEIVE_BYTES):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def _forward(upstream: _Reader, client: trio.SocketStream, plan: DropPlan | None) -> None:
    head = await upstream.until(b"\r\n\r\n", MAX_HEAD_BYTES)
    await client.send_all(head)
    if not head.startswith(b"HTTP/1.1 200 "):
        # An error answer: pass its body through as it is, until the server closes.
        data = bytes(upstream.buffer) or await upstream.stream.receive_some(RECEIVE_BYTES)
        while data:
            await client.send_all(data)
            data = await upstream.stream.receive_some(RECEIVE_BYTES)
        return
    while True:
        size = int((await upstream.until(b"\r\n", 64)).strip(), 16)
        body = (await upstream.exactly(size + 2))[:size]
        if size == 0:
            await client.send_all(b"0\r\n\r\n")
            return
        if plan is not None:
            body = _drop_one(body, plan)
        if body:
            await client.send_all(b"%x\r\n%b\r\n" % (len(body), body))


def _drop_one(body: bytes, plan: DropPlan) -> bytes:
    """`body` without the plan's chosen delta event, if it is in this chunk."""
    if plan.dropped:
        return body
    blocks = body.split(b"\n\n")
    kept = []
    for block in blocks:
        if block.startswith(b"event: delta\n") and not plan.dropped:
            plan.deltas_seen += 1
            if plan.deltas_seen == plan.drop_nth:
                plan.dropped.append(block.decode())
                continue
        kept.append(block)
    return b"\n\n".join(kept)
