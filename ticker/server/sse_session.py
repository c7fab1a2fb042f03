"""The SSE endpoint `GET /v1/sse?topics=...`: one event stream per request.

Topics come from the query (comma-separated patterns); a resume position from the
`Last-Event-ID` header or the `last_event_id` query parameter; `max_rate` (updates per
topic per second) turns on per-connection conflation for dashboards. The stream never
ends by itself: heartbeats keep it alive and carry the position. Bad queries get a 400
(a resume over the per-address limit a 429) with the reason before any stream starts.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from ticker.core.compression import DICTIONARY_ID
from ticker.core.messages import PROTOCOL_VERSION, Error, Hello
from ticker.core.position import Position
from ticker.errors import CLOSE_FORBIDDEN, ProtocolError, echo
from ticker.server import stream_auth
from ticker.server.context import ServerContext
from ticker.server.guard import capped_max_rate, stream_cors
from ticker.server.session import run_session
from ticker.server.stats import EndReason
from ticker.server.subscriber import Subscriber
from ticker.server.subscriptions import admit_resume, parse_patterns, subscribe
from ticker.wire.http import BadRequest, RequestHead
from ticker.wire.sse import encode_retry, response_head
from ticker.wire.transport import Transport, send_small

MAX_IGNORED_INPUT_BYTES = 64 * 1024


def parse_max_rate(head: RequestHead, limit: float) -> float | None:
    """The `max_rate` query parameter, if given.

    Raises:
        BadRequest: not a number in (0, limit].
    """
    text = head.query_value("max_rate")
    if text is None:
        return None
    try:
        rate = float(text)
    except ValueError:
        raise BadRequest(f"max_rate must be a number, got {echo(text)}") from None
    if not (math.isfinite(rate) and 0 < rate <= limit):
        raise BadRequest(f"max_rate must be in (0, {limit:g}], got {echo(text)}")
    return rate


@dataclass(frozen=True, slots=True)
class SseQuery:
    """What an SSE request asks for, checked: the topic patterns as given, the resume
    position's text (None: none) and the rate limit (None: every update)."""

    topics: list[str]
    position: str | None
    max_rate: float | None


def parse_sse_query(
    head: RequestHead,
    *,
    known_symbols: frozenset[str],
    max_subscriptions: int,
    max_rate_per_s: float,
) -> SseQuery:
    """Check an SSE request head: method, `topics`, resume position and `max_rate`.

    Pure, and everything is checked before a stream is answered, so a bad query gets a
    plain 400 (429 for too many patterns).

    Raises:
        BadRequest: bad method, topics, position or max_rate.
    """
    if head.method != "GET":
        raise BadRequest("the event stream is GET only", 405)
    topics_text = head.query_value("topics")
    if not topics_text:
        raise BadRequest("give the topics to stream, e.g. ?topics=quote.*,book.BTC-USD")
    topics = topics_text.split(",")
    # Both given: the header wins. A page opens the stream with ?last_event_id= (the
    # snapshot's position) and the browser, reconnecting to the same URL, adds the header
    # with the last id it processed: the newer of the two.
    position = head.header("last-event-id") or head.query_value("last_event_id") or None
    try:
        if len(parse_patterns(topics, known_symbols)) > max_subscriptions:
            raise BadRequest(f"at most {max_subscriptions} topic patterns", 429)
        if position is not None:
            Position.parse(position)
    except ProtocolError as exc:
        raise BadRequest(str(exc), exc.http_status) from None
    return SseQuery(topics, position, parse_max_rate(head, max_rate_per_s))


def accept_sse(
    sock: Transport, peer: str, head: RequestHead, context: ServerContext, extra: bytes = b""
) -> Callable[[], Awaitable[None]]:
    """Answer one SSE request; the session to run.

    Takes what it needs from `head` and keeps no reference to it. An HTTP/1.0 request
    gets the stream without chunked encoding, ending when the connection closes. The
    listener refuses a request with bytes after its head (`extra`, unused here).

    Raises:
        BadRequest: bad method, topics, position or max_rate (nothing was sent yet).
        Unauthorized: no token where one is required, or a bad one (nothing was sent).
        Forbidden: none of the topics is within the token's entitlements.
        OSError: the connection broke.
    """
    config = context.config
    principal = stream_auth.authenticate_head(context, head)
    try:
        query = parse_sse_query(
            head,
            known_symbols=context.known_symbols,
            max_subscriptions=config.max_subscriptions,
            max_rate_per_s=config.sse_max_rate_per_s,
        )
    except BadRequest as exc:
        if exc.http_status == 429:  # too many topic patterns (the listener logs it)
            context.stats.limited["subscriptions"] += 1
        raise
    topics, position = query.topics, query.position
    patterns = parse_patterns(topics, context.known_symbols)
    forbidden = stream_auth.narrow_or_refuse(context, principal, patterns).forbidden
    if len(context.fanout) >= config.max_connections:
        raise BadRequest("connection limit reached", 503)
    if context.shutting_down:
        raise BadRequest("the server is shutting down; connect to another", 503)
    if position is not None:
        try:
            admit_resume(peer, context.resume_limit, context.stats, trio.current_time())
        except ProtocolError as exc:
            raise BadRequest(str(exc), exc.http_status) from None
    # A stream without a verified token (every stream when `auth` is off) is anonymous.
    max_rate = capped_max_rate(query.max_rate, peer, context, anonymous=principal.anonymous)
    http10 = head.http_version == "1.0"
    framing = context.sse_framing_http10 if http10 else context.sse_framing
    subscriber = Subscriber(
        sock,
        peer,
        framing,
        context.hub,
        context.stats,
        outbox_max_bytes=config.outbox_max_bytes,
        write_timeout_s=config.write_timeout_s,
        rate_limited=max_rate is not None,
    )
    current = context.hub.position
    hello = Hello(
        PROTOCOL_VERSION, current.epoch, current.offset, config.heartbeat_s, None, DICTIONARY_ID
    )
    subscriber.control.append(encode_retry(config.sse_retry_ms).encode())
    subscriber.control.append(framing.control(hello))
    if forbidden:
        # The allowed topics stream; the client is told which were refused.
        error = Error(CLOSE_FORBIDDEN, stream_auth.not_entitled(forbidden))
        subscriber.control.append(framing.control(error))
    send_small(sock, response_head(head.http_version, stream_cors(head, context)))

    async def read_loop() -> EndReason:
        # Inside the session: the connection is in the fanout and its nursery exists.
        stream_auth.attach(context, subscriber, principal)
        subscribe(
            subscriber,
            topics,
            position,
            hub=context.hub,
            fanout=context.fanout,
            stats=context.stats,
            known_symbols=context.known_symbols,
            max_subscriptions=config.max_subscriptions,
            deep=context.deep_source,
            grants=stream_auth.grants_of(context, subscriber),
        )
        if max_rate is not None:
            nursery = subscriber.nursery
            assert nursery is not None
            nursery.start_soon(_flush_at_rate, subscriber, 1 / max_rate)
        return await _wait_for_close(sock)

    return partial(run_session, subscriber, "sse", context, read_loop)


async def _flush_at_rate(subscriber: Subscriber, period_s: float) -> None:
    """A rate-limited stream writes only on these ticks: one update per topic per tick."""
    while True:
        await trio.sleep(period_s)
        subscriber.flush_nowait()


async def _wait_for_close(sock: Transport) -> EndReason:
    """An SSE client sends nothing after its request; wait for it to go away."""
    ignored = 0
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            return EndReason.PEER_RESET
        if not data:
            return EndReason.CLIENT_CLOSED
        ignored += len(data)
        if ignored > MAX_IGNORED_INPUT_BYTES:
            return EndReason.BAD_REQUEST
