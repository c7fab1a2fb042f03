"""The application gateway: hands non-streaming requests to hypercorn on our own port.

The front (`ticker.server.listener`) owns the port and reads every request head itself,
so the streaming endpoints keep their own socket path. Every other request (dashboard,
snapshot, health, metrics, publish pages) is served here by the ASGI application on
hypercorn's trio worker: we give hypercorn a trio stream over the already-accepted
connection (plain or TLS) that first returns the bytes the front already read, exactly
as hypercorn's own listener would have handed it the connection.

Every response carries `Connection: close`, so a browser never sends its next request
(say, the event stream) on a connection that hypercorn holds: each request comes back
through the front and is routed again. This module owns the hand-off only; what the
application serves is `ticker.app`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from ticker.wire.transport import Transport

log = logging.getLogger("ticker.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RECEIVE_BYTES = 65536


def close_after_response(app: AsgiApp) -> AsgiApp:
    """Wrap an ASGI app so every HTTP response says `Connection: close`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await app(scope, receive, send_closing)

    return wrapped


class HandoffStream(trio.abc.Stream):
    """A trio stream over an accepted connection, replaying the bytes already read."""

    def __init__(
        self, transport: Transport, already_read: bytes, *, tls: bool, write_timeout_s: float
    ) -> None:
        self._transport = transport
        self._already_read = already_read
        self._tls = tls
        self._write_timeout_s = write_timeout_s
        self._closed = False

    # hypercorn reads the peer and local addresses and, for TLS, the ALPN choice from
    # these (it expects an SSLStream for TLS and a SocketStream otherwise).
    @property
    def socket(self) -> Transport:
        return self._transport

    @property
    def transport_stream(self) -> HandoffStream:
        return self

    async def do_handshake(self) -> None:
        if not self._tls:
            raise AttributeError("do_handshake")  # hypercorn's test for "not TLS"
        await trio.lowlevel.checkpoint()  # done by the front before the head was read

    def selected_alpn_protocol(self) -> str:
        return "http/1.1"

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._already_read:
            data, self._already_read = self._already_read, b""
            await trio.lowlevel.checkpoint()
            return data
        while True:
            if self._closed:
                raise trio.ClosedResourceError
            try:
                return self._transport.recv(max_bytes or RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._transport)
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write everything, or fail with BrokenResourceError after the write timeout.

        hypercorn writes inside a shielded cancel scope, so without our own deadline a
        client that never reads would hold its connection (and a shutdown) forever.
        """
        view = memoryview(data)
        with trio.move_on_after(self._write_timeout_s) as deadline:
            while view:
                if self._closed:
                    raise trio.ClosedResourceError
                try:
                    sent = self._transport.send(view)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    raise trio.BrokenResourceError(str(exc)) from exc
                view = view[sent:]
                if view:
                    await trio.lowlevel.wait_writable(self._transport)
        if deadline.cancelled_caught:
            raise trio.BrokenResourceError("the client did not read within the write timeout")
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._transport)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._transport)
            self._transport.close()
        await trio.lowlevel.checkpoint()


class Gateway:
    """Runs the application's lifespan and serves the connections handed to it."""

    def __init__(self, app: object, *, read_timeout_s: float, write_timeout_s: float) -> None:
        self.write_timeout_s = write_timeout_s
        self.config = HypercornConfig()
        self.config.accesslog = None
        self.config.errorlog = None
        self.config.keep_alive_timeout = 5
        self.config.read_timeout = max(1, math.ceil(read_timeout_s))  # a body that never comes
        self.app = wrap_app(
            cast(Any, close_after_response(cast(AsgiApp, app))),
            self.config.wsgi_max_body_size,
            "asgi",
        )
        self.worker = WorkerContext(None)
        self.state: dict[str, Any] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the application (lifespan startup) and keep it running until cancelled."""
        lifespan = Lifespan(self.app, self.config, self.state)
        async with trio.open_nursery() as nursery:
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            task_status.started()
            await trio.sleep_forever()

    async def serve(self, transport: Transport, already_read: bytes, *, tls: bool) -> None:
        """Serve one connection with hypercorn until it closes."""
        stream = HandoffStream(
            transport, already_read, tls=tls, write_timeout_s=self.write_timeout_s
        )
        state = ConnectionState(self.state.copy())
        server = TCPServer(self.app, self.config, self.worker, state, cast(Any, stream))
        await server.run()
