"""The publish endpoint `GET /v1/publish`: a feed replayer pushes normalized events in.

A binary WebSocket (subprotocol `ticker.publish.v1`) for publishers only: the request
must carry `Authorization: Bearer <token>` of a named publisher (`publish_token` or
`publish_tokens_file`; compared in constant time, never logged; each limited to topics
and venues, `ticker.auth.publishers`) or, with `auth` on, a client token with a
`publish` claim (checked again before each batch: expired or revoked closes); none
possible means publishing is off (403), a wrong or missing one gets 401 before any
upgrade. Each batch is checked whole, then
awaited into the hub's bounded queue, and acknowledged: while the hub is behind we stop
reading the socket, so backpressure reaches the publisher through TCP. Bad batches get
an error and a counter; the data decisions live in `ticker.model.event_codec` and
`publish_protocol`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from ticker.auth.principal import Principal
from ticker.auth.publishers import Publisher, match, refusal
from ticker.errors import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_SHUTDOWN,
    BadMessage,
    ProtocolError,
)
from ticker.model.event_codec import check_event
from ticker.model.events import NormalizedEvent
from ticker.server import stream_auth
from ticker.server.context import ServerContext
from ticker.server.keepalive import KeepaliveReader
from ticker.server.stats import EndReason
from ticker.wire.http import BadRequest, RequestHead
from ticker.wire.publish import (
    MAX_MESSAGE_BYTES,
    SUBPROTOCOL,
    Ack,
    Refused,
    batch_id_of,
    decode_batch,
    encode_ack,
    encode_refused,
)
from ticker.wire.transport import Transport, send_small
from ticker.wire.websocket import (
    Close,
    FrameReader,
    Message,
    Opcode,
    Ping,
    WebSocketProtocolError,
    encode_close,
    encode_frame,
    upgrade_response,
)

log = logging.getLogger("ticker.server")

TRANSPORT = "publish"
"""The name publish connections are counted under in `ServerStats`."""
MAX_ERRORS_PER_CONNECTION = 32


@dataclass(slots=True)
class _Session:
    peer: str
    publisher: Publisher
    principal: Principal | None = None
    """Set for a publisher with a client token (its `publish` claim): checked per batch."""
    batches: int = 0
    events: int = 0
    refused: int = 0


def _refusal(status: int, reason: str, message: str, *, bearer: bool = False) -> bytes:
    """A plain-text HTTP error (the shared `render_error` lacks these reasons/headers)."""
    body = (message + "\n").encode("utf-8")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    if bearer:
        lines.append('WWW-Authenticate: Bearer realm="ticker publish"')
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def presented_token(head: RequestHead) -> str | None:
    """The bearer token of the request, or None if there is none."""
    # Only ASCII spaces and tabs are trimmed: the value is latin-1 text, where str.strip
    # would also eat bytes such as 0xA0 that end a UTF-8 character.
    scheme, _, token = head.header("authorization").strip(" \t").partition(" ")
    if scheme.lower() != "bearer" or not token.strip(" \t"):
        return None
    return token.strip(" \t")


def accept_publish(
    sock: Transport, peer: str, head: RequestHead, context: ServerContext, extra: bytes = b""
) -> Callable[[], Awaitable[None]] | None:
    """Answer one publisher upgrade; the session to run, or None if it was refused.

    A disabled endpoint (403) and a missing or wrong token (401) are answered and
    counted here; neither says anything about the token's value.

    `extra` is what the publisher sent after the head in the same read: its first
    frames, read before the socket.

    Raises:
        BadRequest: a bad upgrade request, the publisher limit, or no hub queue.
        OSError: the connection broke.
    """
    config, stats = context.config, context.stats
    token = presented_token(head)
    publisher = match(context.publishers, _wire_bytes(token))
    principal = None
    if publisher is None and (found := stream_auth.token_publisher(context, token)):
        publisher, principal = found
    if not context.publishers and context.auth is None:
        stats.bad_requests += 1
        stats.ends["publish_disabled"] += 1
        log.info("publish refused from %s: publishing is disabled", peer)
        send_small(sock, _refusal(403, "Forbidden", "publishing is disabled on this server"))
        return None
    if publisher is None:
        stats.bad_requests += 1
        stats.ends["unauthorized"] += 1
        log.info("publish refused from %s: missing or wrong token", peer)
        message = "a valid publish token is required (Authorization: Bearer <token>)"
        send_small(sock, _refusal(401, "Unauthorized", message, bearer=True))
        return None
    response, _ = upgrade_response(head, (SUBPROTOCOL,))
    channel = context.publish
    if channel is None or context.shutting_down:
        raise BadRequest("publishing is not available on this server now", 503)
    if context.cluster is not None and not context.cluster.leading:
        raise BadRequest(
            "this hub does not lead the cluster now: publish to the leader "
            '(its /readyz says "leading": true)',
            503,
        )
    if stats.connections_open[TRANSPORT] >= config.max_publishers:
        stats.ends[EndReason.LIMIT.value] += 1
        raise BadRequest(f"at most {config.max_publishers} publishers at once", 429)
    send_small(sock, response)
    session = _Session(peer, publisher, principal)
    return partial(_run, sock, session, context, channel, extra)


def _wire_bytes(presented: str | None) -> bytes | None:
    """A header value's bytes on the wire (it arrives decoded as latin-1)."""
    if presented is None:
        return None
    try:
        return presented.encode("latin-1")
    except UnicodeEncodeError:  # not from a header: no byte form to compare
        return None


async def _run(
    sock: Transport,
    session: _Session,
    context: ServerContext,
    channel: trio.MemorySendChannel[Sequence[NormalizedEvent]],
    first: bytes = b"",
) -> None:
    """Serve one publisher until it leaves; count it and log one line at the end."""
    stats = context.stats
    stats.connections_open[TRANSPORT] += 1
    stats.connections_total[TRANSPORT] += 1
    opened = time.monotonic()
    reason = EndReason.SHUTDOWN
    try:
        reason = await _read_batches(sock, session, context, channel, first)
    finally:
        stats.connections_open[TRANSPORT] -= 1
        stats.ends[reason.value] += 1
        if reason is EndReason.SHUTDOWN:
            # Cancelled or the queue closed: the server is stopping. Never awaited.
            with contextlib.suppress(OSError):
                sock.send(encode_close(CLOSE_SHUTDOWN, "server shutting down"))
        log.info(
            "publisher end peer=%s publisher=%s reason=%s duration_s=%.1f batches=%d events=%d "
            "refused=%d",
            session.peer, session.publisher.name, reason.value, time.monotonic() - opened,
            session.batches, session.events, session.refused,
        )  # fmt: skip


class _SlowPeer(Exception):
    """A write to the publisher did not finish within the write timeout."""


async def _write(sock: Transport, data: bytes, timeout_s: float) -> None:
    view = memoryview(data)
    with trio.move_on_after(timeout_s) as scope:
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            view = view[sent:]
    if scope.cancelled_caught:
        raise _SlowPeer


async def _read_batches(
    sock: Transport,
    session: _Session,
    context: ServerContext,
    channel: trio.MemorySendChannel[Sequence[NormalizedEvent]],
    first: bytes = b"",
) -> EndReason:
    """Read, check, enqueue and acknowledge batches (`first`: bytes that came with the
    request head) until the publisher goes."""
    config = context.config
    write_timeout = config.write_timeout_s
    reader = FrameReader(MAX_MESSAGE_BYTES, config.max_message_fragments)
    keepalive = KeepaliveReader(sock, config.ping_interval_s, config.ping_timeout_s)
    errors = 0

    async def send_ping() -> None:
        await _write(sock, encode_frame(Opcode.PING, b"ticker"), write_timeout)

    try:
        while True:
            if first:
                data, first = first, b""
            else:
                received = await keepalive.receive(send_ping)
                if isinstance(received, EndReason):
                    return received
                data = received
            try:
                frames = reader.feed(data)
            except WebSocketProtocolError as exc:
                context.stats.bad_requests += 1
                await _write(sock, encode_close(exc.close_code, str(exc)[:100]), write_timeout)
                return EndReason.PROTOCOL_ERROR
            for frame in frames:
                if isinstance(frame, Message):
                    ending = stream_auth.publisher_ending(
                        context, session.principal, session.publisher
                    )
                    if ending is not None:
                        code, text, reason = ending
                        await _write(sock, encode_close(code, text), write_timeout)
                        return reason
                    reply = await _publish(frame, session, context, channel)
                    if isinstance(reply, Refused):
                        errors += 1
                        session.refused += 1
                        context.stats.bad_requests += 1
                        await _write(sock, _binary(encode_refused(reply)), write_timeout)
                        if errors >= MAX_ERRORS_PER_CONNECTION:
                            close = encode_close(CLOSE_BAD_REQUEST, "too many bad batches")
                            await _write(sock, close, write_timeout)
                            return EndReason.BAD_REQUEST
                    else:
                        await _write(sock, _binary(encode_ack(reply)), write_timeout)
                elif isinstance(frame, Ping):
                    await _write(sock, encode_frame(Opcode.PONG, frame.payload), write_timeout)
                elif isinstance(frame, Close):
                    await _write(sock, encode_close(1000), write_timeout)
                    return EndReason.CLIENT_CLOSED
    except _SlowPeer:
        return EndReason.SLOW_WRITE
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return EndReason.SHUTDOWN  # the hub's queue is gone: the server is stopping
    except OSError:
        return EndReason.PEER_RESET


def _binary(payload: bytes) -> bytes:
    return encode_frame(Opcode.BINARY, payload)


async def _publish(
    message: Message,
    session: _Session,
    context: ServerContext,
    channel: trio.MemorySendChannel[Sequence[NormalizedEvent]],
) -> Ack | Refused:
    """Check one batch whole; enqueue it (waiting while the hub is behind) or refuse it."""
    try:
        if not message.binary:
            raise BadMessage("publish batches are binary msgpack messages, not text")
        batch = decode_batch(message.payload)
    except ProtocolError as exc:
        return Refused(exc.close_code, str(exc), batch_id_of(message.payload))
    for index, event in enumerate(batch.events):
        problem = check_event(event, context.known_symbols)
        if problem is not None:
            return Refused(CLOSE_BAD_REQUEST, f"event {index}: {problem}", batch.batch_id)
        forbidden = refusal(session.publisher, event)
        if forbidden is not None:
            return Refused(CLOSE_FORBIDDEN, f"event {index}: {forbidden}", batch.batch_id)
    if context.shutting_down:
        return Refused(CLOSE_SHUTDOWN, "server shutting down", batch.batch_id)
    if context.cluster is not None and not context.cluster.leading:
        return Refused(CLOSE_SHUTDOWN, "this hub stopped leading the cluster", batch.batch_id)
    await channel.send(batch.events)
    session.batches += 1
    session.events += len(batch.events)
    return Ack(batch.batch_id, len(batch.events))
