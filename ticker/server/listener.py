"""The front door: one TCP port, our own non-blocking sockets, routing by path.

Accepts connections, reads each request head (bounded in size and time), and hands the
socket to the endpoint that serves it: `/v1/ws` and `/v1/sse` are served by our own
streaming code (DESIGN.md: hypercorn and trio-websocket measured 6-15x too slow for the
per-message path). Every other path goes to the application gateway
(`ticker.server.gateway`) with the bytes already read. With TLS configured, the TLS
handshake happens here first, and both paths run over `ticker.wire.tls.TlsSocket`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import trio

from ticker.auth.sources import QUERY_PARAMETER
from ticker.errors import ProtocolError
from ticker.server.context import ServerContext
from ticker.server.gateway import Gateway
from ticker.server.guard import (
    GUARDED_STREAMS,
    check_request,
    client_peer,
    close_stream,
    close_subject_stream,
    open_stream,
    open_subject_stream,
    preflight,
)
from ticker.server.publish_session import accept_publish
from ticker.server.sse_session import accept_sse
from ticker.server.websocket_session import accept_websocket
from ticker.wire.http import (
    BadRequest,
    RequestHead,
    head_end,
    parse_head,
    render_error,
    render_json_error,
)
from ticker.wire.tls import TlsSocket
from ticker.wire.transport import Transport, send_small

log = logging.getLogger("ticker.server")

LISTEN_BACKLOG = 4096
ACCEPT_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE_S = 0.1
"""After an accept fails for lack of resources (the fd limit), wait this long."""
ACCEPT_LOG_INTERVAL_S = 10.0
"""Such failures are logged at most once per this interval (with how many there were);
every one is counted in `ticker_accept_errors_total`."""


def open_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking TCP socket.

    Raises:
        OSError: it cannot listen there; the message names the address (the errno and
            strerror are the system's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
    except OSError as exc:
        listener.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
    return listener


async def serve_listener(
    context: ServerContext,
    gateway: Gateway | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections forever; `task_status.started(port)` once listening."""
    config = context.config
    listener = open_listener(config.host, config.port, reuse_port=config.reuse_port)
    try:
        port: int = listener.getsockname()[1]
        log.info("listening on %s:%d", config.host, port)
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            with trio.CancelScope() as accepting:
                context.accepting = accepting
                await _accept_forever(listener, context, gateway, nursery)
            # The drain began: refuse new connections at once, keep serving open ones.
            trio.lowlevel.notify_closing(listener)
            listener.close()
            log.info("stopped accepting connections on %s:%d", config.host, port)
            await trio.sleep_forever()
    finally:
        if listener.fileno() >= 0:
            trio.lowlevel.notify_closing(listener)
            listener.close()


async def _accept_forever(
    listener: socket.socket, context: ServerContext, gateway: Gateway | None, nursery: trio.Nursery
) -> None:
    config = context.config
    stats = context.stats
    logged_at: float | None = None
    logged_count = 0
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
                # At the fd limit this repeats every pause: one line per interval, each
                # failure counted.
                stats.accept_errors += 1
                now = trio.current_time()
                if logged_at is None or now - logged_at >= ACCEPT_LOG_INTERVAL_S:
                    since = stats.accept_errors - logged_count
                    log.warning(
                        "accept failed (%s); %d failure(s) since the last such line; "
                        "pausing %d ms after each",
                        exc, since, ACCEPT_PAUSE_S * 1000,
                    )  # fmt: skip
                    logged_at, logged_count = now, stats.accept_errors
                await trio.sleep(ACCEPT_PAUSE_S)
                break
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if config.send_buffer_bytes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes)
            nursery.start_soon(
                handle_connection, sock, f"{address[0]}:{address[1]}", context, gateway
            )


async def read_head(sock: Transport, timeout_s: float) -> tuple[bytes, bytes] | None:
    """Read one request head: (the head, any bytes after it); None if the client went
    away or was too slow.

    Raises:
        BadRequest: the head is too large.
    """
    buffer = bytearray()
    with trio.move_on_after(timeout_s):
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError:
                return None
            if not data:
                return None
            buffer += data
            end = head_end(buffer)
            if end >= 0:
                return bytes(buffer[:end]), bytes(buffer[end:])
    return None


async def handle_connection(
    sock: socket.socket, peer: str, context: ServerContext, gateway: Gateway | None
) -> None:
    """Route one accepted connection; every error becomes a response and a counter.

    Errors are plain text on the streaming paths (and when the head does not parse) and
    the application's JSON (`{"error": ..., "status": ...}`) on its paths.
    """
    transport: Transport = sock
    path: str | None = None
    counted_stream = False
    counted_subject = ""
    try:
        try:
            timeout_s = context.config.handshake_timeout_s
            if context.tls is not None:
                tls = TlsSocket(sock, context.tls)
                with trio.move_on_after(timeout_s) as too_slow:
                    await tls.handshake()
                if too_slow.cancelled_caught:
                    context.stats.tls_failures += 1
                    return
                transport = tls
            request = await read_head(transport, timeout_s)
            if request is None:
                return
            raw, extra = request
            try:
                head = parse_head(raw)
            except BadRequest as exc:
                path = exc.path
                raise
            path = head.path
            peer = client_peer(peer, head, context)
            refusal = check_request(head, peer, context)
            if refusal is None and head.method == "OPTIONS" and head.path == "/v1/sse":
                send_small(transport, preflight(head, context))
                return
            if refusal is None and head.path in GUARDED_STREAMS:
                refusal = open_stream(peer, context)
                counted_stream = refusal is None
                subject = _subject_of(head, context)
                if refusal is None and subject:
                    refusal = open_subject_stream(subject, peer, context)
                    counted_subject = subject if refusal is None else ""
            if refusal is not None:
                with contextlib.suppress(OSError):
                    transport.send(refusal.response(as_json=head.path not in STREAMS))
                return
            session: Callable[[], Awaitable[None]] | None
            if head.path in STREAMS:
                refused = _not_on_this_role(head.path, config_role=context.config.role,
                                            clustered=bool(context.config.redis_url))  # fmt: skip
                if refused:
                    raise BadRequest(refused, 404)
                if extra and head.path == "/v1/sse":
                    raise BadRequest("an event stream request must not carry a body")
                # On a WebSocket, bytes after the head (same packet) are its first frames.
                session = STREAMS[head.path](transport, peer, head, context, extra)
            elif gateway is not None:
                upgrade = head.header("upgrade").lower()
                if "websocket" in upgrade:
                    message = f"no WebSocket endpoint at {head.path}; see /v1/ws, /v1/publish"
                    raise BadRequest(message, 404)
                if upgrade:
                    raise BadRequest("protocol upgrades are served only on /v1/ws and /v1/publish")
                del head
                stats = context.stats
                if stats.connections_open["http"] >= context.config.max_http_connections:
                    raise BadRequest("too many HTTP requests in progress; retry shortly", 503)
                stats.connections_open["http"] += 1
                stats.connections_total["http"] += 1
                try:
                    await gateway.serve(transport, raw + extra, tls=context.tls is not None)
                finally:
                    stats.connections_open["http"] -= 1
                return
            else:
                raise BadRequest(f"no endpoint at {head.path}; streams: /v1/ws, /v1/sse", 404)
            del head, raw  # a long-lived connection keeps nothing of its request
            if session is not None:
                await session()
        except ProtocolError as exc:
            context.stats.bad_requests += 1
            log.info("bad request from %s: %s", peer, exc)
            as_json = path is not None and path not in STREAMS
            render = render_json_error if as_json else render_error
            with contextlib.suppress(OSError):
                transport.send(render(exc.http_status, str(exc)))
        except ssl.SSLError as exc:
            context.stats.tls_failures += 1
            log.info("TLS handshake or record from %s failed: %s", peer, exc)
        except OSError as exc:
            log.debug("connection from %s failed: %s", peer, exc)
        except Exception:
            # A bug must cost one connection, never the server.
            context.stats.internal_errors += 1
            log.exception("internal error serving %s; connection closed", peer)
    finally:
        if counted_stream:
            close_stream(peer, context)
        if counted_subject:
            close_subject_stream(counted_subject, context)
        transport.close()


def _subject_of(head: RequestHead, context: ServerContext) -> str:
    """The subject of a stream request's token, for the per-subject limit ("" when auth
    is off, anonymous, or the token is bad: the stream's own door then refuses it with
    the reason). The door verifies the token again: a few tens of microseconds per new
    stream, bounded by the connect rate."""
    gate = context.auth
    if gate is None:
        return ""
    cookie = head.header("cookie") if head.path != "/v1/ws" else ""  # as the doors read it
    return gate.subject_of(head.header("authorization"), head.query_value(QUERY_PARAMETER), cookie)


def _not_on_this_role(path: str, *, config_role: str, clustered: bool) -> str | None:
    """Why `path` is not served by a node of this role, or None if it is."""
    if config_role == "hub" and path in ("/v1/ws", "/v1/sse"):
        return "this node is a hub: streams are served by the cluster's edges"
    if config_role == "edge" and path == "/v1/publish":
        return "this node is an edge: publish to a hub of the cluster"
    return None


STREAMS: dict[str, Callable[..., Callable[[], Awaitable[None]] | None]] = {
    "/v1/ws": accept_websocket,
    "/v1/sse": accept_sse,
    "/v1/publish": accept_publish,
}
"""The paths served by our own streaming code; everything else goes to the gateway."""
