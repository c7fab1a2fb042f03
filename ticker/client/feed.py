"""`open_feed`: a live, self-healing view of some topics, as an async iterator of updates.

One background task connects (WebSocket or SSE), feeds every unit to the `Tracker`,
hands the updates to a bounded queue the caller iterates, and when the connection ends
(eviction as a slow consumer, server shutdown or restart, a dropped socket, a stall,
a gap) reconnects with exponential backoff and jitter, to the next of its URLs when
it has several, and resumes from the last position it holds. Losses reach the caller
as RESET updates; only what cannot heal (a refused subscription, unreadable bytes, an
untrusted certificate) is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from ticker.client.backoff import Backoff, ReconnectPolicy
from ticker.client.credentials import Credentials, TokenRefresh, refresh_delay_s
from ticker.client.endings import ConnectionEnded, Ending, EndingKind
from ticker.client.endpoint import Endpoint, Transport, parse_endpoints
from ticker.client.errors import (
    FeedConfigError,
    FeedError,
    FeedProtocolError,
    FeedRejected,
    FeedUnavailable,
)
from ticker.client.network import make_ssl_context
from ticker.client.sse import connect_sse
from ticker.client.stats import FeedStats
from ticker.client.tracker import CHECKSUM_REASON, Tracker
from ticker.client.updates import Update
from ticker.client.websocket import connect_websocket, protocol_ending
from ticker.core.messages import ServerMessage
from ticker.core.position import Position
from ticker.core.topics import TopicPattern
from ticker.errors import (
    CLOSE_FORBIDDEN,
    CLOSE_LIMIT_REACHED,
    CLOSE_UNAUTHORIZED,
    BadMessage,
    BadTopic,
)

log = logging.getLogger("ticker.client")

DEFAULT_STALL_S: Final = 60.0
"""Stall timeout while the server has not said its heartbeat period (SSE, or no hello)."""
STALL_HEARTBEATS: Final = 2.5
"""With a heartbeat period known, a connection silent for this many periods is dead."""
MIN_STALL_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """Every setting of a feed, with its default (see `open_feed` for each one)."""

    compression: str | None = None
    queue_size: int = 1024
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0
    connect_timeout_s: float = 10.0
    stall_timeout_s: float | None = None
    max_attempts: int | None = None
    max_message_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.compression not in (None, "zstd"):
            raise FeedConfigError(f"compression must be None or 'zstd', got {self.compression!r}")
        if self.queue_size < 1:
            raise FeedConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise FeedConfigError("need 0 < reconnect_min_s <= reconnect_max_s")
        if self.connect_timeout_s <= 0:
            raise FeedConfigError("connect_timeout_s must be > 0")
        if self.stall_timeout_s is not None and self.stall_timeout_s <= 0:
            raise FeedConfigError("stall_timeout_s must be > 0 (or None)")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise FeedConfigError("max_attempts must be >= 1 (or None: never give up)")
        if self.max_message_bytes < 1024:
            raise FeedConfigError("max_message_bytes must be >= 1024")


class FeedConnection(Protocol):
    """What the feed needs of one connection, whatever its transport."""

    compression: str | None

    # The next unit: decoded messages (SSE), or a frame's bytes (WebSocket: the
    # tracker decodes and applies them in one pass); or how the connection ended.
    async def receive(self) -> list[ServerMessage] | bytes | Ending: ...
    async def authenticate(self, token: str) -> None: ...
    async def abort(self) -> None: ...
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _StallWatch:
    """Shared by a connection's pump and its stall watchdog."""

    waiting_since: float | None = None
    """When the pending receive began (None: not receiving, e.g. the caller is behind)."""
    stalled: bool = False


def parse_topics(topics: Iterable[str]) -> tuple[str, ...]:
    """Validate topic patterns (`quote.BTC-USD`, `book.*`); duplicates are dropped.

    Raises:
        FeedConfigError: none given, or a malformed one.
    """
    if isinstance(topics, str):
        topics = topics.split(",")
    parsed: dict[str, None] = {}
    for text in topics:
        try:
            parsed[str(TopicPattern.parse(text.strip()))] = None
        except BadTopic as exc:
            raise FeedConfigError(str(exc)) from None
    if not parsed:
        raise FeedConfigError("give at least one topic, e.g. quote.BTC-USD or book.*")
    return tuple(parsed)


def entitlement_refusal(code: int, message: str) -> tuple[str, ...] | None:
    """The patterns an `error` refuses as outside the token's entitlements (`not entitled
    to: a, b` or, after a narrower refresh, `no longer entitled to: a`); None for any
    other error."""
    if code != CLOSE_FORBIDDEN:
        return None
    for prefix in ("not entitled to:", "no longer entitled to:"):
        if message.startswith(prefix):
            named = message.removeprefix(prefix).split(",")
            return tuple(p.strip() for p in named if p.strip())
    return None


class Feed:
    """The live state of some topics and the stream of their updates.

    Iterate it (`async for update in feed`) to receive every `Update` in stream order.
    Updates wait in a queue of `queue_size`; while it is full the feed stops reading
    the socket, so a caller that stops iterating is soon evicted by the server as a
    slow consumer; the feed then reconnects and resumes from its position, and nothing
    is lost as long as the server's replay buffer still holds it (else: RESET updates).
    Iteration raises `FeedError` when the feed cannot go on.
    """

    def __init__(
        self,
        endpoints: Endpoint | Sequence[Endpoint],
        topics: tuple[str, ...],
        options: FeedOptions,
        ssl_context: ssl.SSLContext | None,
        rng: random.Random,
        credentials: Credentials | None = None,
    ) -> None:
        self.credentials = credentials or Credentials(None, None, 0)
        """The token presented on each connection and its refresh."""
        self.endpoints = (endpoints,) if isinstance(endpoints, Endpoint) else tuple(endpoints)
        """Every URL the feed moves between, in order (the first is tried first)."""
        self.topics = topics
        self.options = options
        self.stats = FeedStats()
        self.connected = False
        """True while a connection is open and subscribed."""
        self.compression: str | None = None
        """The compression of the current (or last) connection: None or "zstd"."""
        self.last_ending: Ending | None = None
        """How the last connection ended (None before the first ended)."""
        self.error: FeedError | None = None
        """Why the feed stopped, once it has."""
        self.forbidden: set[str] = set()
        """Patterns the server refused as outside the token's entitlements (an `error`
        4403 naming them): the others stream on. Only when every pattern is refused does
        the feed stop (FeedRejected)."""
        self._tracker = Tracker(self.stats)
        self._resuming = False  # the current connection's subscribe carries a position
        self._ssl_context = ssl_context
        self._rng = rng
        self._policy = ReconnectPolicy(
            Backoff(options.reconnect_min_s, options.reconnect_max_s, rng), len(self.endpoints)
        )
        self._send, self._receive = trio.open_memory_channel[Update](options.queue_size)

    # -- the caller's side --------------------------------------------------------------

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> Update:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None

    @property
    def endpoint(self) -> Endpoint:
        """The URL of the current connection (or of the next attempt, between two);
        `str(feed.endpoint)` is its text."""
        return self.endpoints[self._policy.endpoint]

    @property
    def position(self) -> Position | None:
        """The position of the last message received (what a reconnect resumes from)."""
        return self._tracker.position

    def state(self, topic: str) -> dict[str, Any] | None:
        """A topic's whole state as received so far (it may be ahead of the updates the
        caller has read from the queue), or None when the topic is not held."""
        return self._tracker.state(topic)

    def seq(self, topic: str) -> int:
        """The sequence the topic's held state is at (0 when not held)."""
        return self._tracker.mirror.seq(topic)

    def held_topics(self) -> list[str]:
        """Every topic whose state is held."""
        return self._tracker.topics()

    # -- the background task ------------------------------------------------------------

    async def run(self) -> None:
        """Follow the stream until cancelled or until it cannot go on (then iteration
        raises the error once the queued updates are read)."""
        async with self._send:  # closed after the error is set: iteration then raises it
            try:
                await self._follow()
            except FeedError as exc:
                self.error = exc
                log.info("feed %s stopped: %s", self._urls(), exc)

    def _urls(self) -> str:
        return " ".join(str(endpoint) for endpoint in self.endpoints)

    async def _follow(self) -> None:
        options = self.options
        policy = self._policy
        while True:
            ending = await self._session()
            self.last_ending = ending
            self.stats.endings[ending.kind.value] += 1
            # The caller gets fatal errors raised; connections that worked heal at once.
            worked = policy.worked(ending)
            level = logging.INFO if worked or ending.error else logging.WARNING
            log.log(level, "feed %s: connection ended after %.3f s: %s %s", self.endpoint,
                    ending.lifetime_s, ending.kind.value, ending.detail)  # fmt: skip
            if ending.kind is EndingKind.TOKEN_EXPIRED:
                ending = await self._renew_after_expiry(ending)
            if ending.error is not None:
                raise ending.error
            ended_at = self.endpoint
            attempt = policy.next_attempt(ending)
            failures = policy.failures
            if options.max_attempts is not None and failures >= options.max_attempts:
                raise FeedUnavailable(
                    f"no usable connection to {self._urls()} in {failures} attempts; "
                    f"last: {ending.kind.value} {ending.detail} ({ended_at})"
                )
            if self.endpoint != ended_at:
                log.info("feed: moving from %s to %s in %.3f s", ended_at, self.endpoint,
                         attempt.delay_s)  # fmt: skip
            if attempt.delay_s > 0:
                await trio.sleep(attempt.delay_s)

    async def _session(self) -> Ending:
        """One connection from connect to its end."""
        self.stats.attempts += 1
        async with trio.open_nursery() as nursery:
            try:
                return await self._follow_connection(nursery)
            finally:
                nursery.cancel_scope.cancel()

    async def _connect(self, nursery: trio.Nursery) -> FeedConnection:
        options = self.options
        position = self._tracker.resume_position()
        self._resuming = position is not None
        if self.endpoint.transport is Transport.WEBSOCKET:
            return await connect_websocket(
                nursery,
                self.endpoint,
                self.topics,
                position,
                ssl_context=self._ssl_context,
                zstd=options.compression == "zstd",
                connect_timeout_s=options.connect_timeout_s,
                max_message_bytes=options.max_message_bytes,
                headers=self.credentials.headers(),
            )
        return await connect_sse(
            nursery,
            self.endpoint,
            self.topics,
            position,
            ssl_context=self._ssl_context,
            connect_timeout_s=options.connect_timeout_s,
            max_event_bytes=options.max_message_bytes,
            headers=self.credentials.headers(),
        )

    async def _follow_connection(self, nursery: trio.Nursery) -> Ending:
        try:
            connection = await self._connect(nursery)
        except ConnectionEnded as exc:
            return exc.ending
        self.stats.connections += 1
        self.stats.connections_by_url[str(self.endpoint)] += 1
        self.connected = True
        self.compression = connection.compression
        self._tracker.connected()
        units_before = self.stats.units
        opened_at = trio.current_time()
        if self.credentials.refresh is not None and self.credentials.token:
            nursery.start_soon(self._keep_token_fresh, connection)
        try:
            ending = await self._pump(connection, nursery)
        finally:
            self.connected = False
            await connection.aclose()
        # Healthy: more than the hello arrived, so the server took the subscription (the
        # policy also asks for a minimum lifetime before it counts as having worked).
        return dataclasses.replace(
            ending,
            healthy=self.stats.units - units_before >= 2,
            lifetime_s=trio.current_time() - opened_at,
        )

    async def _keep_token_fresh(self, connection: FeedConnection) -> None:
        """Refresh the token `refresh_before_s` ahead of its expiry and hand it to the
        connection (a WebSocket takes it in flight). A failed callback is retried until
        the token expires; then the connection ends and `_renew_after_expiry` decides."""
        credentials = self.credentials
        while credentials.token:
            delay_s = refresh_delay_s(credentials.token, time.time(), credentials.refresh_before_s)
            if delay_s is None:
                return  # a token without exp never needs refreshing
            await trio.sleep(delay_s)
            try:
                token = await credentials.renew()
            except Exception as exc:  # the caller's callback: its failure must not end us
                log.warning("feed %s: token refresh failed (%s); retrying", self.endpoint,
                            type(exc).__name__)  # fmt: skip
                continue
            await connection.authenticate(token)

    async def _renew_after_expiry(self, ending: Ending) -> Ending:
        """After a connection ended because its token expired: get a new one (and
        resume), or, with no way to, make the ending fatal (a reconnect would only be
        refused)."""
        credentials = self.credentials
        if credentials.refresh is not None:
            try:
                await credentials.renew()
                return ending
            except Exception as exc:
                detail = f"token expired and the refresh failed ({type(exc).__name__})"
        else:
            detail = "token expired and no refresh callback was given"
        return dataclasses.replace(ending, error=FeedRejected(CLOSE_UNAUTHORIZED, detail))

    async def _pump(self, connection: FeedConnection, nursery: trio.Nursery) -> Ending:
        """Receive, apply and queue until the connection ends or must be ended."""
        watch = _StallWatch()
        nursery.start_soon(self._watch_for_stall, connection, watch)
        while True:
            # A task watches instead of a cancel scope per receive: that cost more than
            # decoding a frame, and cancelling here could cut a unit's delivery short.
            watch.waiting_since = trio.current_time()
            received = await connection.receive()
            watch.waiting_since = None
            if watch.stalled:
                return Ending(EndingKind.STALLED, f"nothing for {self._stall_timeout_s()} s")
            ending = await self._deliver(received)
            if ending is not None:
                return ending

    async def _watch_for_stall(self, connection: FeedConnection, watch: _StallWatch) -> None:
        """Abort the connection when a receive waits longer than the stall timeout (the
        caller taking its time to read does not count)."""
        while True:
            since = watch.waiting_since
            timeout_s = self._stall_timeout_s()
            if since is not None and trio.current_time() >= since + timeout_s:
                watch.stalled = True
                await connection.abort()
                return
            await trio.sleep_until(
                (since if since is not None else trio.current_time()) + timeout_s
            )

    async def _deliver(self, received: list[ServerMessage] | bytes | Ending) -> Ending | None:
        """Apply one unit and queue its updates; the ending, if the connection must end."""
        if isinstance(received, Ending):
            return received
        tracker = self._tracker
        try:
            if isinstance(received, bytes):
                step = tracker.receive_frame(received, time.time_ns())
            else:
                step = tracker.receive(received, time.time_ns())
        except FeedProtocolError as exc:
            return Ending(EndingKind.PROTOCOL, str(exc), exc)
        except BadMessage as exc:
            return protocol_ending(str(exc))
        send = self._send
        stats = self.stats
        for update in step.updates:
            try:
                send.send_nowait(update)
            except trio.WouldBlock:
                await send.send(update)  # the caller is behind: wait (see the class doc)
            stats.updates += 1
        if step.refusal is not None:
            refusal = step.refusal
            named = entitlement_refusal(refusal.code, refusal.message)
            if named is not None:
                stats.forbidden += 1
                self.forbidden.update(named)
                log.warning("%s: %s", self.endpoint, refusal.message)
                if not set(self.topics) <= self.forbidden:
                    return None  # the allowed patterns stream on
            if refusal.code == CLOSE_LIMIT_REACHED and self._resuming:
                # Resumes are rate-limited per address (a reconnect storm): back off and
                # resume again, as after an HTTP 429.
                return Ending(EndingKind.LIMIT, refusal.message)
            error = FeedRejected(refusal.code, refusal.message)
            return Ending(EndingKind.REJECTED, refusal.message, error)
        if step.resync:
            if tracker.resnapshotting() == CHECKSUM_REASON:
                return Ending(EndingKind.GAP, "book checksum mismatch; subscribing afresh")
            return Ending(EndingKind.GAP, f"sequence gap; resuming from {tracker.position}")
        return None

    def _stall_timeout_s(self) -> float:
        if self.options.stall_timeout_s is not None:
            return self.options.stall_timeout_s
        heartbeat_s = self._tracker.heartbeat_s
        if heartbeat_s is None:
            return DEFAULT_STALL_S
        return max(MIN_STALL_S, STALL_HEARTBEATS * heartbeat_s)


@asynccontextmanager
async def open_feed(
    url: str | Sequence[str],
    topics: Iterable[str],
    *,
    compression: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    queue_size: int = 1024,
    reconnect_min_s: float = 0.1,
    reconnect_max_s: float = 5.0,
    connect_timeout_s: float = 10.0,
    stall_timeout_s: float | None = None,
    max_attempts: int | None = None,
    max_message_bytes: int = 16 * 1024 * 1024,
    rng: random.Random | None = None,
    token: str | None = None,
    refresh: TokenRefresh | None = None,
    refresh_before_s: float = 30.0,
) -> AsyncIterator[Feed]:
    """Follow `topics` on the ticker server at `url` until the block ends.

    Args:
        url: `ws://host:port/v1/ws` or `wss://...` (binary msgpack), or
            `http://host:port/v1/sse` or `https://...` (SSE); no path: the default one.
            Or a sequence of such URLs, the edges of one cluster (positions are valid on
            each): the first is tried first, and every reconnect moves to the next one,
            round-robin, resuming from the position held. All must use one transport
            (all ws/wss, or all http/https) and all or none TLS.
        topics: patterns such as `quote.BTC-USD`, `book.*` (or one comma-separated
            string).
        compression: "zstd" to offer `ticker.v1.zstd` (WebSocket only).
        ca_file: PEM file of the CAs to trust for wss/https (e.g. a private CA).
        ssl_context: a ready TLS context instead (takes precedence over `ca_file`).
        queue_size: updates waiting for the caller; full stops the socket reads.
        reconnect_min_s, reconnect_max_s: the reconnect backoff's range; it doubles
            per failed attempt (with several URLs: per round of failed attempts, and
            a move to a URL not yet tried in the round waits only `reconnect_min_s`)
            and is jittered (half to all of the current ceiling).
        connect_timeout_s: for TCP, TLS and the upgrade or response together.
        stall_timeout_s: a connection with no frame for this long is dropped and
            replaced; None: 2.5 heartbeat periods (at least 5 s), or 60 s when the
            server did not say its period (SSE).
        max_attempts: give up (`FeedUnavailable`) after this many failed connections
            in a row, whichever URL (one that ended within `max(reconnect_max_s, 1 s)`
            is failed, even if data came); None: never.
        max_message_bytes: the largest frame accepted (decompressed, for zstd).
        rng: the backoff jitter's random source.
        token: a JWT presented as `Authorization: Bearer` on every connection (servers
            with `auth` on; docs/SECURITY.md).
        refresh: an async callback returning the next token. It is called
            `refresh_before_s` before the current token's `exp`; a WebSocket hands the
            new token to the server in flight (`["auth", token]`) without losing the
            stream; an SSE stream ends at `exp` and resumes with it. Without one, the
            feed raises `FeedRejected` (4401) when its token expires.
        refresh_before_s: how long before `exp` to refresh.

    Raises:
        FeedConfigError: a bad URL, topic or setting, or URLs that mix transports or
            TLS (at once, before connecting).
    """
    endpoints = parse_endpoints(url)
    endpoint = endpoints[0]  # all share the transport and the TLS mode
    parsed_topics = parse_topics(topics)
    options = FeedOptions(
        compression,
        queue_size,
        reconnect_min_s,
        reconnect_max_s,
        connect_timeout_s,
        stall_timeout_s,
        max_attempts,
        max_message_bytes,
    )
    if compression is not None and endpoint.transport is Transport.SSE:
        raise FeedConfigError("compression is for the WebSocket transport (ws://, wss://)")
    if (ca_file is not None or ssl_context is not None) and not endpoint.tls:
        raise FeedConfigError(f"ca_file/ssl_context need a wss:// or https:// URL, not {endpoint}")
    context = ssl_context
    if context is None and endpoint.tls:
        context = make_ssl_context(ca_file)
    if refresh is not None and not token:
        raise FeedConfigError("refresh needs a first token")
    if refresh_before_s < 0:
        raise FeedConfigError("refresh_before_s must be >= 0")
    credentials = Credentials(token, refresh, refresh_before_s)
    feed = Feed(endpoints, parsed_topics, options, context, rng or random.Random(), credentials)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.run)
            try:
                yield feed
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # `run` never raises (its errors reach the caller through iteration), so the
        # group wraps what the caller's block raised: give it back unwrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
