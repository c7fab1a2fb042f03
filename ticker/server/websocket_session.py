"""The binary WebSocket endpoint `GET /v1/ws`: handshake, commands, ping/pong.

Subprotocol `ticker.v1` (msgpack) or `ticker.v1.zstd` (msgpack frames compressed with
the shipped dictionary); the client offers, the server picks zstd when offered. The
read loop turns client frames into subscribe/unsubscribe calls, answers pings, pings
a quiet client and closes it when the pong does not come. Bad commands get an error
message and a counter; broken framing closes the connection with its code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from ticker.core.codec import decode_client
from ticker.core.compression import DICTIONARY_ID
from ticker.core.messages import PROTOCOL_VERSION, Authenticate, Error, Hello, Subscribe
from ticker.errors import (
    CLOSE_BAD_REQUEST,
    CLOSE_LIMIT_REACHED,
    CLOSE_SHUTDOWN,
    Forbidden,
    ProtocolError,
)
from ticker.server import stream_auth
from ticker.server.context import ServerContext
from ticker.server.guard import note_connection_limit
from ticker.server.keepalive import KeepaliveReader
from ticker.server.limits import CommandBudget, Verdict
from ticker.server.session import run_session
from ticker.server.stats import EndReason
from ticker.server.subscriber import Subscriber
from ticker.server.subscriptions import (
    LimitReached,
    admit_resume,
    subscribe,
    takes_position,
    unsubscribe,
)
from ticker.wire.http import RequestHead
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

SUBPROTOCOL = "ticker.v1"
SUBPROTOCOL_ZSTD = "ticker.v1.zstd"
MAX_ERRORS_PER_CONNECTION = 32


def accept_websocket(
    sock: Transport, peer: str, head: RequestHead, context: ServerContext, extra: bytes = b""
) -> Callable[[], Awaitable[None]] | None:
    """Answer one WebSocket upgrade; the session to run, or None if it was refused.

    Takes what it needs from `head` and keeps no reference to it, so the request head
    is freed before the connection's long life begins. `extra` is what the client sent
    after the head in the same read: its first frames, read before the socket.

    Raises:
        BadRequest: not a valid upgrade for this endpoint (nothing was sent yet).
        Unauthorized: no token where one is required, or a bad one (nothing was sent).
        OSError: the connection broke.
    """
    principal = stream_auth.authenticate_head(context, head, cookie=False)
    response, chosen = upgrade_response(head, (SUBPROTOCOL_ZSTD, SUBPROTOCOL))
    zstd = chosen == SUBPROTOCOL_ZSTD
    send_small(sock, response)
    config = context.config
    if context.shutting_down:
        position = context.hub.position
        reason = f"server shutdown; last={position.epoch}-{position.offset}"
        send_small(sock, encode_close(CLOSE_SHUTDOWN, reason))
        context.stats.ends[EndReason.SHUTDOWN.value] += 1
        return None
    if len(context.fanout) >= config.max_connections:
        send_small(sock, encode_close(CLOSE_LIMIT_REACHED, "connection limit reached"))
        context.stats.ends[EndReason.LIMIT.value] += 1
        return None
    framing = context.zstd_framing() if zstd else context.ws_framing
    subscriber = Subscriber(
        sock,
        peer,
        framing,
        context.hub,
        context.stats,
        outbox_max_bytes=config.outbox_max_bytes,
        write_timeout_s=config.write_timeout_s,
    )
    position = context.hub.position
    hello = Hello(
        PROTOCOL_VERSION,
        position.epoch,
        position.offset,
        config.heartbeat_s,
        "zstd" if zstd else None,
        DICTIONARY_ID,
    )
    subscriber.control.append(framing.control(hello))

    async def read_loop() -> EndReason:
        subscriber.flush_nowait()  # the hello, now that the session's nursery exists
        stream_auth.attach(context, subscriber, principal)
        return await _read_commands(sock, subscriber, context, extra)

    return partial(run_session, subscriber, "ws", context, read_loop)


async def _read_commands(
    sock: Transport, subscriber: Subscriber, context: ServerContext, first: bytes = b""
) -> EndReason:
    """Read client frames (`first`: bytes that came with the request head) until the
    client closes, breaks the protocol or goes silent."""
    config = context.config
    reader = FrameReader(config.max_frame_bytes, config.max_message_fragments)
    keepalive = KeepaliveReader(sock, config.ping_interval_s, config.ping_timeout_s)
    errors = 0
    budget = CommandBudget(
        config.command_rate_per_s,
        config.command_burst,
        config.max_refused_commands,
        trio.current_time(),
    )
    noted: set[str] = set()  # the limits logged for this connection already
    # Data messages written by the time of the client's last input: a client that was
    # sent data since and answers no ping has stopped reading (a slow consumer), which
    # the write path only sees once the kernel buffers on both ends are full.
    messages_at_input = subscriber.messages

    async def send_ping() -> None:
        subscriber.control.append(encode_frame(Opcode.PING, b"ticker"))
        subscriber.flush_nowait()

    while True:
        if first:
            data, first = first, b""
        else:
            received = await keepalive.receive(send_ping)
            if received is EndReason.PING_TIMEOUT and (
                subscriber.messages > messages_at_input or subscriber.pending is not None
            ):
                return EndReason.SLOW_PING
            if isinstance(received, EndReason):
                return received
            data = received
            messages_at_input = subscriber.messages
        try:
            events = reader.feed(data)
        except WebSocketProtocolError as exc:
            subscriber.control.append(encode_close(exc.close_code, str(exc)[:100]))
            subscriber.flush_nowait()
            context.stats.bad_requests += 1
            return EndReason.PROTOCOL_ERROR
        for event in events:
            if subscriber.ended is not None:  # a reply's write failed: stop here
                return subscriber.ended
            if isinstance(event, Message):
                verdict = budget.take(trio.current_time())
                if verdict is not Verdict.APPLY:
                    if _over_command_rate(verdict, budget, subscriber, context, noted):
                        return EndReason.LIMIT
                    continue
                if not _handle_command(event, subscriber, context, noted):
                    errors += 1
                    if errors >= MAX_ERRORS_PER_CONNECTION:
                        subscriber.control.append(
                            encode_close(CLOSE_BAD_REQUEST, "too many bad requests")
                        )
                        subscriber.flush_nowait()
                        return EndReason.BAD_REQUEST
            elif isinstance(event, Ping):
                subscriber.control.append(encode_frame(Opcode.PONG, event.payload))
                subscriber.flush_nowait()
            elif isinstance(event, Close):
                subscriber.control.append(encode_close(1000))
                subscriber.flush_nowait()
                return EndReason.CLIENT_CLOSED


def _over_command_rate(
    verdict: Verdict,
    budget: CommandBudget,
    subscriber: Subscriber,
    context: ServerContext,
    noted: set[str],
) -> bool:
    """A command over the connection's rate: `error` 4429 (not applied), or close 4429
    when persistently over. Returns True if the connection is to end."""
    rate = f"at most {budget.rate_per_s:g} commands/s after a burst of {budget.burst}"
    if verdict is Verdict.CLOSE:
        reason = f"too many commands ({rate})"
        note_connection_limit(context, noted, "command_rate_close", subscriber.peer, reason)
        subscriber.control.append(encode_close(CLOSE_LIMIT_REACHED, reason))
        subscriber.flush_nowait()
        return True
    message = f"too many commands ({rate}); this one was not applied"
    note_connection_limit(context, noted, "command_rate", subscriber.peer, message)
    subscriber.control.append(subscriber.framing.control(Error(CLOSE_LIMIT_REACHED, message)))
    subscriber.flush_nowait()
    return False


def _handle_command(
    message: Message, subscriber: Subscriber, context: ServerContext, noted: set[str]
) -> bool:
    """Apply one client command; on a bad one, tell the client. Returns False if bad."""
    try:
        if not message.binary:
            raise ProtocolError("commands are binary msgpack frames, not text")
        command = decode_client(message.payload)
        if isinstance(command, Authenticate):
            stream_auth.refresh(context, subscriber, command.token)
        elif isinstance(command, Subscribe):
            if command.position is not None and takes_position(subscriber):
                admit_resume(
                    subscriber.peer, context.resume_limit, context.stats, trio.current_time()
                )
            forbidden = subscribe(
                subscriber,
                command.topics,
                command.position,
                hub=context.hub,
                fanout=context.fanout,
                stats=context.stats,
                known_symbols=context.known_symbols,
                max_subscriptions=context.config.max_subscriptions,
                deep=context.deep_source,
                grants=stream_auth.grants_of(context, subscriber),
            )
            if forbidden:
                # The allowed patterns proceed; the client is told which were refused.
                raise Forbidden(stream_auth.not_entitled(forbidden))
        else:
            grants = stream_auth.grants_of(context, subscriber)
            unsubscribe(subscriber, command.topics, context.fanout, grants, context.known_symbols)
    except ProtocolError as exc:
        context.stats.bad_requests += 1
        if isinstance(exc, LimitReached):
            note_connection_limit(context, noted, "subscriptions", subscriber.peer, str(exc))
        subscriber.control.append(subscriber.framing.control(Error(exc.close_code, str(exc))))
        subscriber.flush_nowait()
        return False
    return True
