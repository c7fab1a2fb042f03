"""The front door: one TCP port, our own non-blocking sockets, routing by path.

Accepts connections, reads each request head (bounded in size and time), and hands the
socket to the endpoint that serves it: `/v1/ws` and `/v1/sse` are served by our own
streaming code (DESIGN.md: hypercorn and trio-websocket measured 6-15x too slow for the
per-message path). Any other path gets a 404 here; the application routes (dashboard,
snapshot, health, metrics) will be handed the socket and the bytes already read.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket

import trio

from ticker.errors import ProtocolError
from ticker.server.context import ServerContext
from ticker.server.sse_session import serve_sse
from ticker.server.websocket_session import serve_websocket
from ticker.wire.http import BadRequest, head_end, parse_head, render_error

log = logging.getLogger("ticker.server")

LISTEN_BACKLOG = 4096
ACCEPT_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def open_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking TCP socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(LISTEN_BACKLOG)
    listener.setblocking(False)
    return listener


async def serve_listener(
    context: ServerContext,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections forever; `task_status.started(port)` once listening."""
    config = context.config
    listener = open_listener(config.host, config.port)
    try:
        port: int = listener.getsockname()[1]
        log.info("listening on %s:%d", config.host, port)
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            while True:
                await trio.lowlevel.wait_readable(listener)
                while True:
                    try:
                        sock, address = listener.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno not in ACCEPT_ERRORS:
                            raise
                        log.warning("accept failed (%s); pausing 100 ms", exc)
                        await trio.sleep(0.1)
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if config.send_buffer_bytes:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes
                        )
                    nursery.start_soon(
                        handle_connection, sock, f"{address[0]}:{address[1]}", context
                    )
    finally:
        trio.lowlevel.notify_closing(listener)
        listener.close()


async def read_head(sock: socket.socket, timeout_s: float) -> bytes | None:
    """Read one request head; None if the client went away or was too slow.

    Raises:
        BadRequest: the head is too large.
    """
    buffer = bytearray()
    with trio.move_on_after(timeout_s):
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                return None
            if not data:
                return None
            buffer += data
            end = head_end(buffer)
            if end >= 0:
                if end != len(buffer):
                    raise BadRequest("data after the request head is not supported here")
                return bytes(buffer)
    return None


async def handle_connection(sock: socket.socket, peer: str, context: ServerContext) -> None:
    """Route one accepted connection; every error becomes a response and a counter."""
    try:
        try:
            raw = await read_head(sock, context.config.handshake_timeout_s)
            if raw is None:
                return
            head = parse_head(raw)
            if head.path == "/v1/ws":
                await serve_websocket(sock, peer, head, context)
            elif head.path == "/v1/sse":
                await serve_sse(sock, peer, head, context)
            else:
                raise BadRequest(f"no endpoint at {head.path}; streams: /v1/ws, /v1/sse", 404)
        except ProtocolError as exc:
            context.stats.bad_requests += 1
            log.info("bad request from %s: %s", peer, exc)
            with contextlib.suppress(OSError):
                sock.send(render_error(exc.http_status, str(exc)))
        except OSError as exc:
            log.debug("connection from %s failed: %s", peer, exc)
    finally:
        sock.close()
